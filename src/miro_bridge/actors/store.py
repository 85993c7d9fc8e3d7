"""The Store actor: the owner of the database, through which every repository operation goes.

Other actors send it the named operations of the repositories (`miro_bridge.store.users`,
`.boards`, `.jobs`, `.idempotency`, `.client_logs`); it carries them out on its backend and
answers each with its result, a write only after its commit.

- SQLite (a backend that `groups_writes`): one committer task commits the writes that
  queued while the previous commit was in flight, all in one transaction (group commit: one
  fsync pays for all of them), each in its own savepoint, so one failing write fails only
  its caller. The mailbox never waits for a commit: writes join the queue for the next
  group, reads run at once in tasks of their own (SQLite's reader connection answers them
  beside the commit). `store_commit_group_size` counts the writes of each transaction.
- PostgreSQL (a pool of connections): each operation runs in a worker thread of its own, in
  a task of the actor's nursery, so that the mailbox keeps moving while they wait; the
  backend stores the enqueues that arrive together in one transaction, and reports the
  writes of each transaction it commits (`Backend.observe_commits`).
- A long poll (`Operation.waits`: other instances' board notices) runs in the background
  nursery, which the actor's stop cancels: it never holds up a shutdown.

A write that fails for a reason that may pass (a full disk, a lost connection) fails its
caller with `StoreUnavailable` and is remembered: readiness (`Ping`) then fails too, until a
probe write works again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, cast

import attrs
import outcome
import structlog
import trio

from miro_bridge.actors._runtime import Actor, Envelope, Inbox, Message
from miro_bridge.errors import StoreUnavailable
from miro_bridge.metrics import Metrics
from miro_bridge.store import Backend, Operation

log = structlog.get_logger(__name__)


@attrs.frozen
class Ping(Message[None, "Store"]):
    """Answer once the database can read, and write if writes were failing: readiness.

    Fails with `StoreUnavailable` while writes fail (disk full, I/O errors, connection lost).
    """


@attrs.frozen
class StoreStatistics:
    """Counts since this run of the Store started, and which backend it runs.

    `largest_group`: the most writes one transaction has committed.
    """

    backend: str
    writes: int
    transactions: int
    reads: int
    largest_group: int = 0


@attrs.frozen
class GetStatistics(Message[StoreStatistics, "Store"]):
    """Ask for `StoreStatistics`."""


StoreMessage = Ping | GetStatistics | Operation[Any]


@attrs.define
class _Counts:
    writes: int = 0
    transactions: int = 0
    reads: int = 0
    largest_group: int = 0


class Store(Actor):
    """Owns the database; see the module docstring."""

    name: ClassVar[str] = "store"

    def __init__(
        self,
        backend: Callable[[], Backend],
        *,
        max_group: int = 512,
        metrics: Metrics | None = None,
    ) -> None:
        self._backend = backend()
        self._backend.observe_commits(self._committed)
        self._max_group = max_group
        self._metrics = metrics
        self._counts = _Counts()
        self._failing: StoreUnavailable | None = None
        self._queued: list[Envelope] = []  # writes for the next group
        self._queue_changed = trio.Event()
        self._receiving = True

    async def setup(self) -> None:
        """Open the database and migrate it."""
        await self._backend.open()

    async def teardown(self) -> None:
        """Close the database."""
        await self._backend.close()

    async def serve(self, inbox: Inbox) -> None:
        """Group writes (SQLite), or run each operation in its own task (PostgreSQL).

        Grouping: writes queue for the committer (`_commit_groups`), which takes all that
        queued while it was committing; reads are answered in tasks of their own. At most
        twice `max_group` writes wait here: beyond that the mailbox stops moving, so its bound
        still holds writers back.
        """
        if not self._backend.groups_writes:
            await super().serve(inbox)
            return
        self.nursery.start_soon(self._commit_groups)
        try:
            async for envelope in inbox:
                if _writes(envelope.message):
                    self._queued.append(envelope)
                    self._changed()
                    while len(self._queued) >= 2 * self._max_group:
                        await self._queue_changed.wait()
                elif isinstance(envelope.message, Operation) and envelope.message.waits:
                    self._wait_beside(envelope, envelope.message)
                else:
                    with envelope.context():
                        self.nursery.start_soon(self._answer, envelope)
        finally:
            self._receiving = False
            self._changed()

    def _changed(self) -> None:
        self._queue_changed.set()
        self._queue_changed = trio.Event()

    async def _commit_groups(self) -> None:
        """Commit what has queued, group after group, until the mailbox has closed."""
        while self._queued or self._receiving:
            if not self._queued:
                await self._queue_changed.wait()
                continue
            group = self._queued[: self._max_group]
            del self._queued[: self._max_group]
            self._changed()
            await self._commit(group)

    async def handle(self, envelope: Envelope) -> None:
        """One message, when operations are not grouped: in a task of its own."""
        message = cast(StoreMessage, envelope.message)
        match message:
            case Operation() if message.waits:
                self._wait_beside(envelope, message)
            case Operation():
                self.reply_later(envelope, lambda: self._run(message))
            case _:
                await self._answer(envelope)

    def _wait_beside(self, envelope: Envelope, operation: Operation[Any]) -> None:
        """A long poll runs in the background nursery: the Store's stop cancels it (its caller
        is gone by then), rather than waiting for it as for the callers' work."""

        async def answer() -> None:
            with envelope.context():
                try:
                    result = await self._backend.run(operation)
                except Exception as error:
                    envelope.fail(error)
                else:
                    envelope.reply(result)

        self.background.start_soon(answer)

    async def _run(self, operation: Operation[Any]) -> Any:
        if not operation.writes:
            self._counts.reads += 1
            return await self._backend.run(operation)
        try:
            return await self._backend.run(operation)  # its commits are observed
        except StoreUnavailable as error:
            self._remember(error)
            raise

    async def _commit(self, writes: list[Envelope]) -> None:
        """Commit `writes` in one transaction and answer each of their callers."""
        try:
            group = [cast(Operation[Any], e.message) for e in writes]
            results = await self._backend.run_group(group)
        except StoreUnavailable as error:
            # The commit itself failed (disk full, I/O error): nothing in the group is
            # stored, so every writer hears so; the next group tries again.
            self._remember(error)
            for envelope in writes:
                envelope.fail(error)
            return
        except Exception as error:
            for envelope in writes:
                envelope.fail(error)
            return
        self._committed(len(writes))
        failing = None
        for envelope, result in zip(writes, results, strict=True):
            if isinstance(result, outcome.Error):
                if isinstance(result.error, StoreUnavailable):
                    failing = result.error
                envelope.fail(result.error)
            else:
                envelope.reply(result.unwrap())
        if failing is not None:
            self._remember(failing)
        else:
            self._failing = None

    def _committed(self, writes: int) -> None:
        """Count a transaction of `writes` writes (`store_commit_group_size`)."""
        self._counts.transactions += 1
        self._counts.writes += writes
        self._counts.largest_group = max(self._counts.largest_group, writes)
        if self._metrics is not None:
            self._metrics.store_commit_group_size.observe(writes)

    def _remember(self, error: StoreUnavailable) -> None:
        """Writes fail: say so once, and let readiness fail until a probe write works."""
        if self._failing is None:
            log.warning("store.write_failed", error=error.message)
        self._failing = error

    async def _answer(self, envelope: Envelope) -> None:
        message = cast(StoreMessage, envelope.message)
        try:
            match message:
                case Ping():
                    await self._ping()
                    envelope.reply(None)
                case GetStatistics():
                    envelope.reply(
                        StoreStatistics(
                            backend=self._backend.name,
                            writes=self._counts.writes,
                            transactions=self._counts.transactions,
                            reads=self._counts.reads,
                            largest_group=self._counts.largest_group,
                        )
                    )
                case Operation():
                    envelope.reply(await self._run(message))
        except Exception as error:
            envelope.fail(error)

    async def _ping(self) -> None:
        """Reads work; and if writes were failing, a probe write must work again."""
        await self._backend.ping()
        if self._failing is None:
            return
        try:
            await self._backend.probe_write()
        except StoreUnavailable as error:
            self._remember(error)
            raise
        log.info("store.writes_recovered")
        self._failing = None


def _writes(message: Message[Any, Any]) -> bool:
    return isinstance(message, Operation) and message.writes
