"""`Idempotency-Key` claims and responses in SQLite: the operations of `store.idempotency`."""

from __future__ import annotations

import sqlite3

from miro_bridge.errors import Conflict, RateLimited
from miro_bridge.records.idempotency import RETENTION_SECONDS, KeyClaim, StoredResponse
from miro_bridge.store.idempotency import (
    Bound,
    Busy,
    Claimed,
    ClaimKey,
    CompleteKey,
    ReleaseKey,
    RenewClaims,
)
from miro_bridge.store.sqlite._registry import SQL

_WHERE = "user_id = ? AND route = ? AND key = ?"
# The SQL is assembled from these constants only; every value is a bound parameter.
_FIND = (
    "SELECT fingerprint, state, token, claimed_until, status, content_type, body, created_at, "  # noqa: S608
    f"job_id FROM idempotency WHERE {_WHERE}"
)
_DONE = (
    "UPDATE idempotency SET state = 'done', token = NULL, claimed_until = NULL, status = ?, "  # noqa: S608
    f"content_type = ?, body = ?, created_at = ? WHERE {_WHERE} AND token = ?"
)


@SQL.implements(ClaimKey)
def claim_key(
    connection: sqlite3.Connection, op: ClaimKey
) -> Claimed | Busy | Bound | StoredResponse:
    claim = op.claim
    where = (claim.user_id, claim.route, claim.key)
    row = connection.execute(_FIND, where).fetchone()
    if row is not None and (row[1] == "done" or row[8]) and row[7] <= op.now - RETENTION_SECONDS:
        connection.execute(f"DELETE FROM idempotency WHERE {_WHERE}", where)  # noqa: S608
        row = None
    if row is None:
        (held,) = connection.execute(
            "SELECT count(*) FROM idempotency WHERE user_id = ? AND created_at > ?",
            (claim.user_id, op.now - RETENTION_SECONDS),
        ).fetchone()
        if held >= op.max_keys:
            raise RateLimited(
                f"over {op.max_keys} Idempotency-Keys stored for this user in 48 hours", 3600.0
            )
        connection.execute(
            "INSERT INTO idempotency (user_id, route, key, fingerprint, state, token, "
            "claimed_until, status, content_type, body, created_at) "
            "VALUES (?, ?, ?, ?, 'running', ?, ?, 0, '', x'', ?)",
            (*where, claim.fingerprint, claim.token, op.claimed_until, op.now),
        )
        return Claimed()
    fingerprint, state, token, claimed_until, status, content_type, body, _, job_id = row
    if fingerprint != claim.fingerprint:
        raise Conflict("this Idempotency-Key was used with a different request body")
    if state == "done":
        return StoredResponse(fingerprint, status, content_type, body)
    if job_id is None and token != claim.token and claimed_until > op.now:
        return Busy()
    # Ours already, or a claim whose holder stopped renewing it (it died): take it over.
    connection.execute(
        f"UPDATE idempotency SET token = ?, claimed_until = ? WHERE {_WHERE}",  # noqa: S608
        (claim.token, op.claimed_until, *where),
    )
    return Claimed() if job_id is None else Bound(job_id)


def bind_key(connection: sqlite3.Connection, claim: KeyClaim, job_id: str) -> None:
    """Name `job_id` as the work of the claimed key (`store.jobs.Enqueue(binds=...)`)."""
    bound = connection.execute(
        f"UPDATE idempotency SET job_id = ? WHERE {_WHERE} AND state = 'running' AND token = ?",  # noqa: S608
        (job_id, claim.user_id, claim.route, claim.key, claim.token),
    ).rowcount
    if not bound:
        raise Conflict("this Idempotency-Key is no longer held by this request; retry it")


@SQL.implements(RenewClaims)
def renew_claims(connection: sqlite3.Connection, op: RenewClaims) -> None:
    connection.executemany(
        f"UPDATE idempotency SET claimed_until = ? WHERE {_WHERE} "  # noqa: S608
        "AND state = 'running' AND token = ?",
        [
            (op.claimed_until, claim.user_id, claim.route, claim.key, claim.token)
            for claim in op.claims
        ],
    )


@SQL.implements(CompleteKey)
def complete_key(connection: sqlite3.Connection, op: CompleteKey) -> None:
    claim, response = op.completion.claim, op.completion.response
    connection.execute(
        "DELETE FROM idempotency WHERE (state = 'done' OR job_id IS NOT NULL) AND created_at <= ?",
        (op.now - RETENTION_SECONDS,),
    )
    connection.execute(
        _DONE,
        (
            response.status,
            response.content_type,
            response.body,
            op.now,
            claim.user_id,
            claim.route,
            claim.key,
            claim.token,
        ),
    )


@SQL.implements(ReleaseKey)
def release_key(connection: sqlite3.Connection, op: ReleaseKey) -> None:
    claim = op.claim
    connection.execute(
        f"DELETE FROM idempotency WHERE {_WHERE} AND state = 'running' AND token = ? "  # noqa: S608
        "AND job_id IS NULL",
        (claim.user_id, claim.route, claim.key, claim.token),
    )
