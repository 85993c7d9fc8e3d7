"""The embedded backend: one SQLite file, a writer thread that commits in groups, a reader.

WAL mode. Writes run on the writer's thread and connection: writes that arrive together
commit in one transaction (group commit: one fsync for all of them, which is where durable
throughput comes from), each in its own savepoint so that one failing write fails only its
caller. A group holding a durable write commits with `synchronous=FULL`: in WAL mode that
syncs the log at each commit, so an acknowledged write survives power loss, not only a
killed process (`NORMAL` would sync only at checkpoints); cache-only groups commit with
`NORMAL`. Reads run on a second connection and thread (`PRAGMA query_only`), so a read
never waits behind a commit's fsync; each sees every transaction committed before it began.
One process only: `serve --workers` needs PostgreSQL.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import outcome
import trio

from miro_bridge.errors import SchemaTooNew, StoreUnavailable
from miro_bridge.store._operation import Operation, Registry
from miro_bridge.store.database import Checkpoint
from miro_bridge.store.sqlite import boards, client_logs, console, idempotency, jobs, users
from miro_bridge.store.sqlite._registry import ON_WRITER, SQL
from miro_bridge.store.sqlite._thread import Database, migrate
from miro_bridge.store.sqlite.migrations import MIGRATIONS

__all__ = ["MIGRATIONS", "SQL", "Database", "SchemaTooNew", "SqliteBackend", "migrate"]
_DOMAINS = (boards, client_logs, console, idempotency, jobs, users)  # imported: they register

R = TypeVar("R")

#: SQLite result codes of failures that may pass: the disk, I/O, locks, memory, permissions.
_TRANSIENT = (
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_NOMEM",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
)


def unavailable(error: BaseException) -> BaseException:
    """`StoreUnavailable` for a SQLite failure that may pass; any other error as it is."""
    name = getattr(error, "sqlite_errorname", "")
    if isinstance(error, sqlite3.Error) and name.startswith(_TRANSIENT):
        failure = StoreUnavailable(f"the database cannot do this now ({name})")
        failure.__cause__ = error
        return failure
    return error


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Raise SQLite's failures that may pass as `StoreUnavailable`, others unchanged."""
    try:
        yield
    except sqlite3.Error as error:
        failure = unavailable(error)
        if failure is error:
            raise
        raise failure from error


ON_WRITER.add(Checkpoint)


@SQL.implements(Checkpoint)
def _checkpoint(connection: sqlite3.Connection, op: Checkpoint) -> None:
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()


def _probe_write(connection: sqlite3.Connection) -> None:
    """Commit a page's worth of data and take it back: can the database grow again?"""
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute("INSERT INTO store_probe (pad) VALUES (zeroblob(8192))")
        connection.execute("DELETE FROM store_probe")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _read(connection: sqlite3.Connection, read: Callable[[sqlite3.Connection], R]) -> R:
    """Run `read` in one read transaction: all its queries see one snapshot, even while the
    writer commits; runs on the reader's thread."""
    connection.execute("BEGIN")
    try:
        return read(connection)
    finally:
        if connection.in_transaction:
            connection.execute("COMMIT")


def _commit_group(
    connection: sqlite3.Connection, writes: Sequence[Operation[Any]], registry: Registry
) -> list[outcome.Outcome[Any]]:
    """Apply `writes` in one transaction, each in a savepoint; runs on the database thread."""
    durable = any(write.durable for write in writes)
    connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    connection.execute("BEGIN IMMEDIATE")
    results: list[outcome.Outcome[Any]] = []
    try:
        for write in writes:
            connection.execute("SAVEPOINT write")
            result = outcome.capture(registry[type(write)], connection, write)
            if isinstance(result, outcome.Error):
                if not connection.in_transaction:
                    # SQLite rolled the whole transaction back itself (a full disk, an I/O
                    # error): nothing of the group is stored, every writer must hear so.
                    raise result.error
                connection.execute("ROLLBACK TO write")
            connection.execute("RELEASE write")
            results.append(result)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return results


class SqliteBackend:
    """A SQLite file as the Store actor's backend; see the module docstring."""

    name: ClassVar[str] = "sqlite"
    shared: ClassVar[bool] = False
    groups_writes: ClassVar[bool] = True

    def __init__(
        self, path: Path, migrations: Sequence[str] = MIGRATIONS, registry: Registry = SQL
    ) -> None:
        self._database = Database(path, migrations)
        self._reader = Database(path, None)
        self._registry = registry

    async def open(self) -> None:
        """Open the file in WAL mode on the writer's thread, migrate it, then the reader."""
        await self._database.open()
        try:
            await self._reader.open()
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._database.close()
            raise

    async def close(self) -> None:
        """Close both connections and end their threads."""
        try:
            await self._reader.close()
        finally:
            await self._database.close()

    async def run(self, operation: Operation[R]) -> R:
        """Carry out one operation: a read on the reader (beside any commit), a write alone
        in its transaction, a checkpoint on the writer."""
        if operation.writes:
            (result,) = await self.run_group([operation])
            value: R = result.unwrap()
            return value
        implementation = functools.partial(self._registry[type(operation)], op=operation)
        with _translated():
            if type(operation) in ON_WRITER:
                return await self._database.run(implementation)
            return await self._reader.run(functools.partial(_read, read=implementation))

    async def run_group(self, writes: Sequence[Operation[Any]]) -> list[outcome.Outcome[Any]]:
        """Commit `writes` in one transaction; transient failures are `StoreUnavailable`."""
        with _translated():
            results = await self._database.run(
                functools.partial(_commit_group, writes=writes, registry=self._registry)
            )
        return [
            outcome.Error(unavailable(r.error)) if isinstance(r, outcome.Error) else r
            for r in results
        ]

    def observe_commits(self, observer: Callable[[int], None]) -> None:
        """Nothing to observe: every write goes to `run_group`, which the Store counts."""

    async def ping(self) -> None:
        """Run a trivial query on each connection."""
        with _translated():
            await self._reader.run(lambda c: c.execute("SELECT 1").fetchone())
            await self._database.run(lambda c: c.execute("SELECT 1").fetchone())

    async def probe_write(self) -> None:
        """Commit a write that needs a new page (then take it back)."""
        with _translated():
            await self._database.run(_probe_write)
