"""The HTTP layer over real Hypercorn: error bodies, request ids, CORS, HTTPS, limits, probes."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

import attrs
import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from quart import request
from quart_schema import validate_request

from miro_bridge.actors import Actor, Envelope, Message
from miro_bridge.actors.system import ActorSystem, build_actor_system
from miro_bridge.config import Settings
from miro_bridge.errors import Conflict, NotFound, RateLimited
from miro_bridge.http import Edge, create_quart_app
from miro_bridge.http._edge import FastRoute
from tests.support import USER, Bridge

ORIGIN = "https://board.example.com"


@attrs.frozen
class Nap(Message[None, "Sleeper"]):
    seconds: float


class Sleeper(Actor):
    name: ClassVar[str] = "sleeper"

    async def handle(self, envelope: Envelope) -> None:
        assert isinstance(envelope.message, Nap)
        await trio.sleep(envelope.message.seconds)
        envelope.reply(None)


@attrs.frozen
class Point:
    x: float
    y: float


@attrs.define
class Running:
    url: str
    actors: ActorSystem
    client: httpx.AsyncClient


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start(
    settings: Settings, nursery: trio.Nursery, serve_asgi: Callable[[Any], Awaitable[str]]
) -> AsyncIterator[Start]:
    """Start the app (plus a few test-only routes) with settings changed by keyword."""
    clients: list[httpx.AsyncClient] = []

    async def start(**changes: Any) -> Running:
        current = attrs.evolve(settings, **changes)
        actors = build_actor_system(current)
        sleeper = actors.supervisor.add("sleeper", Sleeper, call_timeout=0.5)
        await nursery.start(actors.supervisor.run)
        app = create_quart_app(current, actors)

        @app.get("/test/raise/<kind>")
        async def raise_error(kind: str) -> str:
            if kind == "not-found":
                raise NotFound("no such board")
            if kind == "conflict":
                raise Conflict("key reused with another body")
            if kind == "rate-limited":
                raise RateLimited("Miro budget spent", retry_after=7.2)
            raise RuntimeError("database password=hunter2 at /srv/secret.py line 3")

        @app.get("/test/slow-actor")
        async def slow_actor() -> str:
            await sleeper.call(Nap(5))
            return "done"

        @app.post("/test/points")
        @validate_request(Point)
        async def points(data: Point) -> dict[str, float]:
            return {"sum": data.x + data.y}

        @app.post("/test/echo")
        async def echo() -> dict[str, int]:
            return {"bytes": len(await request.get_data())}

        url = await serve_asgi(Edge(app, current, actors.metrics, fast_routes=()))
        client = httpx.AsyncClient(base_url=url)
        clients.append(client)
        return Running(url, actors, client)

    yield start
    for client in clients:
        await client.aclose()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["requestId"] == response.headers["x-request-id"]
    return body


async def test_health_and_request_ids(start: Start) -> None:
    app = await start()
    response = await app.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    generated = response.headers["x-request-id"]
    assert len(generated) == 32

    response = await app.client.get("/health", headers={"X-Request-ID": "client-1.a_b"})
    assert response.headers["x-request-id"] == "client-1.a_b"
    for bad in ("has space", "x" * 129, "semi;colon"):
        response = await app.client.get("/health", headers={"X-Request-ID": bad})
        assert response.headers["x-request-id"] not in (bad, generated)
        assert len(response.headers["x-request-id"]) == 32


async def test_unknown_route_and_wrong_method(start: Start) -> None:
    app = await start()
    assert_error(await app.client.get("/no/such/route"), 404, "not_found")
    response = await app.client.delete("/health/ready")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_application_errors_map_to_the_contract(start: Start) -> None:
    app = await start()
    body = assert_error(await app.client.get("/test/raise/not-found"), 404, "not_found")
    assert body["message"] == "no such board"
    assert_error(await app.client.get("/test/raise/conflict"), 409, "conflict")
    response = await app.client.get("/test/raise/rate-limited")
    assert_error(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "7"


async def test_unhandled_exception_is_a_500_without_internals(start: Start) -> None:
    app = await start()
    response = await app.client.get("/test/raise/bug", headers={"X-Request-ID": "trace-me"})
    body = assert_error(response, 500, "internal")
    assert body == {"code": "internal", "message": "internal error", "requestId": "trace-me"}
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


async def test_validation_errors_are_422_with_detail(start: Start) -> None:
    app = await start()
    ok = await app.client.post("/test/points", json={"x": 1, "y": 2.5})
    assert ok.json() == {"sum": 3.5}
    response = await app.client.post("/test/points", json={"x": "one", "y": 2})
    body = assert_error(response, 422, "validation_error")
    (problem,) = body["detail"]
    assert problem["loc"] == ["body", "x"]
    assert "float" in problem["msg"]
    assert problem["type"]
    response = await app.client.post(
        "/test/points", content=b"{not json", headers={"content-type": "application/json"}
    )
    body = assert_error(response, 400, "bad_request")
    assert "JSON" in body["message"]


async def test_slow_actor_gives_503(start: Start) -> None:
    app = await start()
    assert_error(await app.client.get("/test/slow-actor"), 503, "unavailable")


async def test_cors_only_for_configured_origins(start: Start) -> None:
    app = await start(cors_origins=(ORIGIN,))
    response = await app.client.get("/health", headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]
    assert "Retry-After" in response.headers["access-control-expose-headers"]

    preflight = await app.client.options(
        "/api/batch",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-user-id, idempotency-key",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = {
        h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")
    }
    assert {"content-type", "x-user-id", "idempotency-key", "authorization"} <= allowed
    assert {"x-request-id", "traceparent", "tracestate"} <= allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["x-request-id"]

    for origin in ("https://evil.example.com", "null"):
        response = await app.client.get("/health", headers={"Origin": origin})
        assert "access-control-allow-origin" not in response.headers
        preflight = await app.client.options(
            "/api/batch", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        assert not any(h.startswith("access-control-") for h in preflight.headers)
        assert_error(preflight, 403, "forbidden")


async def test_force_https(start: Start) -> None:
    app = await start(force_https=True, public_url="https://bridge.example")
    response = await app.client.get(
        "/health/ready?verbose=1", headers={"X-Forwarded-Proto": "http", "Host": "evil.example"}
    )
    assert response.status_code == 308  # to the public origin, whatever Host says
    assert response.headers["location"] == "https://bridge.example/health/ready?verbose=1"
    assert response.headers["x-request-id"]
    secure = await app.client.get("/health", headers={"X-Forwarded-Proto": "https"})
    assert secure.status_code == 200
    assert secure.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"

    plain = await start()
    response = await plain.client.get("/health", headers={"X-Forwarded-Proto": "http"})
    assert response.status_code == 200
    assert "strict-transport-security" not in response.headers


async def test_body_size_limit(start: Start) -> None:
    app = await start(max_body_bytes=1000)
    assert (await app.client.post("/test/echo", content=b"x" * 1000)).json() == {"bytes": 1000}
    # Declared too large: refused at the edge before the body is read.
    assert_error(await app.client.post("/test/echo", content=b"x" * 1001), 413, "payload_too_large")

    # No Content-Length (chunked): the bytes actually received are counted.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 300

    response = await app.client.post("/test/echo", content=chunks())
    assert_error(response, 413, "payload_too_large")


async def test_readiness_reports_each_actor_and_the_database(start: Start) -> None:
    app = await start()
    response = await app.client.get("/health/ready")
    assert response.status_code == 200
    names = [ref.name for ref in app.actors.supervisor.refs]
    assert response.json() == {
        "status": "ok",
        "actors": dict.fromkeys(names, "running"),
        "database": "ok",
        "miro": "sandbox",
        "backend": "sqlite",
        "instance": f"{socket.gethostname()}:{os.getpid()}",
    }
    assert {"store", "token_store", "miro_client", "board_cache", "sleeper"} <= set(names)
    app.actors.store.close()  # the store drains and stops for good
    await trio.sleep(0.05)
    response = await app.client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["actors"]["store"] == "down"
    assert body["database"] == "unreachable"
    assert set(body) == {"status", "actors", "database", "miro", "backend", "instance"}


async def test_metrics_use_route_templates(start: Start) -> None:
    app = await start()
    await app.client.get("/test/raise/not-found")
    await app.client.get("/test/raise/conflict")
    await app.client.get("/health/ready")
    await app.client.get("/no/such/thing/42")
    response = await app.client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}

    durations = {
        (s.labels["method"], s.labels["route"], s.labels["status_code"])
        for s in families["http_server_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert ("GET", "/test/raise/<kind>", "404") in durations
    assert ("GET", "/test/raise/<kind>", "409") in durations
    assert ("GET", "/health/ready", "200") in durations
    assert ("GET", "unmatched", "404") in durations
    assert not any("42" in route or "not-found" in route for _, route, _ in durations)

    names = {ref.name for ref in app.actors.supervisor.refs}
    restarts = {s.labels["actor"]: s.value for s in families["actor_restarts"].samples}
    assert restarts == dict.fromkeys(names, 0)
    depth = {s.labels["actor"] for s in families["actor_mailbox_depth"].samples}
    assert depth == names
    assert families["http_server_active_requests"].samples[0].value == 1  # this scrape


async def test_trailing_slash_is_the_same_route(start: Start) -> None:
    app = await start()
    response = await app.client.get("/health/ready/")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_openapi_document_is_generated(start: Start) -> None:
    app = await start()
    document = (await app.client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    assert {"/health", "/health/ready", "/metrics"} <= set(document["paths"])
    ready = document["paths"]["/health/ready"]["get"]["responses"]
    assert {"200", "503"} <= set(ready)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/users"),
        ("POST", "/api/batch"),
        ("POST", "/api/cards?boardId=b"),
        ("POST", "/api/boards/b/ops"),
        ("POST", "/api/boards/b/shapes"),
        ("PUT", "/api/boards/b/shapes/i"),
        ("POST", "/api/logs"),
        ("POST", "/api/webhook"),
    ],
)
async def test_a_body_that_is_not_utf8_is_a_400(bridge: Bridge, method: str, path: str) -> None:
    response = await bridge.client.request(
        method,
        path,
        content=b'{"id": "\xff\xfe"}',
        headers={"Content-Type": "application/json", "X-User-Id": USER},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"


async def test_a_failure_of_the_edge_itself_is_still_the_error_body(
    settings: Settings, serve_asgi: Callable[[Any], Awaitable[str]]
) -> None:
    def broken(path: str, headers: Mapping[bytes, bytes]) -> bytes | None:
        raise RuntimeError("a bug in a fast route")

    actors = build_actor_system(settings)
    app = create_quart_app(settings, actors)
    edge = Edge(app, settings, actors.metrics, fast_routes=[FastRoute("/boom", "/boom", broken)])
    async with httpx.AsyncClient(base_url=await serve_asgi(edge)) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "edge-1"})
    assert response.status_code == 500
    assert response.json() == {
        "code": "internal",
        "message": "internal error",
        "requestId": "edge-1",
    }
    assert response.headers["x-request-id"] == "edge-1"
