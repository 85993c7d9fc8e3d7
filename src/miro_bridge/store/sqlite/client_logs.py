"""Client log entries in SQLite: the operations of `store.client_logs`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from miro_bridge.records.client_logs import CallerLimits, ClientLogEntry
from miro_bridge.store.client_logs import CountLogs, StoreLogs, charged
from miro_bridge.store.sqlite._registry import SQL


@SQL.implements(StoreLogs)
def store(connection: sqlite3.Connection, op: StoreLogs) -> None:
    now = op.now
    connection.execute("DELETE FROM client_logs WHERE received_at < ?", (now - op.keep_seconds,))
    connection.execute("DELETE FROM client_log_usage WHERE day_start < ?", (now - 86400.0,))
    _charge(connection, op.caller, op.entries, op.limits, now)
    connection.executemany(
        "INSERT INTO client_logs (received_at, request_id, user_id, timestamp, level, message, "
        "context) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (now, op.request_id, op.user_id, e.timestamp, e.level, e.message, json.dumps(e.context))
            for e in op.entries
        ],
    )


def _charge(
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
    minute_start, minute_entries, day_start, day_bytes = charged(
        tuple(row) if row else None, entries, limits, now
    )
    connection.execute(
        "INSERT OR REPLACE INTO client_log_usage "
        "(caller, minute_start, minute_entries, day_start, day_bytes) VALUES (?, ?, ?, ?, ?)",
        (caller, minute_start, minute_entries, day_start, day_bytes),
    )


@SQL.implements(CountLogs)
def count(connection: sqlite3.Connection, op: CountLogs) -> int:
    (total,) = connection.execute("SELECT count(*) FROM client_logs").fetchone()
    return int(total)
