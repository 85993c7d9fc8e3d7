"""Connections over raw sockets: every answer leaves a kept-alive connection usable or closed.

The real app on Hypercorn, spoken to by hand, so that what an HTTP library hides (a reused
connection that never answers again, a reset instead of a 413) shows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from miro_bridge.http import Edge, create_quart_app
from miro_bridge.http.health import LIVENESS
from tests.support import (
    USER,
    Bridge,
    RawConnection,
    RawResponse,
    ServeASGI,
    StartBridge,
    chunked,
    request_head,
)

BODY = b"x" * (256 * 1024)
JSON = ("Content-Type", "application/json")
#: A body over the default `MIRO_MAX_BODY_BYTES` (1 MiB).
TOO_LARGE = b"y" * 1_200_000


async def write_in_two_parts(connection: RawConnection, head: bytes, body: bytes) -> None:
    """1 KB of the body, a pause in which the server does all it can, then the rest."""
    await connection.send(head + body[:1024])
    await trio.testing.wait_all_tasks_blocked()
    await connection.send(body[1024:])


async def write_whole(connection: RawConnection, head: bytes, body: bytes) -> None:
    await connection.send(head + body)


Writer = Callable[[RawConnection, bytes, bytes], Awaitable[None]]


@pytest.mark.parametrize("write", [write_in_two_parts, write_whole])
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/api/batch", 400),  # no X-User-Id: answered without a look at the body
        ("DELETE", "/health", 405),
        ("GET", "/health/ready", 200),  # a Quart route that reads no body
        ("GET", "/health", 200),  # answered by the edge
    ],
)
async def test_the_next_request_is_answered_after_an_early_answer(
    bridge: Bridge, write: Writer, method: str, path: str, status: int
) -> None:
    connection = await RawConnection.open(bridge.url)
    head = request_head(method, path, JSON, ("Content-Length", str(len(BODY))))
    await write(connection, head, BODY)
    with trio.fail_after(5):
        first = await connection.response()
    assert first.status == status
    assert first.headers.get("connection") != "close"

    await connection.send(request_head("GET", "/health"))
    with trio.fail_after(1):
        second = await connection.response()
    assert second.status == 200
    assert second.json() == {"status": "ok"}
    await connection.aclose()


async def test_a_body_is_handed_to_the_route_whole(bridge: Bridge) -> None:
    """The edge read it first; the route still gets every byte."""
    connection = await RawConnection.open(bridge.url)
    shape = b'{"shape": "rectangle", "x": 0, "y": 0, "width": 10, "height": 10}'
    body = b'{"boardId": "b", "operations": [{"type": "create_shape", "data": %s}]}' % shape
    head = request_head(
        "POST", "/api/batch", JSON, ("X-User-Id", USER), ("Content-Length", str(len(body)))
    )
    await write_in_two_parts(connection, head, body)
    with trio.fail_after(5):
        answer = await connection.response()
    assert answer.status == 202, answer.body
    assert answer.json()["enqueued"] == 1
    await connection.aclose()


def assert_too_large(response: RawResponse) -> None:
    assert response.status == 413
    assert response.headers["connection"] == "close"
    body = response.json()
    assert body["code"] == "payload_too_large"
    assert body["requestId"] == response.headers["x-request-id"]


@pytest.mark.slow
async def test_a_client_that_writes_its_whole_body_first_sees_the_413(bridge: Bridge) -> None:
    """50 of 50, not a broken pipe: the edge reads the rest of the body before it closes."""
    head = request_head("POST", "/api/logs", JSON, ("Content-Length", str(len(TOO_LARGE))))
    for _ in range(50):
        connection = await RawConnection.open(bridge.url, send_buffer=65536)
        with trio.fail_after(5):
            await connection.send(head + TOO_LARGE)
            assert_too_large(await connection.response())
            assert await connection.closed_by_server()
        await connection.aclose()


async def test_a_chunked_body_over_the_limit_is_a_413_too(start_bridge: StartBridge) -> None:
    bridge = await start_bridge(max_body_bytes=65536)
    head = request_head("POST", "/api/logs", JSON, ("Transfer-Encoding", "chunked"))
    for _ in range(10):
        connection = await RawConnection.open(bridge.url, send_buffer=65536)
        with trio.fail_after(5):
            await connection.send(head + chunked(TOO_LARGE))
            assert_too_large(await connection.response())
            assert await connection.closed_by_server()
        await connection.aclose()


async def test_a_body_that_stops_coming_is_a_408(bridge: Bridge, serve_asgi: ServeASGI) -> None:
    edge = Edge(
        create_quart_app(bridge.settings, bridge.actors),
        bridge.settings,
        bridge.actors.metrics,
        fast_routes=[LIVENESS],
        body_timeout=0.1,
    )
    url = await serve_asgi(edge)
    connection = await RawConnection.open(url)
    await connection.send(request_head("GET", "/health", ("Content-Length", "100")) + b"x" * 10)
    with trio.fail_after(5):
        answer = await connection.response()
        assert answer.status == 408
        assert answer.headers["connection"] == "close"
        assert answer.json()["code"] == "request_timeout"
        assert await connection.closed_by_server()
    await connection.aclose()


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        # Too many header bytes: Hypercorn answers itself, before any app sees the request.
        (request_head("GET", "/health", ("X-Big", "b" * 100_000)), 431, "bad_request"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request"),
    ],
)
async def test_answers_the_server_gives_itself_carry_the_error_body(
    bridge: Bridge, head: bytes, status: int, code: str
) -> None:
    connection = await RawConnection.open(bridge.url)
    await connection.send(head)
    with trio.fail_after(5):
        answer = await connection.response()
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    body = answer.json()
    assert body["code"] == code
    assert body["message"]
    assert body["requestId"] == answer.headers["x-request-id"]
    assert len(body["requestId"]) == 32
    await connection.aclose()
