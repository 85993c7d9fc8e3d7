"""The Idempotency actor: one execution per `Idempotency-Key`, and replays of its response.

A request with a key first `Claim`s it: a row in the database (`store.idempotency`), so that
one claimant runs the work however many instances share the database. The claimant runs the
work and completes the key with its response, stored durably (for a job, in the transaction
that stores the job) and replayed byte for byte to every later request with the same key
(scoped to user and route) for 48 hours; or releases it (the work failed) so that a retry runs
it again. The same key with a different body is a `Conflict`. Work enqueued as a job that
answers the request (a keyed synchronous create) binds the key to the job: such a key is
never released; its next claimant gets the claim with the job's id (`KeyClaim.job_id`) and
answers from the job's outcome, so the work runs once whether the first claimant timed out or
its process died.

A claimant that arrives while the work runs waits for its response instead of running it
again: for a claim running in this instance, until it ends; for one held by another instance,
asking the database again every `POLL_SECONDS`. A claim's lease is renewed while its work
runs here, so it is taken over only if its holder died. A user holds at most
`MIRO_IDEMPOTENCY_MAX_KEYS` keys (stored in the last 48 hours or running); past that, a new
one is `RateLimited` (429).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar, assert_never, cast

import attrs
import trio

from miro_bridge.actors._runtime import Actor, ActorRef, Envelope, Inbox, Message
from miro_bridge.actors.store import Store
from miro_bridge.errors import Conflict, StoreUnavailable
from miro_bridge.records.idempotency import Completion, KeyClaim, StoredResponse
from miro_bridge.store import idempotency

#: How long a claim holds without being renewed (its holder may have died).
CLAIM_SECONDS = 60.0
#: How often the claims whose work runs here are renewed (real time).
RENEW_SECONDS = 20.0
#: How often a claimant waiting for another instance's claim asks the database again.
POLL_SECONDS = 0.2

_Key = tuple[str, str, str]


@attrs.frozen
class Claim(Message[KeyClaim | StoredResponse, "Idempotency"]):
    """Claim a key (run the work, then `Complete` or `Release` it), or its stored response."""

    user_id: str
    route: str
    key: str
    fingerprint: str


@attrs.frozen
class Complete(Message[None, "Idempotency"]):
    """Store the claimant's response and answer everyone waiting for it.

    `stored`: the response was stored already, with the work (a job's `Enqueue`).
    """

    completion: Completion
    stored: bool = False


@attrs.frozen
class Release(Message[None, "Idempotency"]):
    """The claimant's work failed: let the next claimant run it."""

    claim: KeyClaim


IdempotencyMessage = Claim | Complete | Release


@attrs.define
class _Running:
    """A claim whose work runs in this instance; `done` when it ends, with its response
    (None: released)."""

    claim: KeyClaim
    done: trio.Event = attrs.field(factory=trio.Event)
    response: StoredResponse | None = None


class Idempotency(Actor):
    """Owns the claims whose work runs here; see the module docstring."""

    name: ClassVar[str] = "idempotency"

    def __init__(
        self,
        store: ActorRef[Store],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = trio.sleep,
        max_keys: int = 10_000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._max_keys = max_keys
        self._running: dict[_Key, _Running] = {}

    async def serve(self, inbox: Inbox) -> None:
        """Renew the leases of the claims running here, beside the mailbox."""
        self.background.start_soon(self._renew_periodically)
        await super().serve(inbox)

    async def handle(self, envelope: Envelope) -> None:
        """Claim (in a task: it may wait), complete or release a key."""
        message = cast(IdempotencyMessage, envelope.message)
        try:
            match message:
                case Claim():
                    self.nursery.start_soon(self._answer_claim, envelope, message)
                case Complete():
                    await self._complete(message)
                    envelope.reply(None)
                case Release(claim=claim):
                    await self._release(claim)
                    envelope.reply(None)
                case _:
                    assert_never(message)
        except Exception as error:
            envelope.fail(error)

    async def _answer_claim(self, envelope: Envelope, claim: Claim) -> None:
        with envelope.context():
            try:
                answer = await self._take(claim)
            except Exception as error:
                envelope.fail(error)
                return
            if not envelope.reply(answer) and isinstance(answer, KeyClaim):
                await self._release(answer)  # its claimant gave up waiting meanwhile

    async def _take(self, claim: Claim) -> KeyClaim | StoredResponse:
        """The key, or its stored response, however long another claimant holds it."""
        key = (claim.user_id, claim.route, claim.key)
        mine = KeyClaim(*key, claim.fingerprint, secrets.token_hex(8))
        while True:
            running = self._running.get(key)
            if running is not None:
                if running.claim.fingerprint != claim.fingerprint:
                    raise Conflict("this Idempotency-Key was used with a different request body")
                await running.done.wait()
                if running.response is not None:
                    return running.response
                continue  # released: claim it
            now = self._clock()
            answer = await self._store.call(
                idempotency.ClaimKey(mine, now, now + CLAIM_SECONDS, self._max_keys)
            )
            match answer:
                case idempotency.Claimed():
                    self._running[key] = _Running(mine)
                    return mine
                case idempotency.Bound(job_id=job_id):  # its work goes on: wait for it
                    bound = attrs.evolve(mine, job_id=job_id)
                    self._running[key] = _Running(bound)
                    return bound
                case StoredResponse():
                    return answer
                case idempotency.Busy():
                    if key not in self._running:  # held elsewhere: ask again later
                        await self._sleep(POLL_SECONDS)

    async def _complete(self, message: Complete) -> None:
        completion = message.completion
        if not message.stored:
            await self._store.call(idempotency.CompleteKey(completion, self._clock()))
        self._end(completion.claim, completion.response)

    async def _release(self, claim: KeyClaim) -> None:
        try:
            await self._store.call(idempotency.ReleaseKey(claim))
        finally:
            self._end(claim, None)

    def _end(self, claim: KeyClaim, response: StoredResponse | None) -> None:
        """The claim's work is over: wake whoever waits for it here."""
        key = (claim.user_id, claim.route, claim.key)
        running = self._running.get(key)
        if running is not None and running.claim == claim:
            del self._running[key]
            running.response = response
            running.done.set()

    async def _renew_periodically(self) -> None:
        while True:
            await trio.sleep(RENEW_SECONDS)
            claims = tuple(running.claim for running in self._running.values())
            if claims:
                now = self._clock()
                with contextlib.suppress(StoreUnavailable):  # the next round tries again
                    await self._store.call(idempotency.RenewClaims(claims, now + CLAIM_SECONDS))
