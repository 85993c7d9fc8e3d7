"""Credits: a per-minute budget per user and app, level prices, 429 and recovery."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing

from miro_bridge.sandbox import Sandbox, SandboxConfig

from .conftest import EPOCH, OTHER_USER, USER, bearer, trio_clock

BUDGET = 1000


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig(clock=trio_clock, credits_per_minute=BUDGET)


def budget_headers(response: httpx.Response) -> tuple[int, int, int]:
    return (
        int(response.headers["X-RateLimit-Limit"]),
        int(response.headers["X-RateLimit-Remaining"]),
        int(response.headers["X-RateLimit-Reset"]),
    )


async def test_every_rest_answer_reports_the_budget(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    board_id: str,
    autojump_clock: trio.testing.MockClock,
) -> None:
    auth = bearer(sandbox.issue_tokens(USER))
    start = EPOCH + trio.current_time()
    board = f"/v2/boards/{board_id}"
    calls: list[tuple[str, str, dict[str, object] | None, int]] = [
        ("GET", board, None, 50),  # level 1
        ("POST", f"{board}/shapes", {}, 100),  # level 2
        ("GET", f"{board}/items", None, 100),  # level 2
        ("GET", f"{board}/shapes/1", None, 50),  # level 1, even when it answers 404
    ]
    remaining = BUDGET
    for method, url, body, cost in calls:
        response = await client.request(method, url, json=body, headers=auth)
        remaining -= cost
        limit, left, reset = budget_headers(response)
        assert (limit, left) == (BUDGET, remaining), url
        assert reset == int(start) + 60 or reset == int(start) + 61
    listed = (await client.get(f"{board}/items", headers=auth)).json()
    deleted = await client.delete(f"{board}/shapes/{listed['data'][0]['id']}", headers=auth)
    assert budget_headers(deleted)[1] == remaining - 100 - 500  # level 3
    assert [r["credits"] for r in sandbox.requests()] == [50, 100, 100, 50, 100, 500]


async def test_spent_budget_gives_429_then_recovers_after_the_window(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    board_id: str,
    autojump_clock: trio.testing.MockClock,
) -> None:
    auth = bearer(sandbox.issue_tokens(USER))
    url = f"/v2/boards/{board_id}"
    for _ in range(BUDGET // 50):
        assert (await client.get(url, headers=auth)).status_code == 200
    refused = await client.get(url, headers=auth)
    assert refused.status_code == 429
    assert refused.json() == {
        "type": "error",
        "status": 429,
        "code": "tooManyRequests",
        "message": "Request rate limit exceed",
        "context": None,
    }
    limit, remaining, reset = budget_headers(refused)
    assert (limit, remaining) == (BUDGET, 0)
    assert sandbox.requests()[-1] == {
        "method": "GET",
        "path": f"/v2/boards/{board_id}",
        "user": USER,
        "status": 429,
        "credits": 0,
    }

    other = bearer(sandbox.issue_tokens(OTHER_USER))
    assert (await client.get("/v2/boards", headers=other)).status_code == 200

    await trio.sleep(reset - (EPOCH + trio.current_time()) - 1)
    assert (await client.get(url, headers=auth)).status_code == 429
    await trio.sleep(1)
    recovered = await client.get(url, headers=auth)
    assert recovered.status_code == 200
    assert budget_headers(recovered)[1] == BUDGET - 50


async def test_bulk_costs_level_two_per_item(
    client: httpx.AsyncClient, sandbox: Sandbox, board_id: str
) -> None:
    auth = bearer(sandbox.issue_tokens(USER))
    url = f"/v2/boards/{board_id}/items/bulk"
    nine = [{"type": "card"}] * 9
    created = await client.post(url, json=nine, headers=auth)
    assert budget_headers(created)[1] == BUDGET - 900
    two = await client.post(url, json=[{"type": "card"}] * 2, headers=auth)
    assert two.status_code == 429
    one = await client.post(url, json=[{"type": "card"}], headers=auth)
    assert one.status_code == 201
    assert budget_headers(one)[1] == 0


async def test_a_refreshed_token_shares_the_users_budget(
    client: httpx.AsyncClient, sandbox: Sandbox, board_id: str
) -> None:
    """The budget belongs to the user and app, not to a token."""
    first = sandbox.issue_tokens(USER)
    await client.post(f"/v2/boards/{board_id}/shapes", json={}, headers=bearer(first))
    second = bearer(sandbox.issue_tokens(USER))
    response = await client.get(f"/v2/boards/{board_id}", headers=second)
    assert budget_headers(response)[1] == BUDGET - 150
