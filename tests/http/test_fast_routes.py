"""The edge's fast routes answer what the Quart routes answer, byte for byte, or step aside.

Two servers share one running bridge's actors: `fast`, the edge with the fast routes (as
`create_app` builds it), and `slow`, the same edge without them, so that every request goes
through Quart. `fast` counts the requests that reach Quart, so each test knows which path
answered.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import cast

import attrs
import httpx
import hypercorn.trio
import pytest
import trio
import trio.testing

from miro_bridge.actors.board_cache import SyncBoard
from miro_bridge.http._edge import Edge
from miro_bridge.http.app import create_quart_app
from miro_bridge.http.boards import board_fast_routes
from miro_bridge.http.client_logs import client_logs_fast_post
from miro_bridge.http.health import LIVENESS
from miro_bridge.http.jobs import batch_fast_post
from miro_bridge.http.serving import hypercorn_config, listen
from miro_bridge.http.typing import ASGIApp, Receive, Scope, Send
from miro_bridge.logs import configure_logging
from miro_bridge.store import client_logs
from tests.support import (
    OTHER_USER,
    USER,
    Bridge,
    Miro,
    StartBridge,
    bearer,
    connect,
    query_database,
    shape,
)

ORIGIN = "https://board.example"
#: Headers that differ between any two answers, whoever gives them.
_VARYING = {"date"}


@attrs.define
class Pair:
    """The same actors behind an edge with fast routes and one without."""

    fast: httpx.AsyncClient
    slow: httpx.AsyncClient
    reached_quart: list[str]


async def _serve(nursery: trio.Nursery, app: ASGIApp) -> httpx.AsyncClient:
    sock = listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    await nursery.start(functools.partial(hypercorn.trio.serve, app, hypercorn_config(sock)))
    return httpx.AsyncClient(base_url=url, timeout=30)


@pytest.fixture
async def bridge(start_bridge: StartBridge) -> Bridge:
    return await start_bridge(cors_origins=(ORIGIN,), log_rate_per_minute=40)


@pytest.fixture
async def pair(bridge: Bridge, nursery: trio.Nursery) -> AsyncIterator[Pair]:
    reached: list[str] = []
    quart = cast(ASGIApp, create_quart_app(bridge.settings, bridge.actors))

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            reached.append(scope["path"])
        await quart(scope, receive, send)

    routes = [LIVENESS, *board_fast_routes(bridge.settings, bridge.actors)]
    metrics = bridge.actors.metrics
    posts = [
        client_logs_fast_post(bridge.settings, bridge.actors),
        batch_fast_post(bridge.settings, bridge.actors),
    ]
    fast = await _serve(
        nursery, Edge(counting, bridge.settings, metrics, fast_routes=routes, fast_posts=posts)
    )
    slow = await _serve(nursery, Edge(quart, bridge.settings, metrics, fast_routes=[LIVENESS]))
    yield Pair(fast, slow, reached)
    await fast.aclose()
    await slow.aclose()


async def board_with_tags(miro: Miro, token: str) -> str:
    board_id = str(miro.sandbox.create_board(USER, "Plan")["id"])
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        for n in range(3):
            body = {"data": {"shape": "circle", "content": f"ünïcode {n}"}, "position": {"x": n}}
            assert (await client.post(f"/v2/boards/{board_id}/shapes", json=body)).is_success
        for title, color in (("urgent", "red"), ("später", None)):
            tag = {"title": title, **({"fillColor": color} if color else {})}
            assert (await client.post(f"/v2/boards/{board_id}/tags", json=tag)).is_success
    return board_id


def headers_of(response: httpx.Response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.multi_items() if k not in _VARYING)


async def same_answer(pair: Pair, path: str, user: str = USER) -> httpx.Response:
    """The answer of both servers to `path`, checked equal (status, headers, bytes)."""
    headers = {"X-User-Id": user, "X-Request-ID": "req-1", "Origin": ORIGIN}
    fast = await pair.fast.get(path, headers=headers)
    slow = await pair.slow.get(path, headers=headers)
    assert fast.status_code == slow.status_code, (path, fast.text, slow.text)
    assert fast.content == slow.content, path
    assert headers_of(fast) == headers_of(slow), path
    return fast


PATHS = (
    "/api/cache/{}",
    "/api/boards/{}/tags",
    "/api/boards/{}/tags/",
    "/api/boards/{}/shapes",
    "/api/boards/{}/shapes/",
    "/api/boards/{}/shapes?since=0",
    "/api/boards/{}/shapes?since=12",
)


async def test_hot_reads_are_answered_at_the_edge_with_the_routes_bytes(
    bridge: Bridge, miro: Miro, pair: Pair
) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_tags(miro, token)
    cold = await same_answer(pair, f"/api/boards/{board_id}/tags")  # warms the cache
    assert cold.status_code == 200
    pair.reached_quart.clear()
    for template in PATHS:
        answer = await same_answer(pair, template.format(board_id))
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] == "req-1"
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        assert answer.headers["content-type"] == "application/json"
    assert pair.reached_quart == []  # every one of them answered by the edge
    tags = json.loads((await same_answer(pair, f"/api/boards/{board_id}/tags")).content)
    assert sorted(t["title"] for t in tags) == ["später", "urgent"]
    shapes = json.loads((await same_answer(pair, f"/api/boards/{board_id}/shapes")).content)
    assert len(shapes["shapes"]) == 3


async def test_what_the_view_cannot_answer_goes_to_the_route(
    bridge: Bridge, miro: Miro, pair: Pair
) -> None:
    token = await connect(bridge, miro)
    await connect(bridge, miro, OTHER_USER)
    board_id = await board_with_tags(miro, token)
    await same_answer(pair, f"/api/cache/{board_id}")
    pair.reached_quart.clear()
    refused = {
        f"/api/boards/{board_id}/shapes?since=yesterday": 422,
        f"/api/boards/{board_id}/shapes?since=-1": 422,
        f"/api/boards/{board_id}/shapes?since=1&since=2": 200,
        f"/api/boards/{board_id}/shapes?since=%31": 200,
        f"/api/boards/{board_id}/shapes/nosuchitem": 404,
        "/api/boards/uXjVNoSuchBoard=/tags": 404,
        "/api/boards/tags": 404,
    }
    for path, status in refused.items():
        assert (await same_answer(pair, path)).status_code == status, path
    assert pair.reached_quart == [path.partition("?")[0] for path in refused]
    pair.reached_quart.clear()
    for template in PATHS:  # another user: Miro has not confirmed their access
        path = template.format(board_id)
        assert (await same_answer(pair, path, OTHER_USER)).status_code == 403, path
    assert len(pair.reached_quart) == len(PATHS)


async def test_a_write_or_a_sync_is_never_followed_by_the_old_answer(
    bridge: Bridge, miro: Miro, pair: Pair
) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_tags(miro, token)
    await same_answer(pair, f"/api/cache/{board_id}")
    first = json.loads((await same_answer(pair, f"/api/boards/{board_id}/shapes")).content)
    created = await bridge.client.post(
        f"/api/boards/{board_id}/shapes", json=[shape(9)], headers={"X-User-Id": USER}
    )
    assert created.status_code == 201
    new_id = json.loads(created.json()[0]["body"])["id"]
    pair.reached_quart.clear()
    second = json.loads((await same_answer(pair, f"/api/boards/{board_id}/shapes")).content)
    assert second["version"] == first["version"] + 1
    assert new_id in {s["id"] for s in second["shapes"]}

    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        tag = {"title": "new", "fillColor": "green"}
        assert (await client.post(f"/v2/boards/{board_id}/tags", json=tag)).is_success
    before = json.loads((await same_answer(pair, f"/api/boards/{board_id}/tags")).content)
    assert "new" not in {t["title"] for t in before}  # Miro changed it; the cache has not seen
    await bridge.actors.boards.call(SyncBoard(USER, board_id))
    after = json.loads((await same_answer(pair, f"/api/boards/{board_id}/tags")).content)
    assert "new" in {t["title"] for t in after}
    assert pair.reached_quart == []


async def test_fast_answers_are_counted_under_their_route(
    bridge: Bridge, miro: Miro, pair: Pair
) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_tags(miro, token)
    await same_answer(pair, f"/api/cache/{board_id}")
    pair.reached_quart.clear()
    await pair.fast.get(f"/api/boards/{board_id}/tags", headers={"X-User-Id": USER})
    await pair.fast.get(f"/api/boards/{board_id}/shapes", headers={"X-User-Id": USER})
    assert pair.reached_quart == []
    text = (await bridge.client.get("/metrics")).text
    for template in ("/api/boards/<board_id>/tags", "/api/boards/<board_id>/shapes"):
        assert f'route="{template}",status_code="200"' in text, template


def log_entry(n: int, **extra: object) -> dict[str, object]:
    return {
        "timestamp": "2026-11-30T10:00:00Z",
        "level": ("info", "WARN", "error", "Fatal")[n % 4],
        "message": f"loaded {n}\tboard",
        "context": {"board": "uXjV=", "n": n, "ms": 1.5, "ok": True, "none": None},
        **extra,
    }


async def same_post(pair: Pair, body: bytes, **headers: str) -> httpx.Response:
    """The answer of both servers to `POST /api/logs` of `body`, checked equal."""
    sent = {"Content-Type": "application/json", "X-Request-ID": "req-2", "Origin": ORIGIN}
    sent.update(headers)
    fast = await pair.fast.post("/api/logs", content=body, headers=sent)
    slow = await pair.slow.post("/api/logs", content=body, headers=sent)
    assert fast.status_code == slow.status_code, (body, fast.text, slow.text)
    assert fast.content == slow.content, body
    assert headers_of(fast) == headers_of(slow), body
    return fast


def client_lines(out: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.splitlines()]
    return [
        {k: v for k, v in line.items() if k != "timestamp"}
        for line in lines
        if line.get("source") == "client"
    ]


async def test_plain_log_posts_are_taken_at_the_edge_like_the_route_takes_them(
    bridge: Bridge, pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(pretty=False)
    body = json.dumps([log_entry(n) for n in range(4)]).encode()
    headers = {"Content-Type": "application/json", "X-User-Id": USER, "X-Request-ID": "r"}
    fast = await pair.fast.post("/api/logs/", content=body, headers=headers)
    fast_lines = client_lines(capsys.readouterr().out)
    assert pair.reached_quart == []
    slow = await pair.slow.post("/api/logs/", content=body, headers=headers)
    slow_lines = client_lines(capsys.readouterr().out)
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content) == (202, b"")
    assert headers_of(fast) == headers_of(slow)
    assert fast_lines == slow_lines
    assert [line["level"] for line in fast_lines] == ["info", "warning", "error", "critical"]
    assert fast_lines[1]["context"] == {
        "board": "uXjV=",
        "n": "1",
        "ms": "1.5",
        "ok": "true",
        "none": "null",
    }
    assert fast_lines[0]["event"] == "loaded 0 board"
    assert fast_lines[0]["request_id"] == "r"
    assert await bridge.actors.store.call(client_logs.CountLogs()) == 8


async def test_other_log_posts_are_left_to_the_route(bridge: Bridge, pair: Pair) -> None:
    plain = [log_entry(0)]
    bodies: dict[bytes, int] = {
        json.dumps([log_entry(0, level="loud")]).encode(): 422,
        json.dumps({"message": "x"}).encode(): 422,
        b'[{"timestamp": 1e400, "level": "info", "message": "x"}]': 422,
        b'[{"timestamp": NaN, "level": "info", "message": "x"}]': 422,
        b'[{"timestamp": "t", "level": "info", "message": "\\ud800"}]': 400,
        b"[" * 70 + b"]" * 70: 400,
        b"[{]": 400,
        b'[{"timestamp": "t", "level": "info", "message": "\xff"}]': 400,
        b"[" * 100_000: 400,
        json.dumps([log_entry(0, message="x" * 1025)]).encode(): 413,
        json.dumps([log_entry(0, context={str(n): n for n in range(21)})]).encode(): 413,
        # Taken by the route, not by the edge: nested values, fields the edge does not know.
        json.dumps([log_entry(0, context={"deep": {"a": [1, 2]}})]).encode(): 202,
        json.dumps([log_entry(0, page="/board")]).encode(): 202,
        json.dumps([log_entry(0, context=[])]).encode(): 202,
    }
    for body, status in bodies.items():
        pair.reached_quart.clear()
        answer = await same_post(pair, body, **{"X-User-Id": USER})
        assert answer.status_code == status, (body, answer.text)
        assert pair.reached_quart == ["/api/logs"], body
    pair.reached_quart.clear()
    bad_user = await same_post(pair, json.dumps(plain).encode(), **{"X-User-Id": "me"})
    assert bad_user.status_code == 400
    assert pair.reached_quart == ["/api/logs"]


async def test_log_entries_at_the_limits_are_taken_at_the_edge_as_the_route_takes_them(
    bridge: Bridge, pair: Pair
) -> None:
    # Characters, not bytes or UTF-16 units, count; numbers are stored as JSON writes them.
    at_limits = [
        log_entry(0, message="\U0001f600" * 1024, timestamp=123456789012345678901234567890),
        log_entry(1, context={str(n): "v" * 1024 for n in range(20)}, timestamp=1e16),
        log_entry(2, context=None, timestamp=-0.0),
        log_entry(3, context={}, level="TRACE"),
    ]
    body = json.dumps(at_limits).encode()
    assert (await same_post(pair, body, **{"X-User-Id": USER})).status_code == 202
    assert pair.reached_quart == []
    rows = query_database(
        bridge.settings,
        "SELECT request_id, timestamp, level, message, context FROM client_logs ORDER BY id",
    )
    assert len(rows) == 8
    assert rows[:4] == rows[4:]  # what the edge stored, then what the route stored
    assert [row[1:3] for row in rows[:4]] == [
        ("123456789012345678901234567890", "info"),
        ("1e+16", "warn"),
        ("-0.0", "error"),
        ("2026-11-30T10:00:00Z", "trace"),
    ]
    for body, status in {
        json.dumps([log_entry(0, timestamp=True)]).encode(): 422,
        json.dumps([log_entry(0, timestamp=None)]).encode(): 422,
        json.dumps([log_entry(0, message=None)]).encode(): 422,
        json.dumps([log_entry(0, level=None)]).encode(): 422,
        json.dumps([log_entry(0, context={"k": "v" * 1025})]).encode(): 413,
        json.dumps([log_entry(0, message="\U0001f600" * 1025)]).encode(): 413,
        json.dumps(["clicked"]).encode(): 422,
        # Taken by the route, not by the edge: a context that is not an object.
        json.dumps([log_entry(0, context=0)]).encode(): 202,
    }.items():
        pair.reached_quart.clear()
        answer = await same_post(pair, body, **{"X-User-Id": USER})
        assert answer.status_code == status, (body, answer.text)
        assert pair.reached_quart == ["/api/logs"], body


async def test_the_rate_limit_is_answered_alike(bridge: Bridge, pair: Pair) -> None:
    body = json.dumps([log_entry(n) for n in range(10)]).encode()
    for _ in range(2):  # 40 a minute: 20 from each server
        assert (await same_post(pair, body, **{"X-User-Id": USER})).status_code == 202
    refused = await same_post(pair, body, **{"X-User-Id": USER})
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["retry-after"] == "60"
    assert refused.headers["x-request-id"] == "req-2"
    assert pair.reached_quart == []  # the edge answered its 429 itself
    anonymous = await same_post(pair, json.dumps([log_entry(0)]).encode())
    assert anonymous.status_code == 202  # another caller: the client's address


async def test_fast_answers_are_logged_and_timed_as_the_others(
    bridge: Bridge, miro: Miro, pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(pretty=False)
    token = await connect(bridge, miro)
    board_id = await board_with_tags(miro, token)
    await same_answer(pair, f"/api/cache/{board_id}")
    await trio.testing.wait_all_tasks_blocked()
    capsys.readouterr()
    registry = bridge.actors.metrics.registry
    labels = {"method": "GET", "route": "/api/boards/<board_id>/tags", "status_code": "200"}
    counted = registry.get_sample_value("http_server_request_duration_seconds_count", labels)
    headers = {"X-User-Id": USER}
    await pair.fast.get(f"/api/boards/{board_id}/tags", headers={**headers, "X-Request-ID": "f"})
    await pair.slow.get(f"/api/boards/{board_id}/tags", headers={**headers, "X-Request-ID": "s"})
    await pair.fast.get("/health", headers={"X-Request-ID": "probe"})
    await trio.testing.wait_all_tasks_blocked()  # the line is written after the answer is sent
    # Both answers are timed under the route's template, and neither is left in flight.
    assert (
        registry.get_sample_value("http_server_request_duration_seconds_count", labels)
        == (counted or 0) + 2
    )
    assert registry.get_sample_value("http_server_active_requests") == 0
    lines = {
        line["request_id"]: line
        for line in map(json.loads, capsys.readouterr().out.splitlines())
        if line["event"] == "http.request"
    }
    assert set(lines) == {"f", "s"}  # a successful probe is logged at debug only
    assert set(lines["f"]) == set(lines["s"])
    for line in lines.values():
        assert (line["route"], line["status"], line["level"]) == (
            "/api/boards/<board_id>/tags",
            200,
            "info",
        )


# POST /api/batch ---------------------------------------------------------------------------


async def both_batch(pair: Pair, body: bytes, **headers: str) -> tuple[httpx.Response, ...]:
    """The answers of both servers to `POST /api/batch` of `body`: status and headers equal,
    and the bodies but for the job's id (each server enqueues a job of its own)."""
    sent = {"Content-Type": "application/json", "X-Request-ID": "req-3", "Origin": ORIGIN}
    sent.update(headers)
    fast = await pair.fast.post("/api/batch", content=body, headers=sent)
    slow = await pair.slow.post("/api/batch", content=body, headers=sent)
    assert fast.status_code == slow.status_code, (body, fast.text, slow.text)
    assert headers_of(fast) == headers_of(slow), body
    if fast.status_code == 202:
        job_ids = fast.json()["jobId"], slow.json()["jobId"]
        assert fast.content.replace(job_ids[0].encode(), job_ids[1].encode()) == slow.content
    else:
        assert fast.content == slow.content, body
    return fast, slow


