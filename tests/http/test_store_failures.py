"""A database that cannot write (a full disk): 503s, no crash loop, recovery when space returns.

The failures are injected in SQLite itself: `PRAGMA query_only` makes every write fail
(`SQLITE_READONLY`), `PRAGMA max_page_count` makes the file unable to grow (`SQLITE_FULL`,
what a full disk gives).
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from miro_bridge.sandbox import Faults
from miro_bridge.store import users
from miro_bridge.store.crypto import TokenCipher
from miro_bridge.store.sqlite.faults import Pragma
from tests.support import USER, Bridge, Miro, connect, wait_for_job

H = {"X-User-Id": USER}


async def pragma(bridge: Bridge, statement: str) -> Any:
    return await bridge.actors.store.call(Pragma(statement.removeprefix("PRAGMA ")))


async def ready(bridge: Bridge) -> tuple[int, dict[str, Any]]:
    response = await bridge.client.get("/health/ready")
    return response.status_code, response.json()


def restarts(bridge: Bridge) -> int:
    return sum(stats.restarts for stats in bridge.actors.supervisor.statistics())


async def test_writes_failing_are_503s_and_the_service_stays_up(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    await pragma(bridge, "PRAGMA query_only = ON")

    logs = await bridge.client.post(
        "/api/logs", json=[{"timestamp": "t", "level": "info", "message": "m"}], headers=H
    )
    cards = await bridge.client.post(
        f"/api/cards?boardId={board_id}", json=[{"title": "a"}], headers=H
    )
    for response in (logs, cards):
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "unavailable"
        assert "SQLITE_READONLY" in response.json()["message"]
    status, body = await ready(bridge)
    assert (status, body["database"], body["status"]) == (503, "unwritable", "unavailable")
    assert set(body["actors"].values()) == {"running"}
    assert (await bridge.client.get("/health")).status_code == 200
    for _ in range(5):  # the queue's dispatcher keeps trying; nothing crashes
        await trio.sleep(0.02)
    assert restarts(bridge) == 0

    await pragma(bridge, "PRAGMA query_only = OFF")
    status, body = await ready(bridge)
    assert (status, body["database"]) == (200, "ok")
    accepted = await bridge.client.post(
        f"/api/cards?boardId={board_id}", json=[{"title": "a"}], headers=H
    )
    assert accepted.status_code == 202
    assert (await wait_for_job(bridge, accepted.json()["jobId"]))["status"] == "done"
    assert restarts(bridge) == 0


async def test_a_full_disk_is_noticed_and_so_is_its_end(bridge: Bridge) -> None:
    (pages,) = await pragma(bridge, "PRAGMA page_count")
    await pragma(bridge, f"PRAGMA max_page_count = {pages}")  # the file cannot grow any more
    entries = [{"timestamp": "t", "level": "info", "message": "x" * 1000}] * 200
    full = await bridge.client.post("/api/logs", json=entries, headers=H)
    assert full.status_code == 503, full.text
    assert "SQLITE_FULL" in full.json()["message"]
    assert (await ready(bridge))[1]["database"] == "unwritable"

    await pragma(bridge, "PRAGMA max_page_count = 1073741823")  # space is back
    assert await ready(bridge) == (200, (await ready(bridge))[1])
    status, body = await ready(bridge)
    assert (status, body["database"]) == (200, "ok")
    stored = await bridge.client.post("/api/logs", json=entries, headers=H)
    assert stored.status_code == 202


async def test_work_done_at_miro_is_recorded_once_writes_work_again(
    bridge: Bridge, miro: Miro
) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    miro.sandbox.set_faults(Faults(latency_ms=(300, 300)))  # the bulk call is under way...
    accepted = await bridge.client.post(
        f"/api/cards?boardId={board_id}", json=[{"title": f"c{n}"} for n in range(5)], headers=H
    )
    assert accepted.status_code == 202
    with trio.fail_after(10):
        while not any(r["path"].endswith("/items/bulk") for r in miro.sandbox.requests()):  # noqa: ASYNC110 -- the sandbox has no event to wait on
            await trio.sleep(0.01)
    await pragma(bridge, "PRAGMA query_only = ON")  # ...when the disk fills up
    await trio.sleep(0.6)  # Miro answers meanwhile; the outcome waits to be recorded
    job = (await bridge.client.get(f"/api/jobs/{accepted.json()['jobId']}", headers=H)).json()
    assert job["status"] == "working"
    await pragma(bridge, "PRAGMA query_only = OFF")
    job = await wait_for_job(bridge, accepted.json()["jobId"])
    assert job["status"] == "done"
    bulk = [r for r in miro.sandbox.requests() if r["path"].endswith("/items/bulk")]
    assert len(bulk) == 1  # created once: the outcome was held, not retried
    assert restarts(bridge) == 0


async def test_a_refreshed_token_pair_outlives_a_full_disk(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    miro.sandbox.expire_tokens()
    await pragma(bridge, "PRAGMA query_only = ON")
    # Reading the board refreshes the token at Miro (which retires the old pair) while the
    # new pair cannot be stored: it is kept, and the read still works.
    read = await bridge.client.get(f"/api/cache/{board_id}", headers=H)
    assert read.status_code == 200, read.text
    assert any(r["path"] == "/v1/oauth/token" for r in miro.sandbox.requests())

    await pragma(bridge, "PRAGMA query_only = OFF")
    again = await bridge.client.get(f"/api/boards/{board_id}/shapes/1", headers=H)
    assert again.status_code == 404  # a Miro call with the kept token, which stores it
    stored = await bridge.actors.store.call(users.GetTokens(USER))
    assert stored is not None
    assert stored.refresh_token is not None
    cipher = TokenCipher(bridge.settings.encryption_keys)
    refreshed = await miro_token_answer(miro, cipher.decrypt(stored.refresh_token))
    assert refreshed.status_code == 200, refreshed.text  # the stored pair is Miro's current one


async def miro_token_answer(miro: Miro, refresh_token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=miro.url) as client:
        return await client.post(
            "/v1/oauth/token",
            data={
                "grant_type": "refresh_token",
                "client_id": miro.sandbox.config.client_id,
                "client_secret": miro.sandbox.config.client_secret,
                "refresh_token": refresh_token,
            },
        )
