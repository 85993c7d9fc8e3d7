"""The Store actor: the only writer to SQLite, committing writes in groups.

Writes that are waiting in the mailbox when the actor is free are committed in one
transaction (group commit): one fsync pays for all of them, which is where durable throughput
comes from. Each write runs in its own savepoint, so one failing write fails only its caller.
A write is answered only after its group has committed.

Other actors send plain functions of a `sqlite3.Connection` (the repositories in
`miro_bridge.store`), wrapped in `Read` or `Write`.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

import attrs
import outcome
import structlog
import trio

from miro_bridge.actors._runtime import Actor, Envelope, Inbox, Message
from miro_bridge.errors import StoreUnavailable
from miro_bridge.store import MIGRATIONS, Database

T = TypeVar("T")

log = structlog.get_logger(__name__)


@attrs.frozen
class Read(Message[T], Generic[T]):
    """Run `query(connection)` outside any write transaction and reply with its result."""

    query: Callable[[sqlite3.Connection], T]


@attrs.frozen
class Write(Message[T], Generic[T]):
    """Run `apply(connection)` in a transaction; reply with its result after the commit.

    `durable` writes (accepted jobs, tokens, idempotency records) commit with
    `synchronous=FULL`, surviving power loss; cache writes may use `NORMAL`.
    """

    apply: Callable[[sqlite3.Connection], T]
    durable: bool = True


@attrs.frozen
class Ping(Message[None]):
    """Answer once the database can read, and write if writes were failing: readiness.

    Fails with `StoreUnavailable` while writes fail (disk full, I/O errors).
    """


@attrs.frozen
class StoreStatistics:
    """Counts since this run of the Store started."""

    writes: int
    transactions: int
    reads: int
    schema_version: int


@attrs.frozen
class GetStatistics(Message[StoreStatistics]):
    """Ask for `StoreStatistics`."""


@attrs.define
class _Counts:
    writes: int = 0
    transactions: int = 0
    reads: int = 0


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


def _unavailable(error: BaseException) -> BaseException:
    """`StoreUnavailable` for a SQLite failure that may pass; any other error as it is."""
    name = getattr(error, "sqlite_errorname", "")
    if isinstance(error, sqlite3.Error) and name.startswith(_TRANSIENT):
        failure = StoreUnavailable(f"the database cannot do this now ({name})")
        failure.__cause__ = error
        return failure
    return error


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


def _commit_group(
    connection: sqlite3.Connection, writes: Sequence[Write[Any]]
) -> list[outcome.Outcome[Any]]:
    """Apply `writes` in one transaction, each in a savepoint; runs on the database thread."""
    durable = any(write.durable for write in writes)
    connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    connection.execute("BEGIN IMMEDIATE")
    results: list[outcome.Outcome[Any]] = []
    try:
        for write in writes:
            connection.execute("SAVEPOINT write")
            result = outcome.capture(write.apply, connection)
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


class Store(Actor):
    """Owns the database; see the module docstring."""

    name: ClassVar[str] = "store"

    def __init__(
        self, path: Path, migrations: Sequence[str] = MIGRATIONS, *, max_group: int = 512
    ) -> None:
        self._database = Database(path, migrations)
        self._schema_version = len(migrations)
        self._max_group = max_group
        self._counts = _Counts()
        self._failing: StoreUnavailable | None = None

    async def setup(self) -> None:
        """Open the database and migrate it."""
        await self._database.open()

    async def teardown(self) -> None:
        """Close the database."""
        await self._database.close()

    async def serve(self, inbox: Inbox) -> None:
        """Take everything waiting, answer reads, commit writes as one group."""
        async for first in inbox:
            batch = [first]
            while len(batch) < self._max_group:
                try:
                    batch.append(inbox.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._process(batch)

    async def _process(self, batch: list[Envelope]) -> None:
        writes = [e for e in batch if isinstance(e.message, Write)]
        for envelope in batch:
            if not isinstance(envelope.message, Write):
                await self._answer(envelope)
        if not writes:
            return
        try:
            group = [cast(Write[Any], e.message) for e in writes]
            results = await self._database.run(functools.partial(_commit_group, writes=group))
        except sqlite3.Error as error:
            # The commit itself failed (disk full, I/O error): nothing in the group is
            # stored, so every writer hears so; the next group tries again.
            failure = self._failure(error)
            for envelope in writes:
                envelope.fail(failure)
            return
        self._counts.transactions += 1
        self._counts.writes += len(writes)
        failing = None
        for envelope, result in zip(writes, results, strict=True):
            if isinstance(result, outcome.Error):
                failure = self._failure(result.error)
                if isinstance(failure, StoreUnavailable):
                    failing = failure
                envelope.fail(failure)
            else:
                envelope.reply(result.unwrap())
        self._failing = failing

    def _failure(self, error: BaseException) -> BaseException:
        """What a writer hears of a failed write; one that may pass is remembered (`_ping`)."""
        failure = _unavailable(error)
        if isinstance(failure, StoreUnavailable):
            self._failing = failure
            log.warning("store.write_failed", error=failure.message)
        return failure

    async def _ping(self) -> None:
        """Reads work; and if writes were failing, a probe write must work again."""
        await self._database.run(lambda c: c.execute("SELECT 1").fetchone())
        if self._failing is None:
            return
        try:
            await self._database.run(_probe_write)
        except sqlite3.Error as error:
            raise self._failure(error) from None
        log.info("store.writes_recovered")
        self._failing = None

    async def _answer(self, envelope: Envelope) -> None:
        message = envelope.message
        if isinstance(message, Read):
            self._counts.reads += 1
            try:
                envelope.reply(await self._database.run(message.query))
            except Exception as error:
                envelope.fail(_unavailable(error))
        elif isinstance(message, Ping):
            try:
                await self._ping()
            except (sqlite3.Error, StoreUnavailable) as error:
                envelope.fail(error)
            else:
                envelope.reply(None)
        elif isinstance(message, GetStatistics):
            envelope.reply(
                StoreStatistics(
                    writes=self._counts.writes,
                    transactions=self._counts.transactions,
                    reads=self._counts.reads,
                    schema_version=self._schema_version,
                )
            )
        else:
            envelope.fail(TypeError(f"store cannot handle {type(message).__name__}"))
