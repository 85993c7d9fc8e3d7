"""Durable jobs: plain SQL over the `jobs`, `operations` and `dead_letters` tables.

A job is what one request enqueued; its operations are carried out one by one (creates for
one board in bulk groups). An operation is claimed with a lease in one `UPDATE ... RETURNING`.
A lease lives as long as the run of the JobQueue actor that took it (`lease_until` records
when the claim would be stale); `release_orphans` ends the leases of a dead run at the next
start. An operation ends `done` (with the Miro item id), `failed` (a permanent error, or
`max_attempts` reached: then it is also copied to `dead_letters` with its history), or goes
back to `pending` with a later `available_at` (a retry with backoff).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

CREATES = ("create_shape", "create_card")
BULK_SIZE = 20
#: The client's node an operation draws; NULL (not an error) for a payload that is not JSON.
_NODE_ID = "CASE WHEN json_valid(payload) THEN json_extract(payload, '$.node_id') END"


def _json(value: Mapping[str, Any]) -> str:
    """JSON text SQLite and Miro both read: no NaN or Infinity ever stored."""
    return json.dumps(value, allow_nan=False)


@attrs.frozen
class NewOperation:
    """An operation to enqueue: its kind, board, and what it needs (JSON-able)."""

    kind: str
    board_id: str
    payload: Mapping[str, Any]


@attrs.frozen
class Origin:
    """Where a job came from: the request that enqueued it, and the span (W3C traceparent)."""

    request_id: str | None = None
    traceparent: str | None = None


@attrs.frozen
class ClaimedOperation:
    """An operation a worker holds: where it is, what it does, what it did so far."""

    rowid: int
    job_id: str
    seq: int
    user_id: str
    board_id: str
    kind: str
    job_kind: str
    payload: Mapping[str, Any]
    attempts: int
    result: str | None
    origin: Origin


@attrs.frozen
class OperationView:
    """An operation as `GET /api/jobs/{id}` shows it."""

    seq: int
    status: str
    message: str | None
    item_id: str | None
    node_id: str | None = None


@attrs.frozen
class JobView:
    """A job as `GET /api/jobs/{id}` shows it; the job's status is derived from its operations."""

    id: str
    kind: str
    operations: tuple[OperationView, ...]
    created_at: float
    updated_at: float

    @property
    def status(self) -> str:
        """pending, working, done, failed, or partial (finished with some failures)."""
        statuses = {op.status for op in self.operations}
        if not statuses or statuses == {"done"}:
            return "done"
        if statuses == {"failed"}:
            return "failed"
        if statuses <= {"done", "failed"}:
            return "partial"
        if statuses == {"pending"}:
            return "pending"
        return "working"


def insert_job(
    connection: sqlite3.Connection,
    job_id: str,
    user_id: str,
    kind: str,
    operations: Sequence[NewOperation],
    origin: Origin,
    now: float,
) -> None:
    """Store a job and its operations, all pending and available now."""
    connection.execute(
        "INSERT INTO jobs (id, user_id, kind, request_id, traceparent, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (job_id, user_id, kind, origin.request_id, origin.traceparent, now),
    )
    connection.executemany(
        "INSERT INTO operations (job_id, seq, user_id, board_id, kind, payload, status, "
        "available_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        [
            (job_id, seq, user_id, op.board_id, op.kind, _json(op.payload), now, now)
            for seq, op in enumerate(operations)
        ],
    )


def release_orphans(connection: sqlite3.Connection) -> int:
    """Make every `working` operation pending again: its worker died with the last process."""
    return connection.execute(
        "UPDATE operations SET status = 'pending', lease_until = NULL WHERE status = 'working'"
    ).rowcount


