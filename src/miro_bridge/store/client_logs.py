"""Client log entries: plain SQL over the `client_logs` table."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

import attrs

from miro_bridge.errors import RateLimited


@attrs.frozen
class ClientLogEntry:
    """One cleaned entry, as stored."""

    timestamp: str
    level: str
    message: str
    context: Mapping[str, str]


@attrs.frozen
class CallerLimits:
    """What one caller may send: entries per minute, and bytes per day (both fixed windows)."""

    entries_per_minute: int
    bytes_per_day: int


def size(entry: ClientLogEntry) -> int:
    """The bytes an entry costs its caller's quota: its text, as stored."""
    text = entry.timestamp + entry.level + entry.message + json.dumps(entry.context)
    return len(text.encode())


def charge(
    connection: sqlite3.Connection,
    caller: str,
    entries: Sequence[ClientLogEntry],
    limits: CallerLimits,
    now: float,
) -> None:
    """Count `entries` against the caller's limits; `RateLimited` (nothing counted) if over."""
    row = connection.execute(
        "SELECT minute_start, minute_entries, day_start, day_bytes FROM client_log_usage "
        "WHERE caller = ?",
        (caller,),
    ).fetchone()
    minute_start, minute_entries, day_start, day_bytes = row or (now, 0, now, 0)
    if now - minute_start >= 60.0:
        minute_start, minute_entries = now, 0
    if now - day_start >= 86400.0:
        day_start, day_bytes = now, 0
    minute_entries += len(entries)
    day_bytes += sum(size(entry) for entry in entries)
    if minute_entries > limits.entries_per_minute:
        raise RateLimited(
            f"over {limits.entries_per_minute} log entries a minute", minute_start + 60.0 - now
        )
    if day_bytes > limits.bytes_per_day:
        raise RateLimited(
            f"over {limits.bytes_per_day} bytes of log entries a day", day_start + 86400.0 - now
        )
    connection.execute(
        "INSERT OR REPLACE INTO client_log_usage "
        "(caller, minute_start, minute_entries, day_start, day_bytes) VALUES (?, ?, ?, ?, ?)",
        (caller, minute_start, minute_entries, day_start, day_bytes),
    )


def store(
    connection: sqlite3.Connection,
    entries: Sequence[ClientLogEntry],
    *,
    request_id: str,
    user_id: str | None,
    now: float,
    keep_seconds: float,
    caller: str,
    limits: CallerLimits,
) -> None:
    """Store entries within the caller's limits (`charge`); drop what is past retention."""
    connection.execute("DELETE FROM client_logs WHERE received_at < ?", (now - keep_seconds,))
    connection.execute("DELETE FROM client_log_usage WHERE day_start < ?", (now - 86400.0,))
    charge(connection, caller, entries, limits, now)
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
