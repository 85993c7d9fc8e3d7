"""The idempotency repository: claims on `Idempotency-Key`s and the responses stored for them.

A claim is a row: the first claimant of (user, route, key) inserts it, running, with a claim
token and a lease (`claimed_until`); its response replaces it, done, for 48 hours. Another
claimant finds the row: a done response is replayed (or, for another body, `Conflict`), a
live running claim is `Busy` (wait and ask again), an expired one is taken over. A running
key whose work was enqueued as a job (`store.jobs.Enqueue(binds=...)`) names the job: its
claimants answer from the job's outcome, however the first one ended (a timeout, a crash).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from miro_bridge.records.idempotency import Completion, KeyClaim, StoredResponse
from miro_bridge.store._operation import Operation


@attrs.frozen
class Claimed:
    """The key is the claimant's: run the work, then complete or release it."""


@attrs.frozen
class Busy:
    """Another claimant is running the work under this key now: ask again later."""


@attrs.frozen
class Bound:
    """The key's work is the job `job_id` (a synchronous create): the claim is now the
    claimant's, whose answer is that job's outcome, waited for, never run again."""

    job_id: str


@attrs.frozen
class ClaimKey(Operation[Claimed | Busy | Bound | StoredResponse]):
    """Claim a key until `claimed_until`; or the response stored for it; or `Busy`; or,
    for a key whose work is a job, take the claim over and name the job (`Bound`).

    Raises `Conflict` for another body under the key, `RateLimited` when the user holds
    `max_keys` keys already.
    """

    writes: ClassVar[bool] = True
    claim: KeyClaim
    now: float
    claimed_until: float
    max_keys: int


@attrs.frozen
class RenewClaims(Operation[None]):
    """Extend the leases of claims whose work still runs."""

    writes: ClassVar[bool] = True
    durable: ClassVar[bool] = False
    claims: tuple[KeyClaim, ...]
    claimed_until: float


@attrs.frozen
class CompleteKey(Operation[None]):
    """Store the response of a claim (and drop expired responses)."""

    writes: ClassVar[bool] = True
    completion: Completion
    now: float


@attrs.frozen
class ReleaseKey(Operation[None]):
    """Give a claim up (its work failed): the next claimant runs the work again. A key bound
    to a job is never released: its work goes on."""

    writes: ClassVar[bool] = True
    claim: KeyClaim
