"""The console's reads and dead-letter actions in PostgreSQL: the operations of
`store.console`, the same as SQLite's (`store.sqlite.console`)."""

from __future__ import annotations

from typing import Any

import psycopg

from miro_bridge.records.console import (
    STATUSES,
    AuditEntry,
    DeadLetter,
    JobDetail,
    JobSummary,
    OperationDetail,
    QueueCounts,
    UserSummary,
)
from miro_bridge.store.console import (
    CountQueue,
    DiscardDeadLetter,
    GetJobDetail,
    ListAudit,
    ListDeadLetters,
    ListJobs,
    ListUsers,
    RetryDeadLetter,
)
from miro_bridge.store.postgres._registry import PG

Connection = psycopg.Connection[Any]

# Parameters typed, since PostgreSQL cannot tell the type of a NULL compared with IS NULL.
_JOBS = """
SELECT id, user_id, kind, created_at, request_id FROM jobs AS j
WHERE (%(user)s::text IS NULL OR user_id = %(user)s::text)
  AND (%(since)s::double precision IS NULL OR created_at >= %(since)s::double precision)
  AND (%(until)s::double precision IS NULL OR created_at <= %(until)s::double precision)
  AND (%(board)s::text IS NULL OR EXISTS (
      SELECT 1 FROM operations AS o WHERE o.job_id = j.id AND o.board_id = %(board)s::text))
  AND (%(status)s::text IS NULL OR EXISTS (
      SELECT 1 FROM operations AS o WHERE o.job_id = j.id AND o.status = %(status)s::text))
ORDER BY created_at DESC, id
LIMIT %(limit)s
"""


def _history(value: object) -> tuple[str, ...]:
    return tuple(str(entry) for entry in value) if isinstance(value, list) else ()


