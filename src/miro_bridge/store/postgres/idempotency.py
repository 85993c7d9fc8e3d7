"""`Idempotency-Key` claims and responses in PostgreSQL: the operations of `store.idempotency`.

A claim is a unique row (user, route, key). `ClaimKey` takes the user's advisory transaction
lock first, so that counting the user's keys and inserting one is atomic over every instance;
the row itself is read `FOR UPDATE` (a completion racing with a takeover waits for it), and
inserted with `ON CONFLICT DO NOTHING` then read again, should another claimant have won.
"""

from __future__ import annotations

from typing import Any

import psycopg

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
from miro_bridge.store.postgres._registry import KEYS_LOCK, PG, lock_key

Connection = psycopg.Connection[Any]

_WHERE = "user_id = %s AND route = %s AND key = %s"
# The SQL is assembled from these constants only; every value is a bound parameter.
_FIND = (
    "SELECT fingerprint, state, token, claimed_until, status, content_type, body, created_at, "  # noqa: S608
    f"job_id FROM idempotency WHERE {_WHERE} FOR UPDATE"
)
_INSERT = (
    "INSERT INTO idempotency (user_id, route, key, fingerprint, state, token, claimed_until, "
    "status, content_type, body, created_at) "
    "VALUES (%s, %s, %s, %s, 'running', %s, %s, 0, '', '', %s) "
    "ON CONFLICT (user_id, route, key) DO NOTHING"
)
_DONE = (
    "UPDATE idempotency SET state = 'done', token = NULL, claimed_until = NULL, status = %s, "  # noqa: S608
    f"content_type = %s, body = %s, created_at = %s WHERE {_WHERE} AND token = %s"
)


@PG.implements(ClaimKey)
def claim_key(connection: Connection, op: ClaimKey) -> Claimed | Busy | Bound | StoredResponse:
    claim = op.claim
    where = (claim.user_id, claim.route, claim.key)
    connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", (KEYS_LOCK, lock_key(claim.user_id)))
    row = connection.execute(_FIND, where).fetchone()
    if row is not None and (row[1] == "done" or row[8]) and row[7] <= op.now - RETENTION_SECONDS:
        connection.execute(f"DELETE FROM idempotency WHERE {_WHERE}", where)  # noqa: S608
        row = None
    if row is None:
        (held,) = connection.execute(
            "SELECT count(*) FROM idempotency WHERE user_id = %s AND created_at > %s",
            (claim.user_id, op.now - RETENTION_SECONDS),
        ).fetchone() or (0,)
        if held >= op.max_keys:
            raise RateLimited(
                f"over {op.max_keys} Idempotency-Keys stored for this user in 48 hours", 3600.0
            )
        inserted = connection.execute(
            _INSERT, (*where, claim.fingerprint, claim.token, op.claimed_until, op.now)
        ).rowcount
        if inserted:
            return Claimed()
        row = connection.execute(_FIND, where).fetchone()
        if row is None:  # inserted and released meanwhile: ask again
            return Busy()
    fingerprint, state, token, claimed_until, status, content_type, body, _, job_id = row
    if fingerprint != claim.fingerprint:
        raise Conflict("this Idempotency-Key was used with a different request body")
    if state == "done":
        return StoredResponse(fingerprint, status, content_type, bytes(body))
    if job_id is None and token != claim.token and claimed_until > op.now:
        return Busy()
    # Ours already, or a claim whose holder stopped renewing it (it died): take it over.
    connection.execute(
        f"UPDATE idempotency SET token = %s, claimed_until = %s WHERE {_WHERE}",  # noqa: S608
        (claim.token, op.claimed_until, *where),
    )
    return Claimed() if job_id is None else Bound(job_id)


def bind_key(connection: Connection, claim: KeyClaim, job_id: str) -> None:
    """Name `job_id` as the work of the claimed key (`store.jobs.Enqueue(binds=...)`)."""
    bound = connection.execute(
        f"UPDATE idempotency SET job_id = %s WHERE {_WHERE} AND state = 'running' "  # noqa: S608
        "AND token = %s",
        (job_id, claim.user_id, claim.route, claim.key, claim.token),
    ).rowcount
    if not bound:
        raise Conflict("this Idempotency-Key is no longer held by this request; retry it")


@PG.implements(RenewClaims)
def renew_claims(connection: Connection, op: RenewClaims) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE idempotency SET claimed_until = %s WHERE {_WHERE} "  # noqa: S608
            "AND state = 'running' AND token = %s",
            [
                (op.claimed_until, claim.user_id, claim.route, claim.key, claim.token)
                for claim in op.claims
            ],
        )


@PG.implements(CompleteKey)
def complete_key(connection: Connection, op: CompleteKey) -> None:
    claim, response = op.completion.claim, op.completion.response
    connection.execute(
        "DELETE FROM idempotency WHERE (state = 'done' OR job_id IS NOT NULL) AND created_at <= %s",
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


@PG.implements(ReleaseKey)
def release_key(connection: Connection, op: ReleaseKey) -> None:
    claim = op.claim
    connection.execute(
        f"DELETE FROM idempotency WHERE {_WHERE} AND state = 'running' AND token = %s "  # noqa: S608
        "AND job_id IS NULL",
        (claim.user_id, claim.route, claim.key, claim.token),
    )
