"""serve(): Hypercorn on a real port, reported when ready, stopped by cancellation."""

from __future__ import annotations

import re
import socket

import httpx
import pytest
import trio

from miro_bridge.sandbox import Sandbox, SandboxConfig, serve

from .conftest import USER, bearer, trio_clock


async def test_serve_reports_the_real_url(nursery: trio.Nursery, sandbox: Sandbox) -> None:
    url = await nursery.start(serve, sandbox)
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", url)
    assert match is not None
    assert int(match.group(1)) > 0
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/v2/boards", headers=bearer(sandbox.issue_tokens(USER)))
    assert response.status_code == 200


async def test_serve_stops_when_cancelled(sandbox: Sandbox) -> None:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, sandbox)
        nursery.cancel_scope.cancel()
    async with httpx.AsyncClient(base_url=url) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/_admin/requests")


async def test_sandboxes_are_independent(nursery: trio.Nursery) -> None:
    first = Sandbox(SandboxConfig(clock=trio_clock))
    second = Sandbox(SandboxConfig(clock=trio_clock, client_id="other-app"))
    urls = [await nursery.start(serve, first), await nursery.start(serve, second)]
    assert urls[0] != urls[1]
    first.create_board(USER)
    async with httpx.AsyncClient() as client:
        for sandbox, url, count in [(first, urls[0], 1), (second, urls[1], 0)]:
            auth = bearer(sandbox.issue_tokens(USER))
            boards = await client.get(f"{url}/v2/boards", headers=auth)
            assert boards.json()["total"] == count
        stranger = await client.get(
            f"{urls[1]}/v2/boards", headers=bearer(first.issue_tokens(USER))
        )
        assert stranger.status_code == 401


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_serve_on_ipv6_loopback(nursery: trio.Nursery, sandbox: Sandbox) -> None:
    url = await nursery.start(serve, sandbox, "::1")
    assert url.startswith("http://[::1]:")
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/_admin/requests")).status_code == 200
