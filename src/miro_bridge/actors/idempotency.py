"""The Idempotency actor: one execution per `Idempotency-Key`, and replays of its response.

A request with a key first `Claim`s it. The first claimant runs the work and `Complete`s the
key with its response, which is stored durably and replayed byte for byte to every later
request with the same key (scoped to user and route) for 48 hours. A claimant that arrives
while the first is still running waits for its response instead of running the work again.
The same key with a different body is a `Conflict`. Work that fails is `Release`d, so that a
retry with the key runs it again. A user holds at most `MIRO_IDEMPOTENCY_MAX_KEYS` keys at a
time (stored in the last 48 hours or running); a new one past that is `RateLimited` (429).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import ClassVar

import attrs

from miro_bridge.actors._runtime import Actor, ActorRef, Envelope, Message
from miro_bridge.actors.store import Read, Write
from miro_bridge.errors import Conflict, RateLimited
from miro_bridge.store import idempotency
from miro_bridge.store.idempotency import StoredResponse

_Key = tuple[str, str, str]


@attrs.frozen
class Claimed:
    """The key is yours: run the work, then `Complete` or `Release` it."""


@attrs.frozen
class Claim(Message[Claimed | StoredResponse]):
    """Claim a key, or get the response stored under it."""

    user_id: str
    route: str
    key: str
    fingerprint: str


@attrs.frozen
class Complete(Message[None]):
    """Store the claimant's response and answer everyone waiting for it."""

    user_id: str
    route: str
    key: str
    response: StoredResponse


@attrs.frozen
class Release(Message[None]):
    """The claimant's work failed: let the next claimant run it."""

    user_id: str
    route: str
    key: str


@attrs.define
class _Running:
    fingerprint: str
    waiting: list[Envelope] = attrs.field(factory=list)


class Idempotency(Actor):
    """Owns the keys in progress; see the module docstring."""

    name: ClassVar[str] = "idempotency"

    def __init__(
        self,
        store: ActorRef,
        *,
        clock: Callable[[], float] = time.time,
        max_keys: int = 10_000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_keys = max_keys
        self._running: dict[_Key, _Running] = {}

    async def handle(self, envelope: Envelope) -> None:
        """Claim, complete or release a key."""
        message = envelope.message
        try:
            if isinstance(message, Claim):
                await self._claim(envelope, message)
            elif isinstance(message, Complete):
                await self._complete(message)
                envelope.reply(None)
            elif isinstance(message, Release):
                self._release((message.user_id, message.route, message.key))
                envelope.reply(None)
            else:
                envelope.fail(TypeError(f"idempotency cannot handle {type(message).__name__}"))
        except Exception as error:
            envelope.fail(error)

    async def _claim(self, envelope: Envelope, claim: Claim) -> None:
        key = (claim.user_id, claim.route, claim.key)
        running = self._running.get(key)
        if running is not None:
            if running.fingerprint != claim.fingerprint:
                raise _reused()
            running.waiting.append(envelope)
            return
        stored = await self._store.call(
            Read(
                functools.partial(
                    idempotency.find,
                    user_id=claim.user_id,
                    route=claim.route,
                    key=claim.key,
                    now=self._clock(),
                )
            )
        )
        if stored is None:
            await self._check_room(claim.user_id)
            self._running[key] = _Running(claim.fingerprint)
            envelope.reply(Claimed())
        elif stored.fingerprint != claim.fingerprint:
            raise _reused()
        else:
            envelope.reply(stored)

    async def _check_room(self, user_id: str) -> None:
        """`RateLimited` when the user holds `max_keys` keys already (none expires for a while)."""
        running = sum(1 for user, _, _ in self._running if user == user_id)
        stored = await self._store.call(
            Read(functools.partial(idempotency.count_for_user, user_id=user_id, now=self._clock()))
        )
        if stored + running >= self._max_keys:
            raise RateLimited(
                f"over {self._max_keys} Idempotency-Keys stored for this user in 48 hours",
                retry_after=3600.0,
            )

    async def _complete(self, complete: Complete) -> None:
        key = (complete.user_id, complete.route, complete.key)
        await self._store.call(
            Write(
                functools.partial(
                    idempotency.store,
                    user_id=complete.user_id,
                    route=complete.route,
                    key=complete.key,
                    response=complete.response,
                    now=self._clock(),
                )
            )
        )
        running = self._running.pop(key, None)
        for waiter in running.waiting if running else ():
            waiter.reply(complete.response)

    def _release(self, key: _Key) -> None:
        """Hand the key to the first waiter still waiting, if any."""
        running = self._running.pop(key, None)
        while running is not None and running.waiting:
            first = running.waiting.pop(0)
            self._running[key] = running
            if first.reply(Claimed()):
                return
        self._running.pop(key, None)


def _reused() -> Conflict:
    return Conflict("this Idempotency-Key was used with a different request body")
