"""Faults: latency, 5xx, injected 429, hangs, dropped connections; seeded; never on /_admin."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
import trio.testing

from miro_bridge.sandbox import Faults, Sandbox, SandboxConfig

from .conftest import USER, trio_clock


@pytest.fixture
def config() -> SandboxConfig:
    """Hangs of two minutes: longer than the clients' timeouts here, short enough to wait out."""
    return SandboxConfig(clock=trio_clock, hang_seconds=120)


def item_total(sandbox: Sandbox, board_id: str) -> int:
    board = sandbox.boards.board(USER, board_id)
    return sandbox.boards.count_items(board)


async def test_latency_is_added_within_bounds(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    auth: dict[str, str],
    autojump_clock: trio.testing.MockClock,
) -> None:
    sandbox.set_faults(Faults(latency_ms=(20, 80), seed=3))
    delays = []
    for _ in range(10):
        start = trio.current_time()
        assert (await client.get("/v2/boards", headers=auth)).status_code == 200
        delays.append(trio.current_time() - start)
    assert all(0.020 <= delay <= 0.081 for delay in delays)
    assert max(delays) - min(delays) > 0.01


async def test_error_rate_answers_5xx_and_changes_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox, auth: dict[str, str], board_id: str
) -> None:
    sandbox.set_faults(Faults(error_rate=1.0, error_statuses=(502,)))
    response = await client.post(f"/v2/boards/{board_id}/shapes", json={}, headers=auth)
    assert response.status_code == 502
    assert response.json()["type"] == "error"
    assert response.json()["status"] == 502
    assert item_total(sandbox, board_id) == 0
    assert sandbox.requests()[-1] == {
        "method": "POST",
        "path": f"/v2/boards/{board_id}/shapes",
        "user": USER,
        "status": 502,
        "credits": 0,
    }


async def test_rate_limit_rate_answers_429_with_budget_left(
    client: httpx.AsyncClient, sandbox: Sandbox, auth: dict[str, str]
) -> None:
    sandbox.set_faults(Faults(rate_limit_rate=1.0))
    response = await client.get("/v2/boards", headers=auth)
    assert response.status_code == 429
    assert response.json()["code"] == "tooManyRequests"
    assert response.headers["X-RateLimit-Remaining"] == "100000"
    assert "X-RateLimit-Reset" in response.headers


async def test_hang_outlasts_the_client_timeout(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    auth: dict[str, str],
    autojump_clock: trio.testing.MockClock,
) -> None:
    sandbox.set_faults(Faults(hang_rate=1.0))
    start = trio.current_time()
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/v2/boards", headers=auth, timeout=30)
    assert 30 <= trio.current_time() - start < 31
    assert sandbox.requests()[-1]["status"] is None
    sandbox.set_faults(Faults())
    assert (await client.get("/v2/boards", headers=auth)).status_code == 200


async def test_a_hang_ends_with_504_after_hang_seconds(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    auth: dict[str, str],
    autojump_clock: trio.testing.MockClock,
) -> None:
    sandbox.set_faults(Faults(hang_rate=1.0))
    start = trio.current_time()
    response = await client.get("/v2/boards", headers=auth, timeout=600)
    assert response.status_code == 504
    assert 120 <= trio.current_time() - start < 121


async def test_drop_breaks_the_connection_and_changes_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox, auth: dict[str, str], board_id: str
) -> None:
    sandbox.set_faults(Faults(drop_rate=1.0))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(f"/v2/boards/{board_id}/shapes", json={}, headers=auth)
    assert sandbox.requests()[-1]["status"] is None
    assert item_total(sandbox, board_id) == 0
    sandbox.set_faults(Faults())
    response = await client.post(f"/v2/boards/{board_id}/shapes", json={}, headers=auth)
    assert response.status_code == 201


