"""One SQLite connection, living on one dedicated thread.

SQLite connections are not safe to share between threads, and a connection hopping between
the threads of a pool gains nothing: all work on the database is serial anyway. So the
connection is opened, used and closed by one thread that takes jobs from a queue; Trio code
awaits each job's result. Only the Store actor holds a `Database`.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import outcome
import trio

from miro_bridge.errors import SchemaTooNew

T = TypeVar("T")

_Job = tuple[Callable[[sqlite3.Connection], Any], Callable[[outcome.Outcome[Any]], None]]


def migrate(connection: sqlite3.Connection, migrations: Sequence[str]) -> int:
    """Apply the migrations the database has not seen; return the schema version.

    Migration N (1-based) is `migrations[N - 1]`, a SQL script. The applied version is kept in
    `PRAGMA user_version`; each migration and its version bump commit together.
    """
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > len(migrations):
        raise SchemaTooNew(
            f"database schema version {version} is newer than this code knows "
            f"({len(migrations)}); upgrade miro-bridge"
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        try:
            connection.executescript(
                f"BEGIN IMMEDIATE;\n{script}\n;PRAGMA user_version = {number};\nCOMMIT;"
            )
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    return len(migrations)


def _connect(path: Path, migrations: Sequence[str] | None) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        if migrations is None:  # a reader: the writer has set WAL mode and migrated
            connection.execute("PRAGMA query_only = ON")
        else:
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA busy_timeout = 5000")
        if migrations is not None:
            migrate(connection, migrations)
    except BaseException:
        connection.close()
        raise
    return connection


class Database:
    """A SQLite database file served by one thread; see `run`.

    `migrations=None` opens a reader (`PRAGMA query_only`) of a file a writer has opened
    and migrated: in WAL mode its reads run while the writer commits, each seeing every
    transaction committed before it began.
    """

    def __init__(self, path: Path, migrations: Sequence[str] | None) -> None:
        self.path = path
        self._migrations = None if migrations is None else tuple(migrations)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def open(self) -> None:
        """Start the thread, open the file in WAL mode and apply pending migrations."""
        ready: queue.SimpleQueue[outcome.Outcome[sqlite3.Connection]] = queue.SimpleQueue()
        role = "reader" if self._migrations is None else "writer"
        self._thread = threading.Thread(
            target=self._work, args=(ready,), name=f"sqlite-{role}:{self.path.name}", daemon=True
        )
        self._thread.start()
        opened = await trio.to_thread.run_sync(ready.get)
        if isinstance(opened, outcome.Error):
            self._thread = None
        opened.unwrap()

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job(connection)` on the database thread and return its result.

        The wait is shielded from cancellation: a transaction that has started finishes (or
        fails) before its caller moves on, so nobody mistakes a committed write for a lost one.
        """
        if self._thread is None:
            raise RuntimeError("database is not open")
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        results: list[outcome.Outcome[T]] = []

        def deliver(result: outcome.Outcome[T]) -> None:
            results.append(result)
            token.run_sync_soon(done.set)

        self._jobs.put((job, deliver))
        with trio.CancelScope(shield=True):
            await done.wait()
        return results[0].unwrap()

    async def close(self) -> None:
        """Finish queued jobs, close the connection and end the thread."""
        if self._thread is None:
            return
        self._jobs.put(None)
        thread, self._thread = self._thread, None
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)

    def _work(self, ready: queue.SimpleQueue[outcome.Outcome[sqlite3.Connection]]) -> None:
        try:
            connection = _connect(self.path, self._migrations)
        except BaseException as error:
            ready.put(outcome.Error(error))
            return
        ready.put(outcome.Value(connection))
        try:
            while (item := self._jobs.get()) is not None:
                job, deliver = item
                deliver(outcome.capture(job, connection))
        finally:
            connection.close()
