"""`BoardChanges`: other instances' `NOTIFY board_changed`, heard on a connection of its own.

One thread per backend holds a connection outside the pool, `LISTEN`s, and numbers each
notice from another instance (its own are passed by: the payload names the sender). A
`BoardChanges(after)` answers at once with the boards of the notices numbered after `after`,
or waits in Trio for the thread to wake it (`TRIO_TOKEN.run_sync_soon`): no pool connection
and no worker thread are held while it waits.

Numbers start at a random point for each backend, and the newest `KEEP` notices are kept;
`after` 0 (a caller that holds no board yet) is answered at once with the last number.
When the listener cannot say what changed since `after` (a number it did not give: another
run of the Store's; notices it no longer keeps; or notices missed while its connection was
down, marked when it reconnects), the answer names every board stored in the database:
each instance then drops every view and reloads from the database on the next read.
The thread reconnects by itself with a growing pause; each pass of its loop (every
`TICK_SECONDS` at most) also runs `on_tick` (the token locks' reaper).
"""

from __future__ import annotations

import collections
import contextlib
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
import structlog
import trio

from miro_bridge.store.postgres._registry import BOARD_CHANNEL

log = structlog.get_logger(__name__)

KEEP = 10_000
TICK_SECONDS = 0.25
FIRST_PAUSE = 0.2
LONGEST_PAUSE = 5.0

#: A notice for every board: what changed while the listener was away is not known.
EVERY_BOARD = None


class BoardListener:
    """The listening thread and the notices it has numbered; see the module docstring."""

    def __init__(
        self,
        conninfo: str,
        connect: Mapping[str, Any],
        instance: str,
        on_tick: Callable[[], object],
    ) -> None:
        self._conninfo = conninfo
        self._connect = dict(connect)
        self._instance = instance
        self._on_tick = on_tick
        self._first = secrets.randbits(40)
        self._last = self._first
        self._notices: collections.deque[tuple[int, str | None]] = collections.deque(maxlen=KEEP)
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._changed = trio.Event()
        self.connected = threading.Event()

    def start(self) -> None:
        """Start the thread (from Trio); it connects by itself."""
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._run, name="postgres-listener", daemon=True)
        self._thread.start()

    async def stop(self, wake: Callable[[], object] | None = None) -> None:
        """End the thread: at once if `wake` gets a notice to it (an empty one of this
        instance), else within a tick."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if wake is not None and self.connected.is_set():
            with contextlib.suppress(Exception):  # the tick ends it all the same
                await trio.to_thread.run_sync(wake)
        await trio.to_thread.run_sync(thread.join)

    def since(self, after: int) -> tuple[int, list[str | None]] | None:
        """The last number and the boards noticed after `after` (`EVERY_BOARD` when that is
        not known); None when there is nothing yet."""
        with self._mutex:
            last = self._last
            if after == 0:  # a caller that holds nothing yet: from now on
                return last, []
            oldest = self._notices[0][0] if self._notices else last + 1
            if not self._first <= after <= last or after < oldest - 1:
                return last, [EVERY_BOARD]
            boards = [board for number, board in self._notices if number > after]
        return (last, boards) if boards else None

    async def wait(self) -> None:
        """Return when a notice arrives (or at once if one arrived since the last wait)."""
        await self._changed.wait()

    def _publish(self, boards: Sequence[str | None]) -> None:
        with self._mutex:
            for board in boards:
                self._last += 1
                self._notices.append((self._last, board))
        if self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):  # Trio has ended: nobody waits
                self._token.run_sync_soon(self._wake)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _run(self) -> None:
        pause = FIRST_PAUSE
        missed = False  # a connection failed or was lost: notices may have gone unheard
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **self._connect) as conn:
                    conn.execute(f"LISTEN {BOARD_CHANNEL}")
                    if missed:  # what was said while we were away is lost
                        self._publish([EVERY_BOARD])
                        log.info("store.listener_reconnected")
                    missed = False
                    pause = FIRST_PAUSE
                    self.connected.set()
                    self._listen(conn)
            except psycopg.Error as error:
                if self.connected.is_set():
                    log.warning("store.listener_lost", error=type(error).__name__)
                missed = True
                self.connected.clear()
                self._tick()
                self._stop.wait(pause)
                pause = min(pause * 2, LONGEST_PAUSE)
        self.connected.clear()

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stop.is_set():
            heard = []
            for notice in conn.notifies(timeout=TICK_SECONDS):
                sender, _, board = notice.payload.partition(" ")
                if sender != self._instance and board:
                    heard.append(board)
                if heard or self._stop.is_set():
                    break  # publish at once (the next pass reads on), or stop
            if heard:
                self._publish(heard)
            self._tick()

    def _tick(self) -> None:
        try:
            self._on_tick()
        except Exception as error:  # housekeeping must never stop the listener
            log.error("store.listener_tick_failed", exc_info=error)
