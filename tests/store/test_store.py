"""The Store actor and its SQLite backend: migrations, group commit, durability."""

from __future__ import annotations

import functools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import attrs
import pytest
import trio
import trio.testing

from miro_bridge.actors import Envelope, Supervisor
from miro_bridge.actors.store import GetStatistics, Ping, Store
from miro_bridge.errors import ActorCrashed
from miro_bridge.metrics import Metrics
from miro_bridge.store import Operation
from miro_bridge.store._operation import Registry
from miro_bridge.store.sqlite import Database, SchemaTooNew, SqliteBackend

MIGRATIONS = (
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);",
    "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT 'nobody';",
)
NOTES = Registry()


@attrs.frozen
class AddNote(Operation[int]):
    writes: ClassVar[bool] = True
    body: str


@attrs.frozen
class CountNotes(Operation[int]):
    pass


@attrs.frozen
class HeldNote(Operation[int]):
    """A write that holds its commit in flight (on the writer's thread) until `release`."""

    writes: ClassVar[bool] = True
    body: str
    entered: threading.Event = attrs.field(eq=False)
    release: threading.Event = attrs.field(eq=False)


@NOTES.implements(HeldNote)
def add_held_note(connection: sqlite3.Connection, op: HeldNote) -> int:
    op.entered.set()
    op.release.wait(timeout=30)
    return add_note(connection, AddNote(op.body))


@NOTES.implements(AddNote)
def add_note(connection: sqlite3.Connection, op: AddNote) -> int:
    cursor = connection.execute("INSERT INTO notes (body) VALUES (?)", (op.body,))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


@NOTES.implements(CountNotes)
def count_notes(connection: sqlite3.Connection, op: CountNotes) -> int:
    return int(connection.execute("SELECT count(*) FROM notes").fetchone()[0])


def notes_store(path: Path) -> Store:
    return Store(functools.partial(SqliteBackend, path, MIGRATIONS, NOTES))


async def test_migrations_are_numbered_and_applied_once(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    database = Database(path, MIGRATIONS[:1])
    await database.open()
    await database.close()
    database = Database(path, MIGRATIONS)
    await database.open()
    columns = await database.run(
        lambda c: [row[1] for row in c.execute("PRAGMA table_info(notes)")]
    )
    version = await database.run(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
    mode = await database.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    await database.close()
    assert columns == ["id", "body", "author"]
    assert version == 2
    assert mode == "wal"

    older = Database(path, MIGRATIONS[:1])
    with pytest.raises(SchemaTooNew, match="version 2 is newer"):
        await older.open()


async def test_a_failed_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    broken = (*MIGRATIONS, "CREATE TABLE extra (x INTEGER); SELECT * FROM no_such_table;")
    with pytest.raises(sqlite3.OperationalError):
        await Database(path, broken).open()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 2
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    assert "extra" not in tables


async def test_200_concurrent_writers_commit_in_groups(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    supervisor = Supervisor()
    store = supervisor.add("store", lambda: notes_store(path))
    ids: list[int] = []

    async def writer(n: int) -> None:
        ids.append(await store.call(AddNote(f"note {n}")))

    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        async with trio.open_nursery() as writers:
            for n in range(200):
                writers.start_soon(writer, n)
        statistics = await store.call(GetStatistics())
        await supervisor.stop()

    assert len(set(ids)) == 200
    assert statistics.writes == 200
    # Group commit observed: writes that waited together shared a transaction.
    assert statistics.transactions < statistics.writes
    with sqlite3.connect(path) as connection:
        assert count_notes(connection, CountNotes()) == 200


async def test_writes_sent_while_a_commit_is_in_flight_commit_together(tmp_path: Path) -> None:
    """Writes arriving during a commit join the next one; reads are answered meanwhile."""
    path = tmp_path / "bridge.db"
    metrics = Metrics()
    supervisor = Supervisor()
    store = supervisor.add(
        "store",
        lambda: Store(functools.partial(SqliteBackend, path, MIGRATIONS, NOTES), metrics=metrics),
    )
    entered, release = threading.Event(), threading.Event()
    counts: list[int] = []

    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        async with trio.open_nursery() as writers:
            writers.start_soon(store.call, HeldNote("held", entered, release))
            await trio.to_thread.run_sync(entered.wait)  # the first commit is in flight
            for n in range(50):
                writers.start_soon(store.call, AddNote(f"note {n}"))
                if n % 10 == 0:
                    # A read does not wait for the commit: it is answered while it is held.
                    with trio.fail_after(30):
                        counts.append(await store.call(CountNotes()))
            await trio.testing.wait_all_tasks_blocked()
            release.set()
        statistics = await store.call(GetStatistics())
        await supervisor.stop()

    assert counts == [0] * 5  # nothing committed yet while the first commit was held
    assert (statistics.writes, statistics.transactions) == (51, 2)
    assert statistics.largest_group == 50
    assert metrics.registry.get_sample_value("store_commit_group_size_count") == 2
    assert metrics.registry.get_sample_value("store_commit_group_size_sum") == 51
    assert metrics.registry.get_sample_value("store_commit_group_size_bucket", {"le": "1.0"}) == 1


async def test_a_failing_write_fails_only_its_caller(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    supervisor = Supervisor()
    store = supervisor.add("store", lambda: notes_store(path))
    outcomes: dict[str, object] = {}

    async def writer(body: str) -> None:
        try:
            outcomes[body] = await store.call(AddNote(body))
        except sqlite3.IntegrityError as error:
            outcomes[body] = error

    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await store.call(AddNote("taken"))
        async with trio.open_nursery() as writers:
            for body in ("a", "taken", "b"):
                writers.start_soon(writer, body)
        total = await store.call(CountNotes())
        await store.call(Ping())
        await supervisor.stop()

    assert isinstance(outcomes["taken"], sqlite3.IntegrityError)
    assert isinstance(outcomes["a"], int)
    assert isinstance(outcomes["b"], int)
    assert total == 3
    assert store.statistics().restarts == 0


@attrs.frozen
class Crash(Operation[None]):
    """A message the Store below has a bug with: it crashes the actor."""


class CrashableStore(Store):
    async def _answer(self, envelope: Envelope) -> None:
        if isinstance(envelope.message, Crash):
            raise RuntimeError("store bug")
        await super()._answer(envelope)


async def test_restarted_store_reopens_the_database(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    supervisor = Supervisor()
    store = supervisor.add(
        "store",
        lambda: CrashableStore(functools.partial(SqliteBackend, path, MIGRATIONS, NOTES)),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await store.call(AddNote("kept"))
        with pytest.raises(ActorCrashed):
            await store.call(Crash())
        assert await store.call(CountNotes()) == 1
        assert store.statistics().restarts == 1
        await supervisor.stop()


@pytest.mark.slow
def test_sigkill_during_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    writer = Path(__file__).with_name("_kill_writer.py")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, str(writer), str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    acknowledged: list[int] = []
    try:
        assert process.stdout.readline().strip() == "ready"
        for line in process.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) == 3000:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait()
    # Lines printed after the kill signal was sent but before death still count.
    acknowledged.extend(int(line) for line in process.stdout.read().split())
    assert process.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in connection.execute("SELECT id FROM acked")}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged writes lost"
    assert len(stored) >= len(acknowledged)
