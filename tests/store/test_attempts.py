"""Attempts and adoptions in the store, on both backends: what exactly-once creates rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from miro_bridge.records.jobs import Decision, NewJob, NewOperation, Origin
from miro_bridge.store import jobs
from miro_bridge.store.postgres import PostgresBackend
from miro_bridge.store.sqlite import SqliteBackend

pytestmark = pytest.mark.backends


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


async def one_card_each(backend: Any, *users: str) -> None:
    for user in users:
        card = NewOperation("create_card", "b1", {"item": {"type": "card", "data": {}}})
        await backend.run(
            jobs.Enqueue(NewJob(f"job-{user}", user, "cards", (card,), Origin()), 1.0)
        )


async def test_an_item_is_adopted_by_one_operation_only(backend: Any) -> None:
    await one_card_each(backend, "u1", "u2")
    (first,) = await backend.run(jobs.Claim("u1", "unit-1", 2.0, 62.0, 2))
    (second,) = await backend.run(jobs.Claim("u2", "unit-2", 2.0, 62.0, 2))
    assert await backend.run(jobs.RecordResults(((first, "item-9"),), 3.0)) == [first.rowid]
    assert await backend.run(jobs.RecordResults(((second, "item-9"),), 3.0)) == []
    assert await backend.run(jobs.RecordResults(((second, "item-7"),), 3.0)) == [second.rowid]
    recorded = await backend.run(jobs.RecordedItems("b1", ("item-9", "item-7", "item-1")))
    assert recorded == {"item-9", "item-7"}


async def test_an_attempt_in_doubt_stays_open_until_its_outcome_is_known(backend: Any) -> None:
    await one_card_each(backend, "u1")
    (claimed,) = await backend.run(jobs.Claim("u1", "unit-1", 2.0, 62.0, 2))
    assert claimed.attempt is None  # nothing was tried before
    lost = Decision(claimed, "retry", error="no answer", available_at=3.0, in_doubt=True)
    await backend.run(jobs.Settle((lost,), 2.5))
    (again,) = await backend.run(jobs.Claim("u1", "unit-2", 4.0, 64.0, 2))
    assert again.attempt == 2.0  # the first attempt, still open
    refused = Decision(again, "retry", error="429", available_at=5.0)
    await backend.run(jobs.Settle((refused,), 4.5))
    (third,) = await backend.run(jobs.Claim("u1", "unit-3", 6.0, 66.0, 2))
    assert third.attempt is None  # Miro said no: nothing can exist from it
