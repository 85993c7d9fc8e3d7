"""Responses stored under an `Idempotency-Key`."""

from __future__ import annotations

import attrs

#: How long a stored response is replayed (the contract's 48 hours).
RETENTION_SECONDS = 48 * 3600.0


@attrs.frozen
class StoredResponse:
    """The first response to a request with a key, as sent."""

    fingerprint: str
    status: int
    content_type: str
    body: bytes


@attrs.frozen
class KeyClaim:
    """A claim on an `Idempotency-Key`: whose (user, route, key), for which body, and the
    token that proves the claim is this claimant's (a claim that expired may be taken over).

    `job_id`: the key's work is that job, already enqueued (its outcome is the answer).
    """

    user_id: str
    route: str
    key: str
    fingerprint: str
    token: str
    job_id: str | None = None


@attrs.frozen
class Completion:
    """The response that ends a claim, stored in the same transaction as the work it answers."""

    claim: KeyClaim
    response: StoredResponse