async def test_plain_batches_are_enqueued_at_the_edge_like_the_route_enqueues_them(
    bridge: Bridge, miro: Miro, pair: Pair
) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    operations = [
        {"type": "create_shape", "data": shape(1)},
        {"type": "create_card", "data": {"title": "ünïcode"}},
        {"type": "delete_item", "itemId": "3458764500000000009"},
    ]
    body = json.dumps({"boardId": board_id, "operations": operations}).encode()
    fast, slow = await both_batch(pair, body, **{"X-User-Id": USER})
    assert pair.reached_quart == []
    assert fast.status_code == 202
    assert fast.json()["enqueued"] == 3
    stored = [
        [
            tuple(row)
            for row in query_database(
                bridge.settings,
                "SELECT seq, kind, board_id, payload FROM operations "  # noqa: S608 -- hex id
                f"WHERE job_id = '{answer.json()['jobId']}' ORDER BY seq",
            )
        ]
        for answer in (fast, slow)
    ]
    assert stored[0] == stored[1]
    assert [row[1] for row in stored[0]] == ["create_shape", "create_card", "delete_item"]


async def test_other_batches_are_left_to_the_route(bridge: Bridge, miro: Miro, pair: Pair) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    plain = {"boardId": board_id, "operations": [{"type": "create_shape", "data": shape(1)}]}
    cases: list[tuple[bytes, dict[str, str], int]] = [
        (json.dumps({"operations": []}).encode(), {"X-User-Id": USER}, 422),
        (
            json.dumps({"boardId": board_id, "operations": [{"type": "paint"}]}).encode(),
            {"X-User-Id": USER},
            422,
        ),
        (b'{"boardId": NaN, "operations": []}', {"X-User-Id": USER}, 422),
        (b"{", {"X-User-Id": USER}, 400),
        (b"[" * 70 + b"]" * 70, {"X-User-Id": USER}, 400),
        (json.dumps(plain).encode(), {}, 400),  # no user
        (json.dumps(plain).encode(), {"X-User-Id": "me"}, 400),
        # Not declared JSON: the route reads no body (Quart's is_json), a 422.
        (json.dumps(plain).encode(), {"X-User-Id": USER, "Content-Type": "text/plain"}, 422),
        # Taken by the route, not by the edge: a keyed request (its claim and replay).
        (json.dumps(plain).encode(), {"X-User-Id": USER, "Idempotency-Key": "k1"}, 202),
    ]
    for body, headers, status in cases:
        pair.reached_quart.clear()
        fast, _ = await both_batch(pair, body, **headers)
        assert fast.status_code == status, (body, fast.text)
        assert pair.reached_quart == ["/api/batch"], body
