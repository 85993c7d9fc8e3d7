"""The console's reads and dead-letter actions in SQLite: the operations of `store.console`."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

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
from miro_bridge.store.sqlite._registry import SQL

_JOBS = """
SELECT id, user_id, kind, created_at, request_id FROM jobs AS j
WHERE (:user IS NULL OR user_id = :user)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at <= :until)
  AND (:board IS NULL OR EXISTS (
      SELECT 1 FROM operations AS o WHERE o.job_id = j.id AND o.board_id = :board))
  AND (:status IS NULL OR EXISTS (
      SELECT 1 FROM operations AS o WHERE o.job_id = j.id AND o.status = :status))
ORDER BY created_at DESC, id
LIMIT :limit
"""


def _history(text: str) -> tuple[str, ...]:
    try:
        values = json.loads(text)
    except ValueError:
        return ()
    return tuple(str(value) for value in values) if isinstance(values, list) else ()


def _counts(rows: list[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    found = dict(rows)
    return tuple((status, found[status]) for status in STATUSES if found.get(status))


@SQL.implements(ListJobs)
def list_jobs(connection: sqlite3.Connection, op: ListJobs) -> list[JobSummary]:
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
    ids = json.dumps([row[0] for row in rows])
    counts: dict[str, list[tuple[str, int]]] = {}
    boards: dict[str, list[str]] = {}
    for job_id, status, count in connection.execute(
        "SELECT job_id, status, count(*) FROM operations "
        "WHERE job_id IN (SELECT value FROM json_each(?)) GROUP BY job_id, status",
        (ids,),
    ):
        counts.setdefault(job_id, []).append((status, count))
    for job_id, board_id in connection.execute(
        "SELECT DISTINCT job_id, board_id FROM operations "
        "WHERE job_id IN (SELECT value FROM json_each(?)) ORDER BY job_id, board_id",
        (ids,),
    ):
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


@SQL.implements(GetJobDetail)
def get_job_detail(connection: sqlite3.Connection, op: GetJobDetail) -> JobDetail | None:
    job = connection.execute(
        "SELECT user_id, kind, created_at, request_id FROM jobs WHERE id = ?", (op.job_id,)
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
            "WHERE o.job_id = ? ORDER BY o.seq",
            (op.job_id,),
        )
    )
    return JobDetail(op.job_id, job[0], job[1], job[2], job[3], operations)


@SQL.implements(ListDeadLetters)
def list_dead_letters(connection: sqlite3.Connection, op: ListDeadLetters) -> list[DeadLetter]:
    return [
        DeadLetter(row[0], row[1], row[2], row[3], row[4], row[5], _history(row[6]), row[7])
        for row in connection.execute(
            "SELECT job_id, seq, user_id, kind, attempts, last_error, history, dead_at "
            "FROM dead_letters ORDER BY dead_at DESC, job_id, seq LIMIT ?",
            (op.limit,),
        )
    ]


@SQL.implements(CountQueue)
def count_queue(connection: sqlite3.Connection, op: CountQueue) -> QueueCounts:
    by_status = connection.execute(
        "SELECT status, count(*) FROM operations GROUP BY status"
    ).fetchall()
    (dead,) = connection.execute("SELECT count(*) FROM dead_letters").fetchone()
    start = op.now - 3600.0
    minutes = [0] * 60
    for minute, count in connection.execute(
        "SELECT CAST((created_at - :start) / 60 AS INTEGER), count(*) FROM jobs "
        "WHERE created_at >= :start AND created_at < :now GROUP BY 1",
        {"start": start, "now": op.now},
    ):
        if 0 <= minute < 60:
            minutes[minute] += count
    found = dict(by_status)
    return QueueCounts(
        tuple((status, int(found.get(status, 0))) for status in STATUSES),
        int(dead),
        tuple(minutes),
    )


@SQL.implements(ListUsers)
def list_users(connection: sqlite3.Connection, op: ListUsers) -> list[UserSummary]:
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
        )
    ]


def _audit(
    connection: sqlite3.Connection, op: RetryDeadLetter | DiscardDeadLetter, action: str
) -> None:
    connection.execute(
        "INSERT INTO console_audit (at, operator, action, job_id, seq, address) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (op.now, op.operator, action, op.job_id, op.seq, op.address),
    )


def _take_dead_letter(connection: sqlite3.Connection, job_id: str, seq: int) -> bool:
    taken: Any = connection.execute(
        "DELETE FROM dead_letters WHERE job_id = ? AND seq = ? RETURNING 1", (job_id, seq)
    ).fetchone()
    return taken is not None


@SQL.implements(RetryDeadLetter)
def retry_dead_letter(connection: sqlite3.Connection, op: RetryDeadLetter) -> bool:
    if not _take_dead_letter(connection, op.job_id, op.seq):
        return False
    connection.execute(
        "UPDATE operations SET status = 'pending', attempts = 0, available_at = :now, "
        "lease_until = NULL, unit = NULL, updated_at = :now "
        "WHERE job_id = :job AND seq = :seq AND status = 'failed'",
        {"now": op.now, "job": op.job_id, "seq": op.seq},
    )
    _audit(connection, op, "retry")
    return True


@SQL.implements(DiscardDeadLetter)
def discard_dead_letter(connection: sqlite3.Connection, op: DiscardDeadLetter) -> bool:
    if not _take_dead_letter(connection, op.job_id, op.seq):
        return False
    _audit(connection, op, "discard")
    return True


@SQL.implements(ListAudit)
def list_audit(connection: sqlite3.Connection, op: ListAudit) -> list[AuditEntry]:
    return [
        AuditEntry(*row)
        for row in connection.execute(
            "SELECT at, operator, action, job_id, seq, address FROM console_audit "
            "ORDER BY id DESC LIMIT ?",
            (op.limit,),
        )
    ]
