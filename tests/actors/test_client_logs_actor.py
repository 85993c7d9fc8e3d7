"""The ClientLogs actor: requests that arrive together are stored together, each within its
caller's limits."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from miro_bridge.actors.client_logs import Ingest
from miro_bridge.actors.store import GetStatistics
from miro_bridge.context import request_id_var
from miro_bridge.errors import RateLimited
from miro_bridge.logs import configure_logging
from miro_bridge.records.client_logs import ClientLogEntry
from tests.support import OTHER_USER, USER, StartBridge, query_database

pytestmark = pytest.mark.backends


def ingest(name: str, count: int, user: str) -> Ingest:
    entries = tuple(
        ClientLogEntry("2026-11-30T10:00:00Z", "info", f"{name} {n}", {"n": str(n)})
        for n in range(count)
    )
    return Ingest(entries, user, f"user:{user}")


async def test_posts_that_arrive_together_are_stored_together_each_within_its_limits(
    start_bridge: StartBridge, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(pretty=False)
    bridge = await start_bridge(log_rate_per_minute=10)
    store, client_logs = bridge.actors.store, bridge.actors.client_logs
    await trio.testing.wait_all_tasks_blocked()
    writes_before = (await store.call(GetStatistics())).writes
    capsys.readouterr()
    # The first of USER's two posts fits its 10 a minute, the second not: whichever comes
    # second is refused, alone. OTHER_USER's posts fit together.
    posts = {
        "a1": ingest("a1", 6, USER),
        "a2": ingest("a2", 6, USER),
        "b1": ingest("b1", 6, OTHER_USER),
        "b2": ingest("b2", 3, OTHER_USER),
    }
    answers: dict[str, str] = {}
    waits: list[float] = []

    async def post(name: str) -> None:
        request_id_var.set(f"req-{name}")
        try:
            await client_logs.call(posts[name])
        except RateLimited as refusal:
            waits.append(refusal.retry_after)
            answers[name] = "refused"
        else:
            answers[name] = "stored"

    async with trio.open_nursery() as nursery:
        for name in posts:  # all in the mailbox before the actor takes any
            nursery.start_soon(post, name)

    assert sorted(answers.items())[2:] == [("b1", "stored"), ("b2", "stored")]
    assert sorted([answers["a1"], answers["a2"]]) == ["refused", "stored"]
    assert len(waits) == 1
    assert 0 < waits[0] <= 60
    (refused,) = [name for name, answer in answers.items() if answer == "refused"]
    # One write for the four posts.
    assert (await store.call(GetStatistics())).writes == writes_before + 1
    rows = query_database(bridge.settings, "SELECT request_id, message FROM client_logs")
    assert sorted({request_id for request_id, _ in rows}) == sorted(
        f"req-{name}" for name in posts if name != refused
    )
    assert len(rows) == 15
    assert not any(message.startswith(refused) for _, message in rows)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    client = [line for line in lines if line.get("source") == "client"]
    assert sorted((line["request_id"], line["event"]) for line in client) == sorted(
        (f"req-{message.split()[0]}", message) for _, message in rows
    )
    assert {line["user_id"] for line in client if line["request_id"] == "req-b1"} == {OTHER_USER}