# The SQL below is assembled from these constants only; every value is a bound parameter.
# Only pending work is claimable: work a dead run held is made pending at the next start
# (`release_orphans`), and a live run never loses what it holds.
_READY = "status = 'pending' AND available_at <= :now"
# One index probe per user with pending work (a loose index scan), not one row per operation:
# the dispatcher asks this often, while the table may hold tens of thousands of operations.
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
"""
_FIRST_READY = (
    f"SELECT rowid, board_id, kind FROM operations WHERE user_id = :user AND {_READY} "  # noqa: S608
    "ORDER BY rowid LIMIT 1"
)
_CLAIM = (
    "UPDATE operations SET status = 'working', lease_until = :lease, "
    "attempts = attempts + 1, updated_at = :now WHERE rowid IN ({chosen}) "
    "RETURNING rowid, job_id, seq, user_id, board_id, kind, payload, attempts, result"
)
_CLAIM_CREATES = _CLAIM.format(
    chosen=f"SELECT rowid FROM operations WHERE user_id = :user AND board_id = :board "  # noqa: S608
    f"AND kind IN {CREATES!r} AND {_READY} ORDER BY rowid LIMIT {BULK_SIZE}"
)
_CLAIM_ONE = _CLAIM.format(chosen=":first")


def ready_users(connection: sqlite3.Connection, now: float) -> list[str]:
    """Users with an operation that can be claimed now."""
    rows = connection.execute(_READY_USERS, {"now": now})
    return [user for (user,) in rows]


def next_available(connection: sqlite3.Connection) -> float | None:
    """When the earliest pending operation becomes claimable (None: nothing is pending)."""
    (at,) = connection.execute(
        "SELECT min(available_at) FROM operations WHERE status = 'pending'"
    ).fetchone()
    return float(at) if at is not None else None


def claim_batch(
    connection: sqlite3.Connection,
    user_id: str,
    now: float,
    lease_until: float,
) -> list[ClaimedOperation]:
    """Lease the user's next unit of work: up to 20 creates for one board, or one operation."""
    params = {"user": user_id, "now": now}
    first = connection.execute(_FIRST_READY, params).fetchone()
    if first is None:
        return []
    rowid, board_id, kind = first
    rows = connection.execute(
        _CLAIM_CREATES if kind in CREATES else _CLAIM_ONE,
        {**params, "board": board_id, "first": rowid, "lease": lease_until},
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
            fail(connection, row[0], "the stored operation cannot be read", now, dead_letter=True)
            continue
        claimed.append(
            ClaimedOperation(
                rowid=row[0],
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
            )
        )
    return sorted(claimed, key=lambda op: op.rowid)


def renew_leases(connection: sqlite3.Connection, rowids: Sequence[int], lease_until: float) -> None:
    """Extend the lease of operations still being worked on."""
    connection.executemany(
        "UPDATE operations SET lease_until = ? WHERE rowid = ? AND status = 'working'",
        [(lease_until, rowid) for rowid in rowids],
    )


def record_result(connection: sqlite3.Connection, rowid: int, item_id: str, now: float) -> None:
    """Remember the Miro item an operation created, before its follow-up steps (tags)."""
    connection.execute(
        "UPDATE operations SET result = ?, updated_at = ? WHERE rowid = ?", (item_id, now, rowid)
    )


def finish(connection: sqlite3.Connection, rowid: int, item_id: str | None, now: float) -> None:
    """The operation is done; a create that drew a client's node records the node's item."""
    row = connection.execute(
        "UPDATE operations SET status = 'done', result = coalesce(?, result), last_error = NULL, "  # noqa: S608 -- constants only
        "lease_until = NULL, updated_at = ? WHERE rowid = ? "
        f"RETURNING user_id, board_id, kind, {_NODE_ID}, result",
        (item_id, now, rowid),
    ).fetchone()
    if row is None:
        return
    user_id, board_id, kind, node_id, result = row
    if kind in CREATES and node_id is not None and result is not None:
        connection.execute(
            "INSERT INTO board_nodes (user_id, board_id, node_id, item_id, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, board_id, node_id) "
            "DO UPDATE SET item_id = excluded.item_id, updated_at = excluded.updated_at",
            (user_id, board_id, node_id, result, now),
        )
    elif kind == "delete_item" and result is not None:
        connection.execute(
            "DELETE FROM board_nodes WHERE user_id = ? AND board_id = ? AND item_id = ?",
            (user_id, board_id, result),
        )


@attrs.frozen
class Target:
    """What an update or delete that names an item or a node acts on.

    `item_id` is the Miro item (the node's, when a create drew one under that id; else the
    name itself); `waiting` is true when a create of that node has not finished yet.
    """

    item_id: str
    waiting: bool = False


def resolve_target(
    connection: sqlite3.Connection, user_id: str, board_id: str, name: str
) -> Target:
    """The Miro item `name` stands for on the user's board: a node's item, or `name` itself."""
    row = connection.execute(
        "SELECT item_id FROM board_nodes WHERE user_id = ? AND board_id = ? AND node_id = ?",
        (user_id, board_id, name),
    ).fetchone()
    if row is not None:
        return Target(row[0])
    drawing = connection.execute(
        f"SELECT 1 FROM operations WHERE user_id = ? AND status IN ('pending', 'working') "  # noqa: S608
        f"AND board_id = ? AND kind IN {CREATES!r} AND {_NODE_ID} = ? "
        "LIMIT 1",
        (user_id, board_id, name),
    ).fetchone()
    return Target(name, waiting=drawing is not None)


def defer(connection: sqlite3.Connection, rowid: int, available_at: float, now: float) -> None:
    """Put a claimed operation back, untried: it waits for another operation to finish first."""
    connection.execute(
        "UPDATE operations SET status = 'pending', lease_until = NULL, attempts = attempts - 1, "
        "available_at = ?, updated_at = ? WHERE rowid = ?",
        (available_at, now, rowid),
    )


def retry_later(
    connection: sqlite3.Connection, rowid: int, error: str, available_at: float, now: float
) -> None:
    """The attempt failed for a reason that may pass: try again from `available_at`."""
    connection.execute(
        "UPDATE operations SET status = 'pending', lease_until = NULL, last_error = ?, "
        "history = json_insert(history, '$[#]', ?), available_at = ?, updated_at = ? "
        "WHERE rowid = ?",
        (error, error, available_at, now, rowid),
    )


def fail(
    connection: sqlite3.Connection, rowid: int, error: str, now: float, *, dead_letter: bool
) -> None:
    """The operation failed for good; `dead_letter` also files it with its history."""
    connection.execute(
        "UPDATE operations SET status = 'failed', lease_until = NULL, last_error = ?, "
        "history = json_insert(history, '$[#]', ?), updated_at = ? WHERE rowid = ?",
        (error, error, now, rowid),
    )
    if dead_letter:
        connection.execute(
            "INSERT INTO dead_letters (job_id, seq, user_id, kind, payload, attempts, "
            "last_error, history, dead_at) SELECT job_id, seq, user_id, kind, payload, attempts, "
            "last_error, history, ? FROM operations WHERE rowid = ?",
            (now, rowid),
        )


def job_view(connection: sqlite3.Connection, job_id: str, user_id: str) -> JobView | None:
    """The job, if it exists and belongs to `user_id`."""
    job = connection.execute(
        "SELECT kind, created_at FROM jobs WHERE id = ? AND user_id = ?", (job_id, user_id)
    ).fetchone()
    if job is None:
        return None
    operations = connection.execute(
        f"SELECT seq, status, last_error, result, {_NODE_ID}, updated_at "  # noqa: S608
        "FROM operations WHERE job_id = ? ORDER BY seq",
        (job_id,),
    ).fetchall()
    views = tuple(
        OperationView(seq, status, error if status != "done" else None, result, node)
        for seq, status, error, result, node, _ in operations
    )
    updated = max((row[5] for row in operations), default=job[1])
    return JobView(job_id, job[0], views, job[1], updated)


def queue_length(connection: sqlite3.Connection) -> int:
    """Operations not finished yet."""
    (count,) = connection.execute(
        "SELECT count(*) FROM operations WHERE status IN ('pending', 'working')"
    ).fetchone()
    return int(count)


def dead_letter_count(connection: sqlite3.Connection) -> int:
    """Operations filed as dead letters."""
    (count,) = connection.execute("SELECT count(*) FROM dead_letters").fetchone()
    return int(count)


#: How long a webhook event's key is remembered, to recognise redeliveries.
WEBHOOK_MEMORY_SECONDS = 24 * 3600.0


@attrs.frozen
class WebhookEvent:
    """An event Miro posted: its dedup key and the board it names (if any)."""

    key: str
    board_id: str | None


def accept_webhook_events(
    connection: sqlite3.Connection,
    events: Sequence[WebhookEvent],
    job_ids: Sequence[str],
    origin: Origin,
    now: float,
    per_board_per_minute: int,
) -> list[str]:
    """Record events and enqueue a board sync for each new one; each event's outcome.

    Outcomes: `enqueued` (a sync job, with the id at the same index of `job_ids`),
    `coalesced` (new, but a sync of its board that has not started yet will see it),
    `duplicate` (seen within a day), `limited` (its board had `per_board_per_minute` events
    in the last minute), `ignored` (no board, or one the cache has never read: there is no
    user whose token could read it; not recorded). One transaction: an event is never
    recorded without its job.
    """
    connection.execute(
        "DELETE FROM webhook_events WHERE received_at < ?", (now - WEBHOOK_MEMORY_SECONDS,)
    )
    outcomes = []
    for event, job_id in zip(events, job_ids, strict=True):
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
        if recent >= per_board_per_minute:
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
        operation = NewOperation("sync_board", event.board_id, {})
        insert_job(connection, job_id, row[0], "webhook", [operation], origin, now)
        outcomes.append("enqueued")
    return outcomes
