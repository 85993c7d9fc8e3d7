"""Client log entries in SQLite: the operations of `store.client_logs`."""

from __future__ import annotations

import sqlite3

from miro_bridge.errors import RateLimited
from miro_bridge.store.client_logs import CountLogs, StoreLogs, Usage, charged_in_order
from miro_bridge.store.sqlite._registry import SQL


@SQL.implements(StoreLogs)
def store(connection: sqlite3.Connection, op: StoreLogs) -> tuple[RateLimited | None, ...]:
    now = op.now
    connection.execute("DELETE FROM client_logs WHERE received_at < ?", (now - op.keep_seconds,))
    connection.execute("DELETE FROM client_log_usage WHERE day_start < ?", (now - 86400.0,))
    usage: dict[str, Usage | None] = {}
    for caller in {post.caller for post in op.posts}:
        row = connection.execute(
            "SELECT minute_start, minute_entries, day_start, day_bytes FROM client_log_usage "
            "WHERE caller = ?",
            (caller,),
        ).fetchone()
        usage[caller] = tuple(row) if row else None
    refusals, changed = charged_in_order(usage, op.posts, op.limits, now)
    connection.executemany(
        "INSERT OR REPLACE INTO client_log_usage "
        "(caller, minute_start, minute_entries, day_start, day_bytes) VALUES (?, ?, ?, ?, ?)",
        [(caller, *row) for caller, row in changed.items()],
    )
    connection.executemany(
        "INSERT INTO client_logs (received_at, request_id, user_id, timestamp, level, message, "
        "context) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (now, p.request_id, p.user_id, e.timestamp, e.level, e.message, e.context_json)
            for p, refusal in zip(op.posts, refusals, strict=True)
            if refusal is None
            for e in p.entries
        ],
    )
    return refusals


@SQL.implements(CountLogs)
def count(connection: sqlite3.Connection, op: CountLogs) -> int:
    (total,) = connection.execute("SELECT count(*) FROM client_logs").fetchone()
    return int(total)
