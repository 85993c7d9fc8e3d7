"""Responses stored under an `Idempotency-Key`: plain SQL over the `idempotency` table."""

from __future__ import annotations

import sqlite3

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


def find(
    connection: sqlite3.Connection, user_id: str, route: str, key: str, now: float
) -> StoredResponse | None:
    """The stored response for this user, route and key, unless it is older than 48 h."""
    row = connection.execute(
        "SELECT fingerprint, status, content_type, body FROM idempotency "
        "WHERE user_id = ? AND route = ? AND key = ? AND created_at > ?",
        (user_id, route, key, now - RETENTION_SECONDS),
    ).fetchone()
    return StoredResponse(*row) if row else None


def store(
    connection: sqlite3.Connection,
    user_id: str,
    route: str,
    key: str,
    response: StoredResponse,
    now: float,
) -> None:
    """Store a first response (replacing an expired one), and drop expired ones."""
    connection.execute("DELETE FROM idempotency WHERE created_at <= ?", (now - RETENTION_SECONDS,))
    connection.execute(
        "INSERT OR REPLACE INTO idempotency "
        "(user_id, route, key, fingerprint, status, content_type, body, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            user_id,
            route,
            key,
            response.fingerprint,
            response.status,
            response.content_type,
            response.body,
            now,
        ),
    )


def count_for_user(connection: sqlite3.Connection, user_id: str, now: float) -> int:
    """How many responses are stored for the user (within the 48 hours)."""
    (count,) = connection.execute(
        "SELECT count(*) FROM idempotency WHERE user_id = ? AND created_at > ?",
        (user_id, now - RETENTION_SECONDS),
    ).fetchone()
    return int(count)
