"""Durable jobs in PostgreSQL: the operations of `store.jobs`, shared by every instance.

Operations are addressed by their `id` (what SQLite's rowid is). A claim takes the user's
advisory transaction lock (`pg_advisory_xact_lock`), so that the count of the user's live
units and the claim that follows are atomic over every instance (the per-user cap holds
everywhere), and locks the rows it takes `FOR UPDATE SKIP LOCKED`, so that a row another
transaction holds (a settle, a renewal) is passed over rather than waited for. Claimable is
pending and due, or working under a lease that has expired: any instance reclaims the work
of one that died. `ReleaseOrphans` releases nothing: another instance may hold that work.
Webhook events of a board are accepted under the board's advisory lock (its rate and its
pending sync are then decided once), and deduplicated by the event's unique key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

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
from miro_bridge.store.postgres._registry import (
    CLAIMS_LOCK,
    PG,
    RESULTS_LOCK,
    WEBHOOKS_LOCK,
    lock_key,
    to_json,
)
from miro_bridge.store.postgres.idempotency import bind_key, complete_key

Connection = psycopg.Connection[Any]

#: The client's node an operation draws (NULL when its payload names none).
_NODE_ID = "payload ->> 'node_id'"
#: Claimable: pending and due, or held under a lease that has expired (its holder died) by
#: someone else than the claimant (`held`: its own units).
_READY = (
    "(status = 'pending' AND available_at <= %(now)s "
    "OR status = 'working' AND lease_until < %(now)s AND NOT unit = ANY(%(held)s))"
)
_CREATES = list(CREATES)


@PG.implements(Enqueue)
def enqueue(connection: Connection, op: Enqueue) -> None:
    enqueue_group(connection, [op])


def enqueue_group(connection: Connection, group: Sequence[Enqueue]) -> None:
    """Store the jobs of several `Enqueue`s in one transaction: one INSERT of their jobs (a
    pipelined `executemany`) and one COPY of all their operations; then each one's key."""
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO jobs (id, user_id, kind, request_id, traceparent, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (
                    op.job.id,
                    op.job.user_id,
                    op.job.kind,
                    op.job.origin.request_id,
                    op.job.origin.traceparent,
                    op.now,
                )
                for op in group
            ],
        )
        with cursor.copy(
            "COPY operations (job_id, seq, user_id, board_id, kind, payload, available_at, "
            "updated_at, status) FROM STDIN"
        ) as copy:
            for op in group:
                job = op.job
                for seq, item in enumerate(job.operations):
                    copy.write_row(
                        (
                            job.id,
                            seq,
                            job.user_id,
                            item.board_id,
                            item.kind,
                            to_json(item.payload),
                            op.now,
                            op.now,
                            "pending",
                        )
                    )
    for op in group:
        if op.completes is not None:
            complete_key(connection, CompleteKey(op.completes, op.now))
        if op.binds is not None:
            bind_key(connection, op.binds, op.job.id)


@PG.implements(ReleaseOrphans)
def release_orphans(connection: Connection, op: ReleaseOrphans) -> int:
    return 0  # shared: work is freed only by its lease's expiry


