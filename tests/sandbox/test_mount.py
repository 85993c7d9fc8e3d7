"""The app mounted under a path prefix (ASGI `root_path`), as `serve --sandbox` mounts it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from miro_bridge.sandbox import Faults, Sandbox

from .conftest import USER, bearer

PREFIX = "/_sandbox"
HOST = "http://bridge.test:8000"


@pytest.fixture
async def mounted(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A client calling the app in-process with `root_path` set and the full path kept."""
    # Quart types its ASGI callable with Hypercorn's TypedDicts, httpx with plain mappings.
    transport = httpx.ASGITransport(app=sandbox.app, root_path=PREFIX)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=HOST) as client:
        yield client


async def test_links_carry_the_prefix(mounted: httpx.AsyncClient, sandbox: Sandbox) -> None:
    auth = bearer(sandbox.issue_tokens(USER))
    created = await mounted.post(f"{PREFIX}/v2/boards", json={"name": "Mounted"}, headers=auth)
    assert created.status_code == 201
    board = created.json()
    assert board["links"]["self"].startswith(f"{HOST}{PREFIX}/v2/boards/uXjV")
    assert board["viewLink"].startswith(f"{HOST}{PREFIX}/app/board/")

    fetched = await mounted.get(board["links"]["self"], headers=auth)
    assert fetched.json()["id"] == board["id"]
    items = f"{board['links']['self']}/items"
    bulk = [{"type": "card", "data": {"title": str(n)}} for n in range(15)]
    await mounted.post(f"{items}/bulk", json=bulk, headers=auth)
    page = (await mounted.get(items, headers=auth)).json()
    assert page["links"]["next"].startswith(f"{HOST}{PREFIX}/v2/boards/")
    rest = (await mounted.get(page["links"]["next"], headers=auth)).json()
    assert rest["data"][0]["links"]["self"].startswith(f"{HOST}{PREFIX}/v2/boards/")
    assert len(page["data"]) + len(rest["data"]) == 15


async def test_log_paths_are_below_the_mount_point(
    mounted: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    auth = bearer(sandbox.issue_tokens(USER))
    await mounted.get(f"{PREFIX}/v2/boards", headers=auth)
    log = (await mounted.get(f"{PREFIX}/_admin/requests")).json()["requests"]
    assert log == [
        {"method": "GET", "path": "/v2/boards", "user": USER, "status": 200, "credits": 50}
    ]


async def test_admin_routes_under_the_prefix_are_not_faulted(
    mounted: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await mounted.post(f"{PREFIX}/_admin/faults", json={"error_rate": 1.0})
    assert response.status_code == 204
    assert (await mounted.get(f"{PREFIX}/v2/boards")).status_code in {500, 502, 503}
    assert (await mounted.post(f"{PREFIX}/_admin/faults", json={})).status_code == 204
    assert sandbox.faults == Faults()


async def test_oauth_redirect_goes_to_the_client(mounted: httpx.AsyncClient) -> None:
    params = {
        "response_type": "code",
        "client_id": "sandbox-client",
        "redirect_uri": "http://localhost:8000/auth/callback",
    }
    response = await mounted.get(f"{PREFIX}/oauth/authorize", params=params)
    assert response.status_code == 302
    assert response.headers["location"].startswith("http://localhost:8000/auth/callback?code=")
