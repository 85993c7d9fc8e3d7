"""Token locks: a session advisory lock per user, held on a pooled connection between
`LockTokens` and `UnlockTokens` (the TokenStore calls Miro in between).

`lock` tries `pg_try_advisory_lock` on a connection from the pool; while another holder has
it, the connection goes back to the pool and the wait goes on in Trio (no thread and no
connection is held meanwhile), with a growing pause, until `wait` seconds have passed
(`StoreUnavailable`). Taken, the tokens are read again under it, and the connection stays out
of the pool, named by the lock's id, until `unlock`: which stores the refreshed pair (or the
disconnection) on that same connection, still under the lock, then releases the lock and
returns the connection. A connection never goes back to the pool holding a lock: if the
release fails, it is closed (the server releases a session's locks when it ends).

A lock whose holder never unlocks (its caller gave up, a bug) is released `hold_seconds` after
it was taken (`reap`, run by the listener thread's ticks and by every lock and unlock); its
late `UnlockTokens` still stores what it carries, without the lock. A holder whose process
dies loses its locks with its connections.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import attrs
import psycopg
import psycopg_pool
import trio

from miro_bridge.errors import StoreUnavailable
from miro_bridge.store.postgres._errors import translated
from miro_bridge.store.postgres._registry import TOKENS_LOCK, lock_key, prepare
from miro_bridge.store.postgres.users import get_tokens, mark_disconnected, save_tokens
from miro_bridge.store.users import (
    GetTokens,
    LockTokens,
    MarkDisconnected,
    SaveTokens,
    TokenLock,
    UnlockTokens,
)

Connection = psycopg.Connection[Any]

#: The first and the longest pause between two tries of a lock another holder has.
FIRST_PAUSE = 0.02
LONGEST_PAUSE = 0.5


@attrs.define
class _Held:
    connection: Connection
    key: int
    until: float  # time.monotonic()


class TokenLocks:
    """The token locks this backend holds; see the module docstring."""

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool[Any],
        limiter: trio.CapacityLimiter,
        *,
        pool_timeout: float,
        hold_seconds: float,
    ) -> None:
        self._pool = pool
        self._limiter = limiter
        self._pool_timeout = pool_timeout
        self._hold_seconds = hold_seconds
        self._held: dict[str, _Held] = {}
        self._mutex = threading.Lock()

    @property
    def held(self) -> int:
        """How many locks are held now."""
        return len(self._held)

    async def lock(self, op: LockTokens) -> TokenLock:
        """Take the user's lock within `op.wait` seconds, else `StoreUnavailable`."""
        deadline = trio.current_time() + op.wait
        pause = FIRST_PAUSE
        while True:
            taken = await trio.to_thread.run_sync(self._try, op.user_id, limiter=self._limiter)
            if taken is not None:
                return taken
            now = trio.current_time()
            if now >= deadline:
                raise StoreUnavailable(
                    f"another instance held the user's token lock for over {op.wait:g}s"
                )
            await trio.sleep(min(pause, deadline - now))
            pause = min(pause * 2, LONGEST_PAUSE)

    async def unlock(self, op: UnlockTokens) -> None:
        """Store what `op` carries and release its lock (a lock not held: store only)."""
        await trio.to_thread.run_sync(self._unlock, op, limiter=self._limiter)

    def _try(self, user_id: str) -> TokenLock | None:
        self.reap()
        key = lock_key(user_id)
        with translated():
            connection = self._pool.getconn(timeout=self._pool_timeout)
        taken = False
        try:
            prepare(connection, writes=True)
            with translated(), connection.transaction():
                row = connection.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (TOKENS_LOCK, key)
                ).fetchone()
                taken = bool(row and row[0])
                tokens = get_tokens(connection, GetTokens(user_id)) if taken else None
        except BaseException:
            if taken:
                connection.close()  # the session ends, and its lock with it
            self._pool.putconn(connection)
            raise
        if not taken:
            self._pool.putconn(connection)
            return None
        lock = TokenLock(secrets.token_hex(8), user_id, tokens)
        with self._mutex:
            self._held[lock.id] = _Held(connection, key, time.monotonic() + self._hold_seconds)
        return lock

    def _unlock(self, op: UnlockTokens) -> None:
        self.reap()
        with self._mutex:
            held = self._held.pop(op.lock.id, None)
        if held is None:  # released already (held too long), or never ours: store only
            with (
                translated(),
                self._pool.connection(timeout=self._pool_timeout) as connection,
            ):
                prepare(connection, writes=True)
                with connection.transaction():
                    _store(connection, op)
            return
        try:
            with translated(), held.connection.transaction():
                _store(held.connection, op)
        finally:
            self._release(held)

    def reap(self) -> int:
        """Release the locks held longer than `hold_seconds`; how many."""
        now = time.monotonic()
        with self._mutex:
            expired = [lock_id for lock_id, held in self._held.items() if held.until <= now]
            lapsed = [self._held.pop(lock_id) for lock_id in expired]
        for held in lapsed:
            self._release(held)
        return len(lapsed)

    def release_all(self) -> None:
        """Release every lock (the backend closes)."""
        with self._mutex:
            every = list(self._held.values())
            self._held.clear()
        for held in every:
            self._release(held)

    def _release(self, held: _Held) -> None:
        """Unlock and give the connection back; closed instead if it cannot unlock."""
        connection = held.connection
        try:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_unlock(%s, %s)", (TOKENS_LOCK, held.key))
        except psycopg.Error:
            connection.close()
        try:
            self._pool.putconn(connection)
        except psycopg.Error:  # the pool has closed
            connection.close()


def _store(connection: Connection, op: UnlockTokens) -> None:
    user_id = op.lock.user_id
    if op.save is not None:
        save_tokens(connection, SaveTokens(user_id, "", op.save, op.now))
    elif op.disconnect:
        mark_disconnected(connection, MarkDisconnected(user_id, op.now))
