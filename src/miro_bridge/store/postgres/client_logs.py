"""Client log entries in PostgreSQL: the operations of `store.client_logs`.

A caller's usage row is locked (`FOR UPDATE`) while its entries are counted, so that the
limits hold over every instance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from miro_bridge.records.client_logs import CallerLimits, ClientLogEntry
from miro_bridge.store.client_logs import CountLogs, StoreLogs, charged
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
    minute_start, minute_entries, day_start, day_bytes = charged(
        tuple(row) if row else None, entries, limits, now
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