def _counts(rows: list[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    found = dict(rows)
    return tuple((status, found[status]) for status in STATUSES if found.get(status))


@PG.implements(ListJobs)
def list_jobs(connection: Connection, op: ListJobs) -> list[JobSummary]:
    wanted = op.filter
    rows = connection.execute(
        _JOBS,
        {
            "user": wanted.user_id,
            "since": wanted.since,
            "until": wanted.until,
            "board": wanted.board_id,
            "status": wanted.status,
            "limit": wanted.limit,
        },
    ).fetchall()
    ids = [row[0] for row in rows]
    counts: dict[str, list[tuple[str, int]]] = {}
    boards: dict[str, list[str]] = {}
    for job_id, status, count in connection.execute(
        "SELECT job_id, status, count(*) FROM operations WHERE job_id = ANY(%s) "
        "GROUP BY job_id, status",
        (ids,),
    ).fetchall():
        counts.setdefault(job_id, []).append((status, int(count)))
    for job_id, board_id in connection.execute(
        "SELECT DISTINCT job_id, board_id FROM operations WHERE job_id = ANY(%s) "
        "ORDER BY job_id, board_id",
        (ids,),
    ).fetchall():
        boards.setdefault(job_id, []).append(board_id)
    return [
        JobSummary(
            job_id,
            user_id,
            kind,
            created_at,
            request_id,
            tuple(boards.get(job_id, ())),
            _counts(counts.get(job_id, [])),
        )
        for job_id, user_id, kind, created_at, request_id in rows
    ]


@PG.implements(GetJobDetail)
def get_job_detail(connection: Connection, op: GetJobDetail) -> JobDetail | None:
    job = connection.execute(
        "SELECT user_id, kind, created_at, request_id FROM jobs WHERE id = %s", (op.job_id,)
    ).fetchone()
    if job is None:
        return None
    operations = tuple(
        OperationDetail(
            seq=row[0],
            board_id=row[1],
            kind=row[2],
            status=row[3],
            attempts=row[4],
            last_error=row[5],
            item_id=row[6],
            history=_history(row[7]),
            updated_at=row[8],
            dead=bool(row[9]),
        )
        for row in connection.execute(
            "SELECT o.seq, o.board_id, o.kind, o.status, o.attempts, o.last_error, o.result, "
            "o.history, o.updated_at, d.job_id IS NOT NULL FROM operations AS o "
            "LEFT JOIN dead_letters AS d ON d.job_id = o.job_id AND d.seq = o.seq "
            "WHERE o.job_id = %s ORDER BY o.seq",
            (op.job_id,),
        ).fetchall()
    )
    return JobDetail(op.job_id, job[0], job[1], job[2], job[3], operations)


@PG.implements(ListDeadLetters)
def list_dead_letters(connection: Connection, op: ListDeadLetters) -> list[DeadLetter]:
    return [
        DeadLetter(row[0], row[1], row[2], row[3], row[4], row[5], _history(row[6]), row[7])
        for row in connection.execute(
            "SELECT job_id, seq, user_id, kind, attempts, last_error, history, dead_at "
            "FROM dead_letters ORDER BY dead_at DESC, job_id, seq LIMIT %s",
            (op.limit,),
        ).fetchall()
    ]


@PG.implements(CountQueue)
def count_queue(connection: Connection, op: CountQueue) -> QueueCounts:
    by_status = connection.execute(
        "SELECT status, count(*) FROM operations GROUP BY status"
    ).fetchall()
    dead = connection.execute("SELECT count(*) FROM dead_letters").fetchone()
    start = op.now - 3600.0
    minutes = [0] * 60
    for minute, count in connection.execute(
        "SELECT floor((created_at - %(start)s) / 60)::integer AS minute, count(*) FROM jobs "
        "WHERE created_at >= %(start)s AND created_at < %(now)s GROUP BY minute",
        {"start": start, "now": op.now},
    ).fetchall():
        if 0 <= minute < 60:
            minutes[minute] += int(count)
    found = {status: int(count) for status, count in by_status}
    return QueueCounts(
        tuple((status, found.get(status, 0)) for status in STATUSES),
        int(dead[0]) if dead else 0,
        tuple(minutes),
    )


@PG.implements(ListUsers)
def list_users(connection: Connection, op: ListUsers) -> list[UserSummary]:
    return [
        UserSummary(
            id=row[0],
            name=row[1],
            connected=None if row[3] is None else row[3] == "connected",
            expires_at=row[4],
            refreshed_at=row[5],
            created_at=row[2],
        )
        for row in connection.execute(
            "SELECT u.id, u.name, u.created_at, t.status, t.expires_at, t.updated_at "
            "FROM users AS u LEFT JOIN tokens AS t ON t.user_id = u.id ORDER BY u.id"
        ).fetchall()
    ]


def _audit(connection: Connection, op: RetryDeadLetter | DiscardDeadLetter, action: str) -> None:
    connection.execute(
        "INSERT INTO console_audit (at, operator, action, job_id, seq, address) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (op.now, op.operator, action, op.job_id, op.seq, op.address),
    )


def _take_dead_letter(connection: Connection, job_id: str, seq: int) -> bool:
    taken = connection.execute(
        "DELETE FROM dead_letters WHERE job_id = %s AND seq = %s RETURNING 1", (job_id, seq)
    ).fetchone()
    return taken is not None


@PG.implements(RetryDeadLetter)
def retry_dead_letter(connection: Connection, op: RetryDeadLetter) -> bool:
    if not _take_dead_letter(connection, op.job_id, op.seq):
        return False
    connection.execute(
        "UPDATE operations SET status = 'pending', attempts = 0, available_at = %(now)s, "
        "lease_until = NULL, unit = NULL, updated_at = %(now)s "
        "WHERE job_id = %(job)s AND seq = %(seq)s AND status = 'failed'",
        {"now": op.now, "job": op.job_id, "seq": op.seq},
    )
    _audit(connection, op, "retry")
    return True


@PG.implements(DiscardDeadLetter)
def discard_dead_letter(connection: Connection, op: DiscardDeadLetter) -> bool:
    if not _take_dead_letter(connection, op.job_id, op.seq):
        return False
    _audit(connection, op, "discard")
    return True


@PG.implements(ListAudit)
def list_audit(connection: Connection, op: ListAudit) -> list[AuditEntry]:
    return [
        AuditEntry(*row)
        for row in connection.execute(
            "SELECT at, operator, action, job_id, seq, address FROM console_audit "
            "ORDER BY id DESC LIMIT %s",
            (op.limit,),
        ).fetchall()
    ]
