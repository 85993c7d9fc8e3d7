"""Client log entries in PostgreSQL: the operations of `store.client_logs`.

A caller's usage row is locked (`FOR UPDATE`) while its entries are counted, so that the
limits hold over every instance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from miro_bridge.errors import RateLimited
from miro_bridge.records.client_logs import CallerLimits, ClientLogEntry
from miro_bridge.store.client_logs import CountLogs, StoreLogs
from miro_bridge.store.postgres._registry import PG

Connection = psycopg.Connection[Any]


@PG.implements(StoreLogs)
def store(connection: Connection, op: StoreLogs) -> None:
    now = op.now
    connection.execute("DELETE FROM client_logs WHERE received_at < %s", (now - op.keep_seconds,))
    connection.execute("DELETE FROM client_log_usage WHERE day_start < %s", (now - 86400.0,))
    _charge(connection, op.caller, op.entries, op.limits, now)
    with connection.cursor().copy(
        "COPY client_logs (received_at, request_id, user_id, timestamp, level, message, context) "
        "FROM STDIN"
    ) as copy:
        for e in op.entries:
            copy.write_row(
                (
                    now,
                    op.request_id,
                    op.user_id,
                    e.timestamp,
                    e.level,
                    e.message,
                    json.dumps(e.context),
                )
            )


def _charge(
    connection: Connection,
    caller: str,
    entries: Sequence[ClientLogEntry],
    limits: CallerLimits,
    now: float,
) -> None:
    """Count `entries` against the caller's limits; `RateLimited` (nothing counted) if over."""
    connection.execute(
        "INSERT INTO client_log_usage (caller, minute_start, minute_entries, day_start, "
        "day_bytes) VALUES (%s, %s, 0, %s, 0) ON CONFLICT (caller) DO NOTHING",
        (caller, now, now),
    )
    row = connection.execute(
        "SELECT minute_start, minute_entries, day_start, day_bytes FROM client_log_usage "
        "WHERE caller = %s FOR UPDATE",
        (caller,),
    ).fetchone()
    minute_start, minute_entries, day_start, day_bytes = row or (now, 0, now, 0)
    if now - minute_start >= 60.0:
        minute_start, minute_entries = now, 0
    if now - day_start >= 86400.0:
        day_start, day_bytes = now, 0
    minute_entries += len(entries)
    day_bytes += sum(entry.size for entry in entries)
    if minute_entries > limits.entries_per_minute:
        raise RateLimited(
            f"over {limits.entries_per_minute} log entries a minute", minute_start + 60.0 - now
        )
    if day_bytes > limits.bytes_per_day:
        raise RateLimited(
            f"over {limits.bytes_per_day} bytes of log entries a day", day_start + 86400.0 - now
        )
    connection.execute(
        "UPDATE client_log_usage SET minute_start = %s, minute_entries = %s, day_start = %s, "
        "day_bytes = %s WHERE caller = %s",
        (minute_start, minute_entries, day_start, day_bytes, caller),
    )


@PG.implements(CountLogs)
def count(connection: Connection, op: CountLogs) -> int:
    row = connection.execute("SELECT count(*) FROM client_logs").fetchone()
    return int(row[0]) if row else 0
