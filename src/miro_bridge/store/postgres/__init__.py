"""The shared backend: one PostgreSQL database for any number of instances.

psycopg 3's sync API with a `psycopg_pool.ConnectionPool`; every operation runs in a worker
thread (`trio.to_thread.run_sync`) behind a `trio.CapacityLimiter` the size of the pool
(psycopg's async API is asyncio-only), in a transaction of its own: READ COMMITTED with
explicit locks for writes, REPEATABLE READ READ ONLY for reads (a read of several tables
sees one snapshot). A race lost to another transaction (a serialization failure, a deadlock)
is tried again, up to `RETRIES` times.

Start-up (`open`): one connection, outside the pool, applies the migrations under an
advisory lock (`migrations.migrate`); a server that does not answer is `DatabaseUnreachable`
(one line, exit status 2), a schema newer than the code `SchemaTooNew`. Then the pool opens,
and the listener thread of `BoardChanges` starts (`_listener.py`).

Lost while running: every failure that may pass (connection refused or reset, the pool's
timeout, an administrator's shutdown, a race lost too often) is `StoreUnavailable`: 503 at
the routes, a pause in the job queue. No call hangs: getting a connection waits at most
`pool_timeout`, libpq connects within `CONNECT_TIMEOUT` and gives up on a silent peer
(TCP keepalives, `tcp_user_timeout`), statements and lock waits have server-side timeouts.
The pool checks each connection before lending it and reconnects by itself with a backoff.

Enqueues that arrive while another group of them is being stored join the next group: one
transaction, one worker-thread hop and one commit for all of them (`_enqueue`), as the SQLite
backend groups its writes. A group that fails for one of its jobs (a key no longer held) is
stored again one job per transaction, so that only that job's caller hears of it.

What is coordinated, and how: `store.postgres.jobs` (claims, leases, the per-user cap,
webhook dedupe), `.idempotency` (key claims), `.credits` (budgets), `._token_locks` (token
refresh), `.boards` and `._listener` (board changes announced and heard).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import urlsplit

import attrs
import outcome
import psycopg
import psycopg_pool
import trio

from miro_bridge.errors import DatabaseUnreachable, StoreUnavailable
from miro_bridge.store._operation import Operation, Registry
from miro_bridge.store.boards import BoardChanges
from miro_bridge.store.database import Checkpoint
from miro_bridge.store.jobs import Enqueue
from miro_bridge.store.postgres import (
    boards,
    client_logs,
    console,
    credits,
    idempotency,
    jobs,
    users,
)
from miro_bridge.store.postgres._errors import RETRY, translated, unavailable
from miro_bridge.store.postgres._listener import EVERY_BOARD, BoardListener
from miro_bridge.store.postgres._registry import BOARD_CHANNEL, PG, prepare
from miro_bridge.store.postgres._token_locks import TokenLocks
from miro_bridge.store.postgres.migrations import MIGRATIONS, migrate
from miro_bridge.store.users import LockTokens, UnlockTokens

__all__ = ["MIGRATIONS", "PG", "PostgresBackend", "describe_server"]
_DOMAINS = (boards, client_logs, console, credits, idempotency, jobs, users)  # they register

R = TypeVar("R")
Connection = psycopg.Connection[Any]

CONNECT_TIMEOUT = 5
#: How often a transaction that lost a race is run.
RETRIES = 3
#: The most `Enqueue`s stored in one transaction.
MAX_GROUP = 256
#: Server-side bounds, so that no statement, lock wait or forgotten transaction lasts.
_SERVER_OPTIONS = (
    "-c statement_timeout=30s -c lock_timeout=10s -c idle_in_transaction_session_timeout=60s"
)
#: libpq's settings for every connection: connect in time, notice a silent peer.
CONNECT: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT,
    "application_name": "miro-bridge",
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}


def describe_server(url: str) -> str:
    """`host:port/database` of a PostgreSQL URL: what a message may show (no user, no
    password)."""
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    return f"{parts.hostname or 'localhost'}:{port}{parts.path or '/'}"


@attrs.define(eq=False)
class _Waiting:
    """An `Enqueue` waiting for its group to be stored, and then what became of it."""

    operation: Enqueue
    result: outcome.Outcome[None] | None = None


@PG.implements(Checkpoint)
def _checkpoint(connection: Connection, op: Checkpoint) -> None:
    """Nothing to do: PostgreSQL checkpoints by itself."""


class PostgresBackend:
    """A PostgreSQL database as the Store actor's backend; see the module docstring."""

    name: ClassVar[str] = "postgresql"
    shared: ClassVar[bool] = True
    groups_writes: ClassVar[bool] = False

    def __init__(
        self,
        url: str,
        *,
        migrations: Sequence[str] = MIGRATIONS,
        registry: Registry = PG,
        pool_size: int = 10,
        pool_timeout: float = 5.0,
        reconnect_timeout: float = 10.0,
        token_lock_hold: float = 120.0,
    ) -> None:
        self._url = url
        self._migrations = tuple(migrations)
        self._registry = registry
        self._pool_size = pool_size
        self._pool_timeout = pool_timeout
        self._reconnect_timeout = reconnect_timeout
        self._token_lock_hold = token_lock_hold
        self.instance = secrets.token_hex(8)
        """This backend's name in the notices it sends."""
        self._limiter = trio.CapacityLimiter(pool_size)
        self._enqueues: list[_Waiting] = []
        self._storing = False  # a group of enqueues is being stored
        self._stored = trio.Event()  # set (and replaced) each time a group has been
        self._observe: Callable[[int], None] = lambda writes: None
        self._pool: psycopg_pool.ConnectionPool[Connection] | None = None
        self._locks: TokenLocks | None = None
        self._listener: BoardListener | None = None

    # Opening and closing -------------------------------------------------------------------

    async def open(self) -> None:
        """Migrate (under the advisory lock), open the pool, start the listener."""
        await trio.to_thread.run_sync(self._migrate)
        pool: psycopg_pool.ConnectionPool[Connection] = psycopg_pool.ConnectionPool(
            self._url,
            kwargs={**CONNECT, "options": _SERVER_OPTIONS},
            min_size=min(2, self._pool_size),
            max_size=self._pool_size,
            open=False,
            configure=self._configure,
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=self._pool_timeout,
            reconnect_timeout=self._reconnect_timeout,
            name=f"miro-bridge-{self.instance}",
        )
        try:
            await trio.to_thread.run_sync(self._open_pool, pool)
        except psycopg.Error as error:
            raise self._unreachable(error) from error
        self._pool = pool
        self._locks = TokenLocks(
            pool, self._limiter, pool_timeout=self._pool_timeout, hold_seconds=self._token_lock_hold
        )
        self._listener = BoardListener(self._url, CONNECT, self.instance, self._locks.reap)
        self._listener.start()
        # Listening before serving (else it catches up: every board, once it connects).
        await trio.to_thread.run_sync(self._listener.connected.wait, CONNECT_TIMEOUT)

    def _migrate(self) -> None:
        try:
            connection = psycopg.connect(self._url, autocommit=True, **CONNECT)
        except psycopg.Error as error:
            raise self._unreachable(error) from error
        with connection:
            connection.execute("SET statement_timeout = 0")  # a migration takes its time
            migrate(connection, self._migrations)

    def _open_pool(self, pool: psycopg_pool.ConnectionPool[Connection]) -> None:
        pool.open(wait=True, timeout=self._pool_timeout + CONNECT_TIMEOUT)

    def _unreachable(self, error: psycopg.Error) -> DatabaseUnreachable:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return DatabaseUnreachable(
            f"cannot reach the PostgreSQL database at {describe_server(self._url)}: {reason}"
        )

    def _configure(self, connection: Connection) -> None:
        """Each new pooled connection names this instance (for the notices it sends)."""
        connection.autocommit = True
        connection.execute("SELECT set_config('miro_bridge.instance', %s, false)", (self.instance,))
        connection.autocommit = False

    def _wake_listener(self) -> None:
        """Send the listener an empty notice of this instance's (it stops on any notice)."""
        with self._opened().connection(timeout=1.0) as connection:
            connection.autocommit = True
            try:
                connection.execute("SELECT pg_notify(%s, %s)", (BOARD_CHANNEL, self.instance))
            finally:
                connection.autocommit = False

    async def close(self) -> None:
        """Stop the listener, release the token locks, close the pool."""
        with trio.CancelScope(shield=True):
            if self._listener is not None:
                await self._listener.stop(wake=self._wake_listener)
                self._listener = None
            pool, self._pool = self._pool, None
            if self._locks is not None:
                await trio.to_thread.run_sync(self._locks.release_all)
                self._locks = None
            if pool is not None:
                await trio.to_thread.run_sync(pool.close)

    # Operations ---------------------------------------------------------------------------

    def observe_commits(self, observer: Callable[[int], None]) -> None:
        """Call `observer` with the writes of each transaction committed (a group of
        enqueues counts as many)."""
        self._observe = observer

    async def run(self, operation: Operation[R]) -> R:
        """Carry out one operation in a transaction of its own (in a worker thread)."""
        # What waits, or holds a connection between two calls, is not one transaction.
        if isinstance(operation, BoardChanges):
            return cast(R, await self._board_changes(operation.after))
        if isinstance(operation, LockTokens):
            return cast(R, await self._token_locks().lock(operation))
        if isinstance(operation, UnlockTokens):
            await self._token_locks().unlock(operation)
            return cast(R, None)
        if isinstance(operation, Enqueue):
            return cast(R, await self._enqueue(operation))
        implementation = self._registry[type(operation)]
        result: R = await trio.to_thread.run_sync(
            self._transact,
            lambda connection: implementation(connection, operation),
            operation.writes,
            limiter=self._limiter,
        )
        if operation.writes:
            self._observe(1)
        return result

    async def run_group(self, writes: Sequence[Operation[Any]]) -> list[outcome.Outcome[Any]]:
        """Each write in its own transaction (only enqueues are grouped, by `run`)."""
        return [await outcome.acapture(self.run, write) for write in writes]

    async def _enqueue(self, operation: Enqueue) -> None:
        """Store `operation` with the enqueues waiting beside it, in one transaction.

        Whichever waiting caller finds no group being stored stores the next one (up to
        `MAX_GROUP`, its own among them): no task of its own, no leader that must outlive
        its caller. Shielded, as a write in a worker thread is: once asked, it is stored.
        """
        waiting = _Waiting(operation)
        self._enqueues.append(waiting)
        with trio.CancelScope(shield=True):
            while waiting.result is None:
                if self._storing:
                    await self._stored.wait()
                    continue
                group = self._enqueues[:MAX_GROUP]
                del self._enqueues[:MAX_GROUP]
                self._storing = True
                try:
                    results, transactions = await trio.to_thread.run_sync(
                        self._store_enqueues, [w.operation for w in group], limiter=self._limiter
                    )
                    for writes in transactions:
                        self._observe(writes)
                except BaseException as error:  # not stored: nobody in it may wait forever
                    results = [outcome.Error(error) for _ in group]
                    raise
                finally:
                    for member, answer in zip(group, results, strict=True):
                        member.result = answer
                    self._storing = False
                    done, self._stored = self._stored, trio.Event()
                    done.set()
        result = waiting.result
        assert result is not None  # the loop ends when it is set
        result.unwrap()

    def _store_enqueues(
        self, group: list[Enqueue]
    ) -> tuple[list[outcome.Outcome[None]], list[int]]:
        """One transaction for the group; if one of its jobs fails it, one for each job.
        Their outcomes, and the writes of each transaction committed."""
        if len(group) > 1:
            try:
                self._transact(lambda connection: jobs.enqueue_group(connection, group), True)
            except StoreUnavailable as error:  # the database is away: for every one of them
                return [outcome.Error(error) for _ in group], []  # (one each: unwrapped once)
            except Exception:  # noqa: S110 -- one job's failure: each alone says whose
                pass
            else:
                return [outcome.Value(None) for _ in group], [len(group)]
        results: list[outcome.Outcome[None]] = [
            outcome.capture(
                self._transact, lambda connection, op=op: jobs.enqueue(connection, op), True
            )
            for op in group
        ]
        return results, [1 for result in results if isinstance(result, outcome.Value)]

    def _transact(self, work: Callable[[Connection], R], writes: bool) -> R:
        pool = self._opened()
        for attempt in itertools.count(1):
            try:
                with pool.connection(timeout=self._pool_timeout) as connection:
                    prepare(connection, writes=writes)
                    with connection.transaction():
                        return work(connection)
            except RETRY as error:
                if attempt < RETRIES:
                    continue
                raise unavailable(error) from error
            except psycopg.Error as error:
                failure = unavailable(error)
                if failure is error:
                    raise
                raise failure from error
        raise AssertionError("unreachable")  # itertools.count never ends

    def _opened(self) -> psycopg_pool.ConnectionPool[Connection]:
        if self._pool is None:
            raise StoreUnavailable("the database is not open")
        return self._pool

    def _token_locks(self) -> TokenLocks:
        if self._locks is None:
            raise StoreUnavailable("the database is not open")
        return self._locks

    async def _board_changes(self, after: int) -> tuple[int, tuple[str, ...]]:
        """Wait for other instances' notices after `after`; see `_listener.py`."""
        listener = self._listener
        if listener is None:
            raise StoreUnavailable("the database is not open")
        while (found := listener.since(after)) is None:
            await listener.wait()
        last, noticed = found
        if EVERY_BOARD in noticed:
            return last, await self._every_board()
        return last, tuple(dict.fromkeys(board for board in noticed if board is not None))

    async def _every_board(self) -> tuple[str, ...]:
        """Every stored board, asked until the database answers."""
        pause = 0.5
        while True:
            try:
                return await self.run(boards.EveryBoard())
            except StoreUnavailable:
                await trio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def ping(self) -> None:
        """Run a trivial query."""
        await trio.to_thread.run_sync(self._ping, limiter=self._limiter)

    def _ping(self) -> None:
        with translated(), self._opened().connection(timeout=self._pool_timeout) as connection:
            connection.execute("SELECT 1").fetchone()

    async def probe_write(self) -> None:
        """Commit a small write (then take it back)."""
        await trio.to_thread.run_sync(self._probe_write, limiter=self._limiter)

    def _probe_write(self) -> None:
        with translated(), self._opened().connection(timeout=self._pool_timeout) as connection:
            prepare(connection, writes=True)
            with connection.transaction():
                connection.execute("INSERT INTO store_probe (pad) VALUES (%s)", (bytes(8192),))
                connection.execute("DELETE FROM store_probe")

    # For tests -----------------------------------------------------------------------------

    def statistics(self) -> dict[str, int]:
        """The pool's counters, and the token locks held now."""
        stats = dict(self._pool.get_stats()) if self._pool is not None else {}
        stats["token_locks_held"] = self._locks.held if self._locks is not None else 0
        return stats
