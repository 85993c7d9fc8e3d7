"""The idempotency repository: claims on `Idempotency-Key`s and the responses stored for them.

A claim is a row: the first claimant of (user, route, key) inserts it, running, with a claim
token and a lease (`claimed_until`); its response replaces it, done, for 48 hours. Another
claimant finds the row: a done response is replayed (or, for another body, `Conflict`), a
live running claim is `Busy` (wait and ask again), an expired one is taken over.
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
class ClaimKey(Operation[Claimed | Busy | StoredResponse]):
    """Claim a key until `claimed_until`; or the response stored for it; or `Busy`.

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
    """Give a claim up (its work failed): the next claimant runs the work again."""

    writes: ClassVar[bool] = True
    claim: KeyClaim