# One index probe per user with pending work (a loose index scan), not one row per operation.
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
    WHERE o.status = 'pending' AND o.user_id = pending.user_id AND o.available_at <= %(now)s
)
UNION
SELECT user_id FROM operations WHERE status = 'working' AND lease_until < %(now)s
"""


@PG.implements(ReadyUsers)
def ready_users(connection: Connection, op: ReadyUsers) -> list[str]:
    return [user for (user,) in connection.execute(_READY_USERS, {"now": op.now})]


@PG.implements(NextDue)
def next_due(connection: Connection, op: NextDue) -> float | None:
    row = connection.execute(
        "SELECT (SELECT min(available_at) FROM operations WHERE status = 'pending'), "
        "(SELECT min(lease_until) FROM operations WHERE status = 'working')"
    ).fetchone()
    times = [float(at) for at in (row or ()) if at is not None]
    return min(times) if times else None


# A create's attempt opens with its claim (unless one is open already), in the same
# transaction; the claim answers the attempt that was open before it.
_TAKE = (
    "UPDATE operations AS o SET status = 'working', unit = %(unit)s, lease_until = %(lease)s, "
    "attempts = o.attempts + 1, updated_at = %(now)s, attempt_started = CASE WHEN "
    "o.kind = ANY(%(creates)s) THEN coalesce(o.attempt_started, %(now)s) END "
    "FROM (SELECT id, attempt_started FROM operations WHERE id IN ({chosen})) AS before "
    "WHERE o.id = before.id "
    "RETURNING o.id, o.job_id, o.seq, o.user_id, o.board_id, o.kind, o.payload, o.attempts, "
    "o.result, before.attempt_started"
)
_FIRST = (
    f"SELECT id, board_id, kind FROM operations WHERE user_id = %(user)s AND {_READY} "  # noqa: S608
    "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
_TAKE_CREATES = _TAKE.format(
    chosen="SELECT id FROM operations WHERE user_id = %(user)s AND board_id = %(board)s "  # noqa: S608
    f"AND kind = ANY(%(creates)s) AND {_READY} ORDER BY id LIMIT {BULK_SIZE} "
    "FOR UPDATE SKIP LOCKED"
)
_TAKE_ONE = _TAKE.format(chosen="%(first)s")


@PG.implements(Claim)
def claim(connection: Connection, op: Claim) -> list[ClaimedOperation]:
    params: dict[str, Any] = {"user": op.user_id, "now": op.now, "held": list(op.held)}
    connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", (CLAIMS_LOCK, lock_key(op.user_id)))
    (running,) = connection.execute(
        "SELECT count(DISTINCT unit) FROM operations "
        "WHERE user_id = %(user)s AND status = 'working' AND lease_until >= %(now)s",
        params,
    ).fetchone() or (0,)
    if running >= op.per_user:
        return []
    first = connection.execute(_FIRST, params).fetchone()
    if first is None:
        return []
    first_id, board_id, kind = first
    rows = connection.execute(
        _TAKE_CREATES if kind in CREATES else _TAKE_ONE,
        {
            **params,
            "board": board_id,
            "first": first_id,
            "lease": op.lease_until,
            "unit": op.unit,
            "creates": _CREATES,
        },
    ).fetchall()
    jobs = {
        job_id: (job_kind, Origin(request_id, traceparent))
        for job_id, job_kind, request_id, traceparent in connection.execute(
            "SELECT id, kind, request_id, traceparent FROM jobs WHERE id = ANY(%s)",
            (sorted({row[1] for row in rows}),),
        )
    }
    claimed = []
    for row in rows:
        payload = row[6]
        if not isinstance(payload, dict):  # a damaged row fails alone; it never stops the queue
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
                attempt=row[9],
            )
        )
    return sorted(claimed, key=lambda claimed_op: claimed_op.rowid)


@PG.implements(RenewLeases)
def renew_leases(connection: Connection, op: RenewLeases) -> None:
    connection.execute(
        "UPDATE operations SET lease_until = %s WHERE unit = ANY(%s) AND status = 'working'",
        (op.lease_until, list(op.units)),
    )


@PG.implements(RecordResults)
def record_results(connection: Connection, op: RecordResults) -> list[int]:
    recorded = []
    for held, item_id in op.results:
        # Under the board's lock, so that two adoptions of one item cannot both pass the check.
        connection.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", (RESULTS_LOCK, lock_key(held.board_id))
        )
        row = connection.execute(
            "UPDATE operations SET result = %(item)s, attempt_started = NULL, "
            "updated_at = %(now)s WHERE id = %(id)s AND unit = %(unit)s AND status = 'working' "
            "AND NOT EXISTS (SELECT 1 FROM operations AS other WHERE other.board_id = %(board)s "
            "AND other.result = %(item)s AND other.id != %(id)s) RETURNING id",
            {
                "item": item_id,
                "now": op.now,
                "id": held.rowid,
                "unit": held.unit,
                "board": held.board_id,
            },
        ).fetchone()
        if row is not None:
            recorded.append(held.rowid)
    return recorded


@PG.implements(RecordedItems)
def recorded_items(connection: Connection, op: RecordedItems) -> frozenset[str]:
    return frozenset(
        item
        for (item,) in connection.execute(
            "SELECT result FROM operations WHERE board_id = %s AND result = ANY(%s)",
            (op.board_id, list(op.item_ids)),
        )
    )


@PG.implements(Settle)
def settle(connection: Connection, op: Settle) -> list[FinishedJob]:
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


_HELD = "id = %(id)s AND unit = %(unit)s AND status = 'working'"
#: What Miro answered is kept; the attempt closes, its outcome known, unless it is in doubt.
_OUTCOME = (
    "response = coalesce(%(response)s, response), "
    "attempt_started = CASE WHEN %(in_doubt)s THEN attempt_started END"
)


def _settle_one(connection: Connection, decision: Decision, now: float) -> bool:
    """Record one decision, if the operation is still held under its unit; whether it was."""
    held = decision.operation
    params = {
        "id": held.rowid,
        "unit": held.unit,
        "now": now,
        "error": decision.error,
        "response": decision.response.to_json() if decision.response is not None else None,
        "in_doubt": decision.in_doubt,
    }
    if decision.action == "done":
        row = connection.execute(
            "UPDATE operations SET status = 'done', result = coalesce(%(item)s, result), "  # noqa: S608
            f"last_error = NULL, lease_until = NULL, unit = NULL, updated_at = %(now)s, {_OUTCOME} "
            f"WHERE {_HELD} RETURNING user_id, board_id, kind, {_NODE_ID}, result",
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
                "attempts = attempts - 1, available_at = %(at)s, updated_at = %(now)s "
                f"WHERE {_HELD}",
                {**params, "at": decision.available_at},
            ).rowcount
        )
    if decision.action == "retry":
        return bool(
            connection.execute(
                "UPDATE operations SET status = 'pending', lease_until = NULL, unit = NULL, "  # noqa: S608
                "last_error = %(error)s, history = history || jsonb_build_array(%(error)s::text), "
                f"available_at = %(at)s, updated_at = %(now)s, {_OUTCOME} WHERE {_HELD}",
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


def _fail(connection: Connection, op_id: int, error: str, now: float, *, dead: bool) -> None:
    """The operation failed for good; `dead` also files it with its history."""
    connection.execute(
        "UPDATE operations SET status = 'failed', lease_until = NULL, unit = NULL, "
        "last_error = %(error)s, history = history || jsonb_build_array(%(error)s::text), "
        "updated_at = %(now)s WHERE id = %(id)s",
        {"error": error, "now": now, "id": op_id},
    )
    if dead:
        connection.execute(
            "INSERT INTO dead_letters (job_id, seq, user_id, kind, payload, attempts, "
            "last_error, history, dead_at) SELECT job_id, seq, user_id, kind, payload, "
            "attempts, last_error, history, %s FROM operations WHERE id = %s",
            (now, op_id),
        )


def _remember_node(
    connection: Connection,
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
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id, board_id, node_id) "
            "DO UPDATE SET item_id = excluded.item_id, updated_at = excluded.updated_at",
            (user_id, board_id, node_id, item_id, now),
        )
    elif kind == "delete_item" and item_id is not None:
        connection.execute(
            "DELETE FROM board_nodes WHERE user_id = %s AND board_id = %s AND item_id = %s",
            (user_id, board_id, item_id),
        )


@PG.implements(GetJob)
def get_job(connection: Connection, op: GetJob) -> JobView | None:
    job = connection.execute(
        "SELECT kind, created_at FROM jobs WHERE id = %s AND user_id = %s",
        (op.job_id, op.user_id),
    ).fetchone()
    if job is None:
        return None
    operations = connection.execute(
        f"SELECT seq, status, last_error, result, {_NODE_ID}, updated_at, response "  # noqa: S608
        "FROM operations WHERE job_id = %s ORDER BY seq",
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


@PG.implements(QueueLength)
def queue_length(connection: Connection, op: QueueLength) -> int:
    row = connection.execute(
        "SELECT count(*) FROM operations WHERE status IN ('pending', 'working')"
    ).fetchone()
    return int(row[0]) if row else 0


@PG.implements(DeadLetterCount)
def dead_letter_count(connection: Connection, op: DeadLetterCount) -> int:
    row = connection.execute("SELECT count(*) FROM dead_letters").fetchone()
    return int(row[0]) if row else 0


@PG.implements(ResolveTarget)
def resolve_target(connection: Connection, op: ResolveTarget) -> Target:
    row = connection.execute(
        "SELECT item_id FROM board_nodes WHERE user_id = %s AND board_id = %s AND node_id = %s",
        (op.user_id, op.board_id, op.name),
    ).fetchone()
    if row is not None:
        return Target(row[0])
    drawing = connection.execute(
        "SELECT 1 FROM operations WHERE user_id = %s AND status IN ('pending', 'working') "  # noqa: S608
        f"AND board_id = %s AND kind = ANY(%s) AND {_NODE_ID} = %s LIMIT 1",
        (op.user_id, op.board_id, _CREATES, op.name),
    ).fetchone()
    return Target(op.name, waiting=drawing is not None)


@PG.implements(AcceptWebhookEvents)
def accept_webhook_events(connection: Connection, op: AcceptWebhookEvents) -> list[str]:
    now = op.now
    connection.execute(
        "DELETE FROM webhook_events WHERE received_at < %s", (now - WEBHOOK_MEMORY_SECONDS,)
    )
    # Each board's rate and pending sync are decided under its lock, taken in one order.
    for board_id in sorted({e.board_id for e in op.events if e.board_id is not None}):
        connection.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", (WEBHOOKS_LOCK, lock_key(board_id))
        )
    outcomes = []
    for event, job_id in zip(op.events, op.job_ids, strict=True):
        row = connection.execute(
            "SELECT sync_user FROM boards WHERE id = %s", (event.board_id,)
        ).fetchone()
        if event.board_id is None or row is None:
            outcomes.append("ignored")
            continue
        (recent,) = connection.execute(
            "SELECT count(*) FROM webhook_events WHERE board_id = %s AND received_at > %s",
            (event.board_id, now - 60.0),
        ).fetchone() or (0,)
        if recent >= op.per_board_per_minute:
            outcomes.append("limited")
            continue
        fresh = connection.execute(
            "INSERT INTO webhook_events (key, received_at, board_id) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO NOTHING",
            (event.key, now, event.board_id),
        ).rowcount
        if not fresh:
            outcomes.append("duplicate")
            continue
        pending = connection.execute(
            "SELECT 1 FROM operations WHERE board_id = %s AND kind = 'sync_board' "
            "AND status = 'pending' LIMIT 1",
            (event.board_id,),
        ).fetchone()
        if pending is not None:
            outcomes.append("coalesced")
            continue
        sync = NewOperation("sync_board", event.board_id, {})
        job = NewJob(job_id, row[0], "webhook", (sync,), op.origin)
        enqueue_group(connection, [Enqueue(job, now)])
        outcomes.append("enqueued")
    return outcomes
