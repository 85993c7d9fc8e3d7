"""Unrouted `/api/...` requests, proxied to a tiny legacy service served on loopback."""

from __future__ import annotations

import gzip
import json
import socket
from typing import Any

import attrs
import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    CLIENT_SPAN,
    CLIENT_TRACE,
    TRACEPARENT,
    USER,
    Bridge,
    Receive,
    Receiver,
    Send,
    ServeASGI,
    StartBridge,
    answer_lifespan,
    read_body,
)


@attrs.frozen
class Received:
    """A request as the legacy service saw it."""

    method: str
    path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def values(self, name: str) -> list[bytes]:
        return [value for key, value in self.headers if key == name.encode()]


def start(status: int, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def chunk(body: bytes, *, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": more}


@attrs.define
class Legacy:
    """A legacy service in raw ASGI: records each request, answers by what follows /api/legacy/."""

    received: list[Received] = attrs.field(factory=list)
    release: trio.Event = attrs.field(factory=trio.Event)  # /stream sends its second chunk
    gone: trio.Event = attrs.field(factory=trio.Event)  # the client of /forever went away

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        body = await read_body(receive)
        self.received.append(
            Received(
                scope["method"], scope["raw_path"], scope["query_string"], scope["headers"], body
            )
        )
        name = scope["path"].removeprefix("/api/legacy/").split("/")[0]
        if name == "echo":
            await send(
                start(
                    201,
                    (b"content-type", b"application/x-legacy"),
                    (b"x-legacy", b"yes"),
                    (b"set-cookie", b"a=1; Path=/"),
                    (b"set-cookie", b"b=2; Path=/"),
                    (b"connection", b"x-legacy-hop"),
                    (b"x-legacy-hop", b"secret"),
                    (b"keep-alive", b"timeout=5"),
                    (b"x-request-id", b"legacy-own-id"),
                    (b"access-control-allow-origin", b"*"),
                )
            )
            await send(chunk(b"legacy says hi", more=False))
        elif name == "teapot":
            teapot = b'{"error": "short and stout"}'
            length = str(len(teapot)).encode()
            await send(
                start(418, (b"content-type", b"application/json"), (b"content-length", length))
            )
            await send(chunk(teapot, more=False))
        elif name == "gzip":
            packed = gzip.compress(b"squeezed " * 100)
            await send(
                start(
                    200,
                    (b"content-type", b"text/plain"),
                    (b"content-encoding", b"gzip"),
                    (b"content-length", str(len(packed)).encode()),
                )
            )
            await send(chunk(packed, more=False))
        elif name == "bare":
            await send(start(200))
            await send(chunk(b"no type", more=False))
        elif name == "stream":
            await send(start(200, (b"content-type", b"text/plain")))
            await send(chunk(b"first"))
            await self.release.wait()
            await send(chunk(b"second", more=False))
        elif name == "forever":
            await self._forever(receive, send)
        elif name == "broken":  # ends without the end of the body: Hypercorn drops the connection
            await send(start(200, (b"content-type", b"text/plain")))
            await send(chunk(b"partial"))
        elif name == "hang":
            await trio.sleep_forever()
        else:
            await send(start(404))
            await send(chunk(b"", more=False))

    async def _forever(self, receive: Receive, send: Send) -> None:
        """Send chunks until the client goes away."""
        async with trio.open_nursery() as nursery:

            async def tick() -> None:
                await send(start(200, (b"content-type", b"text/plain")))
                while True:
                    await send(chunk(b"tick"))
                    await trio.sleep(0.01)

            nursery.start_soon(tick)
            while (await receive())["type"] != "http.disconnect":
                pass
            self.gone.set()
            nursery.cancel_scope.cancel()


@pytest.fixture
def legacy() -> Legacy:
    return Legacy()


@pytest.fixture
async def legacy_url(legacy: Legacy, serve_asgi: ServeASGI) -> str:
    return await serve_asgi(legacy)


@pytest.fixture
async def proxy(start_bridge: StartBridge, legacy_url: str) -> Bridge:
    return await start_bridge(legacy_base_url=legacy_url)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["requestId"] == response.headers["x-request-id"]


async def outcomes(bridge: Bridge) -> dict[str, float]:
    text = (await bridge.client.get("/metrics")).text
    (family,) = (
        f for f in text_string_to_metric_families(text) if f.name == "legacy_proxy_requests"
    )
    return {s.labels["outcome"]: s.value for s in family.samples if s.name.endswith("_total")}


async def test_a_request_goes_upstream_and_its_answer_comes_back(
    proxy: Bridge, legacy: Legacy, legacy_url: str
) -> None:
    body = b"\x00raw\xffbody"
    response = await proxy.client.request(
        "PATCH",
        "/api/legacy/echo/a%20b?x=1&y=two+words&z",
        content=body,
        headers={
            "Content-Type": "application/octet-stream",
            "X-User-Id": USER,
            "Authorization": "Bearer some-token",
            "X-Request-ID": "proxy-test-1",
            "X-Forwarded-For": "203.0.113.9",
            "Connection": "keep-alive, X-Client-Hop",
            "X-Client-Hop": "secret",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "TE": "trailers",
            "Trailer": "X-Checksum",
        },
    )

    [seen] = legacy.received
    assert (seen.method, seen.path, seen.query) == (
        "PATCH",
        b"/api/legacy/echo/a%20b",
        b"x=1&y=two+words&z",
    )
    assert seen.body == body
    assert seen.values("content-type") == [b"application/octet-stream"]
    assert seen.values("x-user-id") == [USER.encode()]
    assert seen.values("authorization") == [b"Bearer some-token"]
    assert seen.values("content-length") == [str(len(body)).encode()]
    for hop in ("connection", "x-client-hop", "keep-alive", "proxy-authorization", "te", "trailer"):
        assert seen.values(hop) == [], hop
    assert seen.values("host") == [legacy_url.removeprefix("http://").encode()]
    assert seen.values("x-forwarded-for") == [b"203.0.113.9, 127.0.0.1"]
    assert seen.values("x-forwarded-proto") == [b"http"]
    assert seen.values("x-forwarded-host") == [proxy.url.removeprefix("http://").encode()]
    assert seen.values("x-request-id") == [b"proxy-test-1"]
    assert seen.values("accept-encoding") == [proxy.client.headers["accept-encoding"].encode()]

    assert response.status_code == 201
    assert response.content == b"legacy says hi"
    assert response.headers["content-type"] == "application/x-legacy"
    assert response.headers["x-legacy"] == "yes"
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    for dropped in ("x-legacy-hop", "keep-alive", "access-control-allow-origin"):
        assert dropped not in response.headers, dropped
    assert response.headers.get_list("x-request-id") == ["proxy-test-1"]  # ours, not theirs
    assert len(response.headers.get_list("date")) == 1

    # The proxy adds nothing of its own: no cookie kept from an earlier answer (it would be
    # another user's), no Accept-Encoding the client did not send.
    async with httpx.AsyncClient(base_url=proxy.url) as stranger:
        del stranger.headers["accept-encoding"]
        assert (await stranger.get("/api/legacy/echo")).status_code == 201
    assert legacy.received[1].values("cookie") == []
    assert legacy.received[1].values("accept-encoding") == []

    metrics = (await proxy.client.get("/metrics")).text
    assert 'route="legacy_proxy"' in metrics
    assert "/api/legacy" not in metrics
    assert (await outcomes(proxy))["forwarded"] == 2


async def test_forwarded_headers_of_an_untrusted_peer_are_not_passed_on(
    start_bridge: StartBridge, legacy: Legacy, legacy_url: str
) -> None:
    bridge = await start_bridge(legacy_base_url=legacy_url, trusted_proxies=())
    await bridge.client.get(
        "/api/legacy/echo",
        headers={
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "elsewhere.example",
        },
    )
    [seen] = legacy.received
    assert seen.values("x-forwarded-for") == [b"127.0.0.1"]  # our peer only, nothing forged
    assert seen.values("x-forwarded-proto") == [b"http"]
    assert seen.values("x-forwarded-host") == [bridge.url.removeprefix("http://").encode()]


async def test_upstream_statuses_and_headers_pass_through(proxy: Bridge) -> None:
    teapot = await proxy.client.get("/api/legacy/teapot")
    assert teapot.status_code == 418
    assert teapot.content == b'{"error": "short and stout"}'
    assert teapot.headers["content-type"] == "application/json"
    assert teapot.headers["content-length"] == str(len(teapot.content))  # not re-chunked

    bare = await proxy.client.get("/api/legacy/bare")
    assert bare.status_code == 200
    assert bare.content == b"no type"
    assert "content-type" not in bare.headers  # none invented on the way

    head = await proxy.client.head("/api/legacy/teapot")
    assert head.status_code == 418
    assert head.headers["content-length"] == str(len(teapot.content))
    assert head.content == b""

    packed = await proxy.client.get("/api/legacy/gzip")  # relayed still compressed
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["content-length"] == str(len(gzip.compress(b"squeezed " * 100)))
    assert packed.content == b"squeezed " * 100  # httpx decompressed it

    missing = await proxy.client.get("/api/legacy/nothing-here")
    assert missing.status_code == 404  # the legacy service's own 404, relayed
    assert missing.content == b""
    assert (await outcomes(proxy))["forwarded"] == 5


async def test_the_body_is_streamed_as_it_arrives(proxy: Bridge, legacy: Legacy) -> None:
    # The upstream sends its second chunk only once the first has come through the bridge:
    # a bridge that buffered the body would never deliver the first.
    with trio.fail_after(10):
        async with proxy.client.stream("GET", "/api/legacy/stream") as response:
            assert response.status_code == 200
            chunks = response.aiter_raw()
            first = b""
            while len(first) < len(b"first"):
                first += await anext(chunks)
            assert first == b"first"
            legacy.release.set()
            rest = b"".join([part async for part in chunks])
    assert rest == b"second"
    assert (await outcomes(proxy))["forwarded"] == 1


async def test_a_client_that_goes_away_stops_the_upstream(proxy: Bridge, legacy: Legacy) -> None:
    with trio.fail_after(10):
        async with proxy.client.stream("GET", "/api/legacy/forever") as response:
            async for part in response.aiter_raw():
                assert part.startswith(b"tick")
                break
        await legacy.gone.wait()  # the bridge closed its upstream request
    assert (await outcomes(proxy))["client_closed"] == 1


async def test_a_body_that_breaks_off_cuts_the_response_short(proxy: Bridge) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        await proxy.client.get("/api/legacy/broken")
    assert (await outcomes(proxy))["upstream_error"] == 1
    assert (await proxy.client.get("/api/legacy/teapot")).status_code == 418  # still serving


async def test_an_upstream_that_is_down_is_502(start_bridge: StartBridge) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bridge = await start_bridge(legacy_base_url=f"http://127.0.0.1:{port}")
    response = await bridge.client.post("/api/legacy/echo", json={})
    assert_error(response, 502, "upstream_error")
    assert str(port) not in response.text  # where the legacy service lives is not the client's
    assert (await outcomes(bridge))["upstream_error"] == 1


async def test_an_upstream_that_never_answers_is_504(
    start_bridge: StartBridge, legacy_url: str
) -> None:
    bridge = await start_bridge(legacy_base_url=legacy_url, http_timeout_seconds=0.5)
    assert_error(await bridge.client.get("/api/legacy/hang"), 504, "upstream_timeout")
    assert (await outcomes(bridge))["timeout"] == 1


async def test_our_own_routes_and_errors_are_not_forwarded(proxy: Bridge, legacy: Legacy) -> None:
    wrong_method = await proxy.client.delete("/api/batch")
    assert_error(wrong_method, 405, "method_not_allowed")
    unknown_job = await proxy.client.get("/api/jobs/no-such-job", headers={"X-User-Id": USER})
    assert_error(unknown_job, 404, "not_found")
    assert_error(await proxy.client.get("/not-api/legacy/echo"), 404, "not_found")
    assert_error(await proxy.client.get("/api"), 404, "not_found")
    assert legacy.received == []
    assert set((await outcomes(proxy)).values()) == {0}


async def test_without_a_legacy_base_nothing_is_proxied(bridge: Bridge) -> None:
    assert bridge.actors.legacy is None
    assert "legacy_proxy" not in [s.name for s in bridge.actors.supervisor.statistics()]
    assert_error(await bridge.client.get("/api/legacy/echo"), 404, "not_found")
    assert await outcomes(bridge) == {
        "forwarded": 0,
        "upstream_error": 0,
        "timeout": 0,
        "client_closed": 0,
    }


async def test_with_tracing_on_the_legacy_service_continues_the_trace(
    start_bridge: StartBridge, legacy: Legacy, legacy_url: str, serve_asgi: ServeASGI
) -> None:
    collector = await serve_asgi(Receiver())
    traced = await start_bridge(legacy_base_url=legacy_url, otel_exporter_otlp_endpoint=collector)
    response = await traced.client.get(
        "/api/legacy/echo", headers={"traceparent": TRACEPARENT, "X-User-Id": USER}
    )
    assert response.status_code == 201
    [sent] = legacy.received[-1].values("traceparent")
    version, trace_id, parent, flags = sent.decode().split("-")
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "01")  # the caller's trace
    assert parent != CLIENT_SPAN  # continued by our own span, not passed through


async def test_with_tracing_off_the_callers_traceparent_passes_through(
    proxy: Bridge, legacy: Legacy
) -> None:
    response = await proxy.client.get("/api/legacy/echo", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 201
    assert legacy.received[-1].values("traceparent") == [TRACEPARENT.encode()]


async def raw_request(url: str, target: bytes) -> tuple[int, bytes]:
    """Send `GET <target>` as written (no client normalises it); the status and body."""
    host, port = url.removeprefix("http://").split(":")
    request = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(request)
        answer = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in answer:
                answer += await stream.receive_some()
            head, _, body = answer.partition(b"\r\n\r\n")
            lengths = [
                int(line.split(b":")[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            ]
            while (len(body) < lengths[0]) if lengths else not body.endswith(b"0\r\n\r\n"):
                body += await stream.receive_some()
    return int(head.split(b" ")[1]), body


async def test_the_proxy_only_ever_calls_the_legacy_service(
    proxy: Bridge, legacy: Legacy, serve_asgi: ServeASGI
) -> None:
    other = Legacy()  # another service on loopback, e.g. the sandbox's admin routes
    other_url = await serve_asgi(other)
    other_host = other_url.removeprefix("http://").encode()
    attacks = [
        b"%2fapi%2f@" + other_host + b"/internal",  # the raw path as the URL's user info
        b"%2Fapi/legacy/echo",
        b"http://" + other_host + b"/api/legacy/echo",  # absolute form
        b"/api/../admin",
        b"/api/legacy/../../admin",
        b"/api/%2e%2e/admin",
        b"/api/.%2E/admin",
        b"/api/legacy/echo/..%2F..%2Fadmin",
        b"/api/legacy/echo%5c..%5cadmin",
        b"/api/./legacy/echo",
    ]
    for target in attacks:
        status, body = await raw_request(proxy.url, target)
        assert status == 400, (target, body)
        assert json.loads(body)["code"] == "bad_request"
    assert other.received == []
    assert legacy.received == []
    status, _ = await raw_request(proxy.url, b"/api/legacy/echo/%41?x=1")
    assert status == 201
    [seen] = legacy.received
    assert (seen.path, seen.query) == (b"/api/legacy/echo/%41", b"x=1")


def test_the_upstream_url_is_built_from_parts() -> None:
    from miro_bridge.actors.legacy_proxy import Forward, LegacyProxy
    from miro_bridge.metrics import Metrics

    actor = LegacyProxy("http://legacy.internal:5000/base/", 5.0, Metrics())
    plain = actor._url(Forward("GET", "/api/x", b"", (), b""))
    assert str(plain) == "http://legacy.internal:5000/base/api/x"  # no stray "?"
    queried = actor._url(Forward("GET", "/api/x%20y", b"a=1&b", (), b""))
    assert str(queried) == "http://legacy.internal:5000/base/api/x%20y?a=1&b"
    tricky = actor._url(Forward("GET", "/api/@evil.example:1/x", b"", (), b""))
    assert (tricky.host, tricky.port) == ("legacy.internal", 5000)
