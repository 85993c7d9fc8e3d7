"""The LegacyProxy actor: the pump stops, and lets go of the upstream, whenever nobody reads."""

from __future__ import annotations

import functools
import math
from typing import Any

import attrs
import trio

from miro_bridge.actors import ActorRef, Supervisor
from miro_bridge.actors.legacy_proxy import Forward, LegacyProxy, end_to_end
from miro_bridge.metrics import Metrics
from tests.support import Receive, Send, ServeASGI, answer_lifespan


@attrs.define
class Ticker:
    """An upstream that answers once `answer` is set, then sends chunks until its client leaves."""

    asked: trio.Event = attrs.field(factory=trio.Event)
    answer: trio.Event = attrs.field(factory=trio.Event)
    gone: trio.Event = attrs.field(factory=trio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        await receive()  # the (empty) body
        self.asked.set()
        async with trio.open_nursery() as nursery:

            async def tick() -> None:
                await self.answer.wait()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                while True:
                    await send({"type": "http.response.body", "body": b"tick", "more_body": True})
                    await trio.sleep(0.01)

            nursery.start_soon(tick)
            while (await receive())["type"] != "http.disconnect":
                pass
            self.gone.set()
            nursery.cancel_scope.cancel()


GET = Forward("GET", "/api/ticks", b"", (), b"")


async def start_proxy(
    nursery: trio.Nursery, url: str, upstream_timeout: float = 60.0
) -> tuple[ActorRef, Metrics]:
    metrics = Metrics()
    supervisor = Supervisor()
    ref = supervisor.add("legacy_proxy", lambda: LegacyProxy(url, upstream_timeout, metrics))
    await nursery.start(supervisor.run)
    return ref, metrics


def count(metrics: Metrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value("legacy_proxy_requests_total", {"outcome": outcome})


def test_hop_by_hop_headers_are_dropped() -> None:
    headers = [
        ("Connection", "keep-alive, X-Hop"),
        ("connection", "x-other"),
        ("x-hop", "1"),
        ("X-Other", "2"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("TE", "trailers"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic eA=="),
        ("X-Kept", "3"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    assert end_to_end(headers) == [("X-Kept", "3"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


async def test_closing_the_body_lets_go_of_the_upstream(
    nursery: trio.Nursery, serve_asgi: ServeASGI
) -> None:
    upstream = Ticker()
    upstream.answer.set()
    proxy, metrics = await start_proxy(nursery, await serve_asgi(upstream))
    answer = await proxy.call(GET)
    assert answer.status == 200
    with answer.body:
        assert await answer.body.receive() == b"tick"
    with trio.fail_after(10):
        await upstream.gone.wait()  # closing the body let go of the upstream
    assert count(metrics, "client_closed") == 1


async def test_a_caller_that_gives_up_before_the_head(
    nursery: trio.Nursery, serve_asgi: ServeASGI
) -> None:
    upstream = Ticker()
    proxy, metrics = await start_proxy(nursery, await serve_asgi(upstream))
    with trio.fail_after(10):
        async with trio.open_nursery() as callers:
            callers.start_soon(functools.partial(proxy.call, GET, timeout=math.inf))
            await upstream.asked.wait()
            callers.cancel_scope.cancel()  # the client went away while the head was awaited
        upstream.answer.set()
        await upstream.gone.wait()
    assert count(metrics, "client_closed") == 1
    assert count(metrics, "forwarded") == 0


async def test_a_reader_that_never_starts_is_given_up_on(
    nursery: trio.Nursery, serve_asgi: ServeASGI
) -> None:
    upstream = Ticker()
    upstream.answer.set()
    proxy, metrics = await start_proxy(nursery, await serve_asgi(upstream), upstream_timeout=0.5)
    answer = await proxy.call(GET)  # and never read: the HTTP side lost its client
    with trio.fail_after(10):
        await upstream.gone.wait()
    assert count(metrics, "client_closed") == 1
    answer.body.close()
