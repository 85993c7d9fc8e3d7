"""Durable jobs in SQLite: the operations of `store.jobs`, in plain SQL.

Operations are addressed by their `rowid`. The SQL below is assembled from constants only;
every value is a bound parameter.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from miro_bridge.records.jobs import (
    BULK_SIZE,
    CREATES,
    WEBHOOK_MEMORY_SECONDS,
    ClaimedOperation,
    Decision,
    FinishedJob,
    ItemResponse,
    JobView,
    NewJob,
    NewOperation,
    OperationView,
    Origin,
    Target,
)
from miro_bridge.store.idempotency import CompleteKey
from miro_bridge.store.jobs import (
    AcceptWebhookEvents,
    Claim,
    DeadLetterCount,
    Enqueue,
    GetJob,
    NextDue,
    QueueLength,
    ReadyUsers,
    RecordedItems,
    RecordResults,
    ReleaseOrphans,
    RenewLeases,
    ResolveTarget,
    Settle,
)
from miro_bridge.store.sqlite._registry import SQL
from miro_bridge.store.sqlite.idempotency import bind_key, complete_key

#: The client's node an operation draws; NULL (not an error) for a payload that is not JSON.
_NODE_ID = "CASE WHEN json_valid(payload) THEN json_extract(payload, '$.node_id') END"
#: Claimable: pending and due, or held under a lease that has expired (its holder died) by
#: someone else than the claimant (`:held`, a JSON list of its own units).
_EXPIRED = (
    "status = 'working' AND lease_until < :now AND unit NOT IN (SELECT value FROM json_each(:held))"
)
_READY = f"(status = 'pending' AND available_at <= :now OR {_EXPIRED})"


def _json(value: Mapping[str, Any]) -> str:
    """JSON text SQLite and Miro both read: no NaN or Infinity ever stored."""
    return json.dumps(value, allow_nan=False)


@SQL.implements(Enqueue)
def enqueue(connection: sqlite3.Connection, op: Enqueue) -> None:
    insert_job(connection, op.job, op.now)
    if op.completes is not None:
        complete_key(connection, CompleteKey(op.completes, op.now))
    if op.binds is not None:
        bind_key(connection, op.binds, op.job.id)


def insert_job(connection: sqlite3.Connection, job: NewJob, now: float) -> None:
    """Store a job and its operations, all pending and available now."""
    origin = job.origin
    connection.execute(
        "INSERT INTO jobs (id, user_id, kind, request_id, traceparent, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (job.id, job.user_id, job.kind, origin.request_id, origin.traceparent, now),
    )
    connection.executemany(
        "INSERT INTO operations (job_id, seq, user_id, board_id, kind, payload, status, "
        "available_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        [
            (job.id, seq, job.user_id, op.board_id, op.kind, _json(op.payload), now, now)
            for seq, op in enumerate(job.operations)
        ],
    )


@SQL.implements(ReleaseOrphans)
def release_orphans(connection: sqlite3.Connection, op: ReleaseOrphans) -> int:
    return connection.execute(
        "UPDATE operations SET status = 'pending', lease_until = NULL, unit = NULL "
        "WHERE status = 'working'"
    ).rowcount


# One index probe per user with pending work (a loose index scan), not one row per operation:
# the dispatcher asks this often, while the table may hold hundreds of thousands of operations.
_READY_USERS = """
WITH RECURSIVE pending(user_id) AS (
    SELECT min(user_id) FROM operations WHERE status = 'pending'
    UNION ALL
    SELECT (SELECT min(user_id) FROM operations
            WHERE status = 'pending' AND user_id > pending.user_id)
    FROM pending WHERE pending.user_id IS NOT NULL
)
SELECT user_id FROM pending
WHERE user_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM operations AS o
    WHERE o.status = 'pending' AND o.user_id = pending.user_id AND o.available_at <= :now
)
UNION
SELECT user_id FROM operations WHERE status = 'working' AND lease_until < :now
"""


@SQL.implements(ReadyUsers)
def ready_users(connection: sqlite3.Connection, op: ReadyUsers) -> list[str]:
    return [user for (user,) in connection.execute(_READY_USERS, {"now": op.now})]


@SQL.implements(NextDue)
def next_due(connection: sqlite3.Connection, op: NextDue) -> float | None:
    (pending,) = connection.execute(
        "SELECT min(available_at) FROM operations WHERE status = 'pending'"
    ).fetchone()
    (leased,) = connection.execute(
        "SELECT min(lease_until) FROM operations WHERE status = 'working'"
    ).fetchone()
    times = [float(at) for at in (pending, leased) if at is not None]
    return min(times) if times else None


_FIRST = (
    "SELECT rowid, board_id, kind FROM operations WHERE user_id = :user AND {ready} "
    "ORDER BY rowid LIMIT 1"
)
# Two probes, each ordered by the (user_id, status) index, rather than one OR that is not.
_FIRST_PENDING = _FIRST.format(ready="status = 'pending' AND available_at <= :now")
_FIRST_EXPIRED = _FIRST.format(ready=_EXPIRED)
_CHOOSE_CREATES = (
    "SELECT rowid, attempt_started FROM operations WHERE user_id = :user "  # noqa: S608
    f"AND board_id = :board AND kind IN {CREATES!r} AND {_READY} ORDER BY rowid LIMIT {BULK_SIZE}"
)
_CHOOSE_ONE = "SELECT rowid, attempt_started FROM operations WHERE rowid = :first"
# A create's attempt opens with its claim (unless one is open already): in the same
# transaction, so that a create is never sent without its attempt on disk.
_CLAIM = (
    "UPDATE operations SET status = 'working', unit = :unit, lease_until = :lease, "  # noqa: S608
    f"attempts = attempts + 1, updated_at = :now, attempt_started = CASE WHEN kind IN {CREATES!r} "
    "THEN coalesce(attempt_started, :now) END "
    "WHERE rowid IN (SELECT value FROM json_each(:chosen)) "
    "RETURNING rowid, job_id, seq, user_id, board_id, kind, payload, attempts, result"
)


@SQL.implements(Claim)
def claim(connection: sqlite3.Connection, op: Claim) -> list[ClaimedOperation]:
    params = {"user": op.user_id, "now": op.now, "held": json.dumps(op.held)}
    (running,) = connection.execute(
        "SELECT count(DISTINCT unit) FROM operations "
        "WHERE user_id = :user AND status = 'working' AND lease_until >= :now",
        params,
    ).fetchone()
    if running >= op.per_user:
        return []
    candidates = [
        row
        for query in (_FIRST_PENDING, _FIRST_EXPIRED)
        if (row := connection.execute(query, params).fetchone()) is not None
    ]
    if not candidates:
        return []
    rowid, board_id, kind = min(candidates)
    chosen = dict(
        connection.execute(
            _CHOOSE_CREATES if kind in CREATES else _CHOOSE_ONE,
            {**params, "board": board_id, "first": rowid},
        ).fetchall()
    )
    rows = connection.execute(
        _CLAIM,
        {**params, "chosen": json.dumps(list(chosen)), "lease": op.lease_until, "unit": op.unit},
    ).fetchall()
    jobs = {
        job_id: (kind, Origin(request_id, traceparent))
        for job_id, kind, request_id, traceparent in connection.execute(
            "SELECT id, kind, request_id, traceparent FROM jobs "
            "WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted({row[1] for row in rows})),),
        )
    }
    claimed = []
    for row in rows:
        try:
            payload = json.loads(row[6])
        except ValueError:  # a damaged row fails alone; it never stops the queue
            _fail(connection, row[0], "the stored operation cannot be read", op.now, dead=True)
            continue
        claimed.append(
            ClaimedOperation(
                rowid=row[0],
                unit=op.unit,
                job_id=row[1],
                seq=row[2],
                user_id=row[3],
                board_id=row[4],
                kind=row[5],
                job_kind=jobs[row[1]][0],
                payload=payload,
                attempts=row[7],
                result=row[8],
                origin=jobs[row[1]][1],
                attempt=chosen[row[0]],
            )
        )
    return sorted(claimed, key=lambda claimed_op: claimed_op.rowid)


@SQL.implements(RenewLeases)
def renew_leases(connection: sqlite3.Connection, op: RenewLeases) -> None:
    connection.executemany(
        "UPDATE operations SET lease_until = ? WHERE unit = ? AND status = 'working'",
        [(op.lease_until, unit) for unit in op.units],
    )


@SQL.implements(RecordResults)
def record_results(connection: sqlite3.Connection, op: RecordResults) -> list[int]:
    recorded = []
    for held, item_id in op.results:
        row = connection.execute(
            "UPDATE operations SET result = :item, attempt_started = NULL, updated_at = :now "
            "WHERE rowid = :rowid AND unit = :unit AND status = 'working' AND NOT EXISTS ("
            "SELECT 1 FROM operations AS other WHERE other.board_id = :board "
            "AND other.result = :item AND other.rowid != :rowid) RETURNING rowid",
            {
                "item": item_id,
                "now": op.now,
                "rowid": held.rowid,
                "unit": held.unit,
                "board": held.board_id,
            },
        ).fetchone()
        if row is not None:
            recorded.append(held.rowid)
    return recorded


@SQL.implements(RecordedItems)
def recorded_items(connection: sqlite3.Connection, op: RecordedItems) -> frozenset[str]:
    return frozenset(
        item
        for (item,) in connection.execute(
            "SELECT result FROM operations WHERE board_id = ? "
            "AND result IN (SELECT value FROM json_each(?))",
            (op.board_id, json.dumps(op.item_ids)),
        )
    )


@SQL.implements(Settle)
def settle(connection: sqlite3.Connection, op: Settle) -> list[FinishedJob]:
    settled: set[str] = set()
    for decision in op.decisions:
        if _settle_one(connection, decision, op.now):
            settled.add(decision.operation.job_id)
    finished = []
    for job_id in sorted(settled):
        user = next(d.operation.user_id for d in op.decisions if d.operation.job_id == job_id)
        view = get_job(connection, GetJob(job_id, user))
        if view is not None and view.status in ("done", "failed", "partial"):
            finished.append(FinishedJob(job_id, view.kind, view.status, view.created_at))
    return finished


_HELD = "rowid = :rowid AND unit = :unit AND status = 'working'"
#: What Miro answered is kept; the attempt closes, its outcome known, unless it is in doubt.
_OUTCOME = (
    "response = coalesce(:response, response), "
    "attempt_started = CASE WHEN :in_doubt THEN attempt_started END"
)


def _settle_one(connection: sqlite3.Connection, decision: Decision, now: float) -> bool:
    """Record one decision, if the operation is still held under its unit; whether it was."""
    held = decision.operation
    response = decision.response.to_json() if decision.response is not None else None
    params = {
        "rowid": held.rowid,
        "unit": held.unit,
        "now": now,
        "error": decision.error,
        "response": response,
        "in_doubt": decision.in_doubt,
    }
    if decision.action == "done":
        row = connection.execute(
            "UPDATE operations SET status = 'done', result = coalesce(:item, result), "  # noqa: S608
            f"last_error = NULL, lease_until = NULL, unit = NULL, updated_at = :now, {_OUTCOME} "
            f"WHERE {_HELD} "
            f"RETURNING user_id, board_id, kind, {_NODE_ID}, result",
            {**params, "item": decision.item_id},
        ).fetchone()
        if row is not None:
            user_id, board_id, kind, node_id, item_id = row
            _remember_node(connection, user_id, board_id, kind, node_id, item_id, now)
        return row is not None
    if decision.action == "defer":
        return bool(
            connection.execute(
                "UPDATE operations SET status = 'pending', lease_until = NULL, unit = NULL, "  # noqa: S608
                f"attempts = attempts - 1, available_at = :at, updated_at = :now WHERE {_HELD}",
                {**params, "at": decision.available_at},
            ).rowcount
        )
    if decision.action == "retry":
        return bool(
            connection.execute(
                "UPDATE operations SET status = 'pending', lease_until = NULL, unit = NULL, "  # noqa: S608
                "last_error = :error, history = json_insert(history, '$[#]', :error), "
                f"available_at = :at, updated_at = :now, {_OUTCOME} WHERE {_HELD}",
                {**params, "at": decision.available_at},
            ).rowcount
        )
    held_now = connection.execute(
        f"UPDATE operations SET {_OUTCOME} WHERE {_HELD} RETURNING 1",  # noqa: S608
        params,
    ).fetchone()
    if held_now is None:
        return False
    _fail(connection, held.rowid, decision.error or "", now, dead=decision.action == "dead")
    return True


def _fail(
    connection: sqlite3.Connection, rowid: int, error: str, now: float, *, dead: bool
) -> None:
    """The operation failed for good; `dead` also files it with its history."""
    connection.execute(
        "UPDATE operations SET status = 'failed', lease_until = NULL, unit = NULL, "
        "last_error = ?, history = json_insert(history, '$[#]', ?), updated_at = ? "
        "WHERE rowid = ?",
        (error, error, now, rowid),
    )
    if dead:
        connection.execute(
            "INSERT INTO dead_letters (job_id, seq, user_id, kind, payload, attempts, "
            "last_error, history, dead_at) SELECT job_id, seq, user_id, kind, payload, attempts, "
            "last_error, history, ? FROM operations WHERE rowid = ?",
            (now, rowid),
        )


def _remember_node(
    connection: sqlite3.Connection,
    user_id: str,
    board_id: str,
    kind: str,
    node_id: str | None,
    item_id: str | None,
    now: float,
) -> None:
    """A create that drew a client's node names the node's item; a delete forgets it."""
    if kind in CREATES and node_id is not None and item_id is not None:
        connection.execute(
            "INSERT INTO board_nodes (user_id, board_id, node_id, item_id, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, board_id, node_id) "
            "DO UPDATE SET item_id = excluded.item_id, updated_at = excluded.updated_at",
            (user_id, board_id, node_id, item_id, now),
        )
    elif kind == "delete_item" and item_id is not None:
        connection.execute(
            "DELETE FROM board_nodes WHERE user_id = ? AND board_id = ? AND item_id = ?",
            (user_id, board_id, item_id),
        )


@SQL.implements(GetJob)
def get_job(connection: sqlite3.Connection, op: GetJob) -> JobView | None:
    job = connection.execute(
        "SELECT kind, created_at FROM jobs WHERE id = ? AND user_id = ?", (op.job_id, op.user_id)
    ).fetchone()
    if job is None:
        return None
    operations = connection.execute(
        f"SELECT seq, status, last_error, result, {_NODE_ID}, updated_at, response "  # noqa: S608
        "FROM operations WHERE job_id = ? ORDER BY seq",
        (op.job_id,),
    ).fetchall()
    views = tuple(
        OperationView(
            seq,
            status,
            error if status != "done" else None,
            result,
            node,
            ItemResponse.from_json(response) if response is not None else None,
        )
        for seq, status, error, result, node, _, response in operations
    )
    updated = max((row[5] for row in operations), default=job[1])
    return JobView(op.job_id, job[0], views, job[1], updated)


@SQL.implements(QueueLength)
def queue_length(connection: sqlite3.Connection, op: QueueLength) -> int:
    (count,) = connection.execute(
        "SELECT count(*) FROM operations WHERE status IN ('pending', 'working')"
    ).fetchone()
    return int(count)


@SQL.implements(DeadLetterCount)
def dead_letter_count(connection: sqlite3.Connection, op: DeadLetterCount) -> int:
    (count,) = connection.execute("SELECT count(*) FROM dead_letters").fetchone()
    return int(count)


@SQL.implements(ResolveTarget)
def resolve_target(connection: sqlite3.Connection, op: ResolveTarget) -> Target:
    row = connection.execute(
        "SELECT item_id FROM board_nodes WHERE user_id = ? AND board_id = ? AND node_id = ?",
        (op.user_id, op.board_id, op.name),
    ).fetchone()
    if row is not None:
        return Target(row[0])
    drawing = connection.execute(
        f"SELECT 1 FROM operations WHERE user_id = ? AND status IN ('pending', 'working') "  # noqa: S608
        f"AND board_id = ? AND kind IN {CREATES!r} AND {_NODE_ID} = ? LIMIT 1",
        (op.user_id, op.board_id, op.name),
    ).fetchone()
    return Target(op.name, waiting=drawing is not None)


@SQL.implements(AcceptWebhookEvents)
def accept_webhook_events(connection: sqlite3.Connection, op: AcceptWebhookEvents) -> list[str]:
    now = op.now
    connection.execute(
        "DELETE FROM webhook_events WHERE received_at < ?", (now - WEBHOOK_MEMORY_SECONDS,)
    )
    outcomes = []
    for event, job_id in zip(op.events, op.job_ids, strict=True):
        row = connection.execute(
            "SELECT sync_user FROM boards WHERE id = ?", (event.board_id,)
        ).fetchone()
        if event.board_id is None or row is None:
            outcomes.append("ignored")
            continue
        (recent,) = connection.execute(
            "SELECT count(*) FROM webhook_events WHERE board_id = ? AND received_at > ?",
            (event.board_id, now - 60.0),
        ).fetchone()
        if recent >= op.per_board_per_minute:
            outcomes.append("limited")
            continue
        fresh = connection.execute(
            "INSERT OR IGNORE INTO webhook_events (key, received_at, board_id) VALUES (?, ?, ?)",
            (event.key, now, event.board_id),
        ).rowcount
        if not fresh:
            outcomes.append("duplicate")
            continue
        pending = connection.execute(
            "SELECT 1 FROM operations WHERE board_id = ? AND kind = 'sync_board' "
            "AND status = 'pending' LIMIT 1",
            (event.board_id,),
        ).fetchone()
        if pending is not None:
            outcomes.append("coalesced")
            continue
        sync = NewOperation("sync_board", event.board_id, {})
        insert_job(connection, NewJob(job_id, row[0], "webhook", (sync,), op.origin), now)
        outcomes.append("enqueued")
    return outcomes
