"""PostgreSQL lost while running: 503s (never a hang or a 500), readiness 503, nothing accepted
lost, and recovery by itself once the database is back.

The service reaches the database through a TCP proxy on loopback (`tests.support.TcpProxy`),
which the test cuts mid-load (every connection closed, new ones closed at once) and restores.
"""

from __future__ import annotations

import collections
from urllib.parse import urlsplit

import trio

from miro_bridge.store import jobs
from tests.support import (
    USER,
    Miro,
    StartBridge,
    TcpProxy,
    connect,
    wait_for_job,
    with_port,
)

H = {"X-User-Id": USER}


async def test_losing_the_database_mid_load_is_503s_then_recovery(
    start_bridge: StartBridge, miro: Miro, postgres_database: str, nursery: trio.Nursery
) -> None:
    server = urlsplit(postgres_database)
    proxy = TcpProxy(server.hostname or "127.0.0.1", server.port or 5432)
    await nursery.start(proxy.run)
    bridge = await start_bridge(
        database_url=with_port(postgres_database, proxy.port), database_timeout_seconds=1.0
    )
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    statuses: collections.Counter[str] = collections.Counter()
    accepted: list[str] = []
    phase = "before"
    stop = trio.Event()

    async def post_cards(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with trio.fail_after(10):  # never a hang
                response = await bridge.client.post(
                    f"/api/cards?boardId={board_id}", json=[{"title": f"{worker}-{n}"}], headers=H
                )
            statuses[f"{phase} {response.status_code}"] += 1
            assert response.status_code in (202, 503), response.text
            if response.status_code == 202:
                accepted.append(response.json()["jobId"])
            else:
                assert response.json()["code"] == "unavailable"
                await trio.sleep(0.05)

    async def ready() -> int:
        with trio.fail_after(10):
            return (await bridge.client.get("/health/ready")).status_code

    async with trio.open_nursery() as load:
        for worker in range(6):
            load.start_soon(post_cards, worker)
        await trio.sleep(0.5)
        phase = "cut"
        proxy.cut()
        await trio.sleep(1.0)
        with trio.fail_after(10):
            read = await bridge.client.get(f"/api/jobs/{accepted[0]}", headers=H)
        assert (read.status_code, read.json()["code"]) == (503, "unavailable")
        assert await ready() == 503
        phase = "restored"
        proxy.restore()
        recovered_after = None
        for tries in range(100):  # the pool reconnects by itself, with a backoff
            if await ready() == 200:
                recovered_after = tries * 0.2
                break
            await trio.sleep(0.2)
        assert recovered_after is not None, "not ready 20 s after the database came back"
        await trio.sleep(0.5)
        stop.set()

    print(dict(statuses), f"ready again after ~{recovered_after:.1f}s")
    assert statuses["before 202"] > 0
    assert statuses["cut 503"] > 0
    assert statuses["restored 202"] > 0
    for job_id in accepted:  # nothing accepted is lost: every job is there, and ends done
        assert (await wait_for_job(bridge, job_id))["status"] == "done"
    assert await bridge.actors.store.call(jobs.QueueLength()) == 0
