"""Client log entries: plain SQL over the `client_logs` table."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

import attrs


@attrs.frozen
class ClientLogEntry:
    """One cleaned entry, as stored."""

    timestamp: str
    level: str
    message: str
    context: Mapping[str, str]


def store(
    connection: sqlite3.Connection,
    entries: Sequence[ClientLogEntry],
    *,
    request_id: str,
    user_id: str | None,
    now: float,
    keep_seconds: float,
) -> None:
    """Store entries, and drop those older than the retention period."""
    connection.execute("DELETE FROM client_logs WHERE received_at < ?", (now - keep_seconds,))
    connection.executemany(
        "INSERT INTO client_logs (received_at, request_id, user_id, timestamp, level, message, "
        "context) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (now, request_id, user_id, e.timestamp, e.level, e.message, json.dumps(e.context))
            for e in entries
        ],
    )


def count(connection: sqlite3.Connection) -> int:
    """How many entries are stored."""
    (total,) = connection.execute("SELECT count(*) FROM client_logs").fetchone()
    return int(total)
