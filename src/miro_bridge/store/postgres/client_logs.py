"""Client log entries in PostgreSQL: the operations of `store.client_logs`.

The callers' usage rows are locked (`FOR UPDATE`, in the callers' order, so that two
instances that lock the same callers never deadlock) while their entries are counted, so
that the limits hold over every instance.
"""

from __future__ import annotations

from typing import Any

import psycopg

from miro_bridge.errors import RateLimited
from miro_bridge.store.client_logs import CountLogs, StoreLogs, Usage, charged_in_order
from miro_bridge.store.postgres._registry import PG

Connection = psycopg.Connection[Any]


@PG.implements(StoreLogs)
def store(connection: Connection, op: StoreLogs) -> tuple[RateLimited | None, ...]:
    now = op.now
    connection.execute("DELETE FROM client_logs WHERE received_at < %s", (now - op.keep_seconds,))
    connection.execute("DELETE FROM client_log_usage WHERE day_start < %s", (now - 86400.0,))
    callers = sorted({post.caller for post in op.posts})
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO client_log_usage (caller, minute_start, minute_entries, day_start, "
            "day_bytes) VALUES (%s, %s, 0, %s, 0) ON CONFLICT (caller) DO NOTHING",
            [(caller, now, now) for caller in callers],
        )
    rows = connection.execute(
        "SELECT caller, minute_start, minute_entries, day_start, day_bytes FROM client_log_usage "
        "WHERE caller = ANY(%s) ORDER BY caller FOR UPDATE",
        (callers,),
    ).fetchall()
    usage: dict[str, Usage | None] = {caller: tuple(rest) for caller, *rest in rows}
    refusals, changed = charged_in_order(usage, op.posts, op.limits, now)
    with connection.cursor() as cursor:
        cursor.executemany(
            "UPDATE client_log_usage SET minute_start = %s, minute_entries = %s, "
            "day_start = %s, day_bytes = %s WHERE caller = %s",
            [(*row, caller) for caller, row in changed.items()],
        )
    with connection.cursor().copy(
        "COPY client_logs (received_at, request_id, user_id, timestamp, level, message, context) "
        "FROM STDIN"
    ) as copy:
        for post, refusal in zip(op.posts, refusals, strict=True):
            if refusal is None:
                for e in post.entries:
                    copy.write_row(
                        (
                            now,
                            post.request_id,
                            post.user_id,
                            e.timestamp,
                            e.level,
                            e.message,
                            e.context_json,
                        )
                    )
    return refusals


@PG.implements(CountLogs)
def count(connection: Connection, op: CountLogs) -> int:
    row = connection.execute("SELECT count(*) FROM client_logs").fetchone()
    return int(row[0]) if row else 0