async def test_apply_then_drop_carries_the_request_out_and_never_answers(
    client: httpx.AsyncClient, sandbox: Sandbox, auth: dict[str, str], board_id: str
) -> None:
    sandbox.set_faults(Faults(apply_then_drop_rate=1.0))
    body = [{"type": "shape", "data": {"content": f"s{n}"}} for n in range(3)]
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(f"/v2/boards/{board_id}/items/bulk", json=body, headers=auth)
    assert sandbox.requests()[-1]["status"] is None  # no answer reached the client
    assert sandbox.requests()[-1]["credits"] == 300  # but it was carried out, and paid for
    assert item_total(sandbox, board_id) == 3


async def fates(client: httpx.AsyncClient, auth: dict[str, str], count: int) -> list[int]:
    return [(await client.get("/v2/boards", headers=auth)).status_code for _ in range(count)]


async def test_the_same_seed_gives_the_same_faults(
    client: httpx.AsyncClient, sandbox: Sandbox, auth: dict[str, str]
) -> None:
    faults = Faults(error_rate=0.3, error_statuses=(500, 503), rate_limit_rate=0.2, seed=7)
    sandbox.set_faults(faults)
    first = await fates(client, auth, 40)
    sandbox.set_faults(faults)
    second = await fates(client, auth, 40)
    assert first == second
    assert {200, 429, 500, 503} <= set(first)
    sandbox.set_faults(
        Faults(error_rate=0.3, error_statuses=(500, 503), rate_limit_rate=0.2, seed=8)
    )
    assert await fates(client, auth, 40) != first


async def test_rates_are_respected(
    client: httpx.AsyncClient, sandbox: Sandbox, auth: dict[str, str]
) -> None:
    sandbox.set_faults(Faults(error_rate=0.2, seed=11))
    statuses = await fates(client, auth, 200)
    assert 20 <= sum(status >= 500 for status in statuses) <= 60


async def test_faults_hit_oauth_routes_too(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    tokens = sandbox.issue_tokens(USER)
    sandbox.set_faults(Faults(error_rate=1.0, error_statuses=(503,)))
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    assert (await client.post("/v1/oauth/token", data=form)).status_code == 503
    sandbox.set_faults(Faults())
    assert (await client.post("/v1/oauth/token", data=form)).status_code == 200


async def test_admin_routes_are_never_faulted(
    client: httpx.AsyncClient, sandbox: Sandbox, auth: dict[str, str]
) -> None:
    response = await client.post("/_admin/faults", json={"hang_rate": 0.5, "drop_rate": 0.5})
    assert response.status_code == 204
    assert sandbox.faults == Faults(hang_rate=0.5, drop_rate=0.5)
    for _ in range(20):
        assert (await client.get("/_admin/requests")).status_code == 200
    assert (await client.post("/_admin/faults", json={})).status_code == 204
    assert sandbox.faults == Faults()
    assert (await client.get("/v2/boards", headers=auth)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 1.5},
        {"error_rate": 0.6, "hang_rate": 0.6},
        {"latency_ms": [80, 20]},
        {"latency_ms": "fast"},
        {"error_statuses": [404]},
        {"error_statuses": []},
        {"seed": "seven"},
        {"typo_rate": 0.1},
        ["not", "an", "object"],
    ],
)
async def test_invalid_faults_are_refused(
    client: httpx.AsyncClient, sandbox: Sandbox, body: Any
) -> None:
    response = await client.post("/_admin/faults", json=body)
    assert response.status_code == 400
    assert response.json()["message"]
    assert sandbox.faults == Faults()


def test_faults_from_json_reads_the_issue_example() -> None:
    faults = Faults.from_json(
        {
            "latency_ms": [20, 80],
            "error_rate": 0.2,
            "error_statuses": [500, 502, 503],
            "rate_limit_rate": 0.05,
            "hang_rate": 0.01,
            "drop_rate": 0.01,
            "seed": 7,
        }
    )
    assert faults.latency_ms == (20.0, 80.0)
    assert faults.error_statuses == (500, 502, 503)
    assert faults.seed == 7
