"""A sync never reverts a write: what we write while a listing is under way survives it.

The listing is held at its last step (the tags) by a gate in front of the sandbox, so that
writes land exactly while it is under way; Miro's `modifiedAt` moves between them.
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from miro_bridge.actors.board_cache import SyncBoard
from miro_bridge.sandbox import Sandbox, SandboxConfig
from tests.support import USER, Bridge, Gate, ManualClock, Miro, ServeASGI, bearer, connect

pytestmark = pytest.mark.backends
H = {"X-User-Id": USER}


@pytest.fixture
def gate(sandbox_config: SandboxConfig) -> Gate:
    return Gate(Sandbox(sandbox_config), "/tags")


@pytest.fixture
async def miro(serve_asgi: ServeASGI, gate: Gate) -> Miro:
    return Miro(gate.sandbox, await serve_asgi(gate))


async def test_writes_during_a_sync_are_kept(
    bridge: Bridge, miro: Miro, gate: Gate, clock: ManualClock
) -> None:
    token = await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        for n in range(3):
            body = {"data": {"shape": "circle", "content": f"item {n}"}}
            assert (
                await client.post(f"/v2/boards/{board_id}/shapes", json=body)
            ).status_code == 201
    first = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    edited, deleted, _ = (item["id"] for item in first["items"])
    versions = [first["version"]]

    gate.closed = True
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bridge.actors.boards.call, SyncBoard(USER, board_id))
        await gate.reached.wait()  # the items are listed; the tags are being fetched
        clock.advance(5)  # Miro's modifiedAt moves
        shape = {"shape": "circle", "x": 0, "y": 0, "width": 50, "height": 50, "text": "edited"}
        put = await bridge.client.put(
            f"/api/boards/{board_id}/shapes/{edited}", json=shape, headers=H
        )
        assert put.status_code == 200
        gone = await bridge.client.delete(f"/api/boards/{board_id}/shapes/{deleted}", headers=H)
        assert gone.status_code == 204
        created = await bridge.client.post(
            f"/api/boards/{board_id}/shapes", json=[shape], headers=H
        )
        new_id = json.loads(created.json()[0]["body"])["id"]
        for _ in range(3):
            versions.append(
                (await bridge.client.get(f"/api/boards/{board_id}/shapes", headers=H)).json()[
                    "version"
                ]
            )
        gate.opened.set()
    after = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    versions.append(after["version"])
    items = {item["id"]: item for item in after["items"]}
    assert items[edited]["data"]["content"] == "edited"  # not reverted to the listing's
    assert deleted not in items  # not brought back by the listing
    assert new_id in items  # not dropped for missing from the listing
    assert versions == sorted(versions)  # versions only rise
    changes = (
        await bridge.client.get(
            f"/api/boards/{board_id}/changes?since={first['version']}", headers=H
        )
    ).json()
    assert changes["deleted"] == [deleted]
    assert {item["id"] for item in changes["changed"]} == {edited, new_id}
