"""The console repository on both backends: lists, counts, and dead letters retried or
discarded with their audit rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from miro_bridge.records.console import JobFilter
from miro_bridge.records.jobs import Decision, NewJob, NewOperation, Origin
from miro_bridge.store import console, jobs
from miro_bridge.store.postgres import PostgresBackend
from miro_bridge.store.sqlite import SqliteBackend

pytestmark = pytest.mark.backends
HOUR = 3600.0
NOW = 1_000_000.0


@pytest.fixture
async def backend(database_url: str) -> AsyncIterator[Any]:
    opened: Any = (
        SqliteBackend(Path(database_url.removeprefix("sqlite:///")))
        if database_url.startswith("sqlite")
        else PostgresBackend(database_url)
    )
    await opened.open()
    yield opened
    await opened.close()


async def enqueue(backend: Any, job_id: str, user: str, board: str, at: float) -> None:
    card = NewOperation("create_card", board, {"item": {"type": "card", "data": {}}})
    job = NewJob(job_id, user, "cards", (card,), Origin(request_id=f"req-{job_id}"))
    await backend.run(jobs.Enqueue(job, at))


async def dead_letter(backend: Any, user: str, at: float) -> None:
    """The user's one pending create, failed in doubt and then given up on."""
    (claimed,) = await backend.run(jobs.Claim(user, "unit", at, at + 60, 2))
    lost = Decision(claimed, "retry", error="no answer", available_at=at + 1, in_doubt=True)
    await backend.run(jobs.Settle((lost,), at))
    (again,) = await backend.run(jobs.Claim(user, "unit-2", at + 2, at + 62, 2))
    dead = Decision(again, "dead", error="gave up", in_doubt=True)
    await backend.run(jobs.Settle((dead,), at + 3))


async def test_jobs_are_listed_newest_first_and_filtered(backend: Any) -> None:
    await enqueue(backend, "old", "u1", "b1", NOW - 2 * HOUR)
    await enqueue(backend, "mid", "u2", "b2", NOW - HOUR / 2)
    await enqueue(backend, "new", "u1", "b2", NOW - 60)

    async def ids(**wanted: Any) -> list[str]:
        found = await backend.run(console.ListJobs(JobFilter(**wanted)))
        return [job.id for job in found]

    assert await ids() == ["new", "mid", "old"]
    assert await ids(user_id="u1") == ["new", "old"]
    assert await ids(board_id="b2") == ["new", "mid"]
    assert await ids(since=NOW - HOUR, until=NOW - 120) == ["mid"]
    assert await ids(status="done") == []
    assert await ids(status="pending", limit=1) == ["new"]
    (summary,) = await backend.run(console.ListJobs(JobFilter(user_id="u2")))
    assert summary.counts == (("pending", 1),)
    assert summary.boards == ("b2",)
    assert summary.request_id == "req-mid"

    counts = await backend.run(console.CountQueue(NOW))
    assert counts.by_status == (("pending", 3), ("working", 0), ("done", 0), ("failed", 0))
    assert counts.dead_letters == 0
    assert len(counts.per_minute) == 60
    assert counts.per_minute[-1] == 1  # the minute before NOW
    assert counts.per_minute[30] == 1  # half an hour ago
    assert sum(counts.per_minute) == 2  # two hours ago is not in the last hour


async def test_a_retried_dead_letter_is_pending_again_with_its_attempt_open(backend: Any) -> None:
    await enqueue(backend, "job", "u1", "b1", NOW)
    await dead_letter(backend, "u1", NOW)
    (letter,) = await backend.run(console.ListDeadLetters())
    assert (letter.job_id, letter.seq, letter.attempts) == ("job", 0, 2)
    assert letter.history == ("no answer", "gave up")
    detail = await backend.run(console.GetJobDetail("job"))
    assert detail.operations[0].dead
    assert detail.operations[0].status == "failed"

    assert await backend.run(console.RetryDeadLetter("job", 0, "Ada", "10.0.0.1", NOW + 10))
    assert not await backend.run(console.RetryDeadLetter("job", 0, "Ada", None, NOW + 11))
    assert await backend.run(console.ListDeadLetters()) == []
    detail = await backend.run(console.GetJobDetail("job"))
    op = detail.operations[0]
    assert (op.status, op.attempts, op.dead) == ("pending", 0, False)
    assert op.history == ("no answer", "gave up")  # kept
    # Claimed again, it carries the attempt still open: reconciled before anything is sent.
    (claimed,) = await backend.run(jobs.Claim("u1", "unit-3", NOW + 12, NOW + 72, 2))
    assert claimed.attempt == NOW
    (entry,) = await backend.run(console.ListAudit())
    assert (entry.operator, entry.action, entry.job_id, entry.seq) == ("Ada", "retry", "job", 0)
    assert (entry.at, entry.address) == (NOW + 10, "10.0.0.1")


async def test_a_discarded_dead_letter_stays_failed(backend: Any) -> None:
    await enqueue(backend, "job", "u1", "b1", NOW)
    await dead_letter(backend, "u1", NOW)
    assert await backend.run(console.DiscardDeadLetter("job", 0, "Linus", None, NOW + 5))
    assert not await backend.run(console.DiscardDeadLetter("job", 0, "Linus", None, NOW + 6))
    assert await backend.run(console.ListDeadLetters()) == []
    detail = await backend.run(console.GetJobDetail("job"))
    assert detail.operations[0].status == "failed"
    assert [e.action for e in await backend.run(console.ListAudit())] == ["discard"]
    assert await backend.run(console.GetJobDetail("nothing")) is None
