"""What the operator's console shows: jobs, operations, dead letters, users, its audit log."""

from __future__ import annotations

import attrs

#: Operation statuses, in the order the console lists them.
STATUSES = ("pending", "working", "done", "failed")


@attrs.frozen
class JobFilter:
    """Which jobs to list: each field narrows the list; `None` leaves it open.

    `status` is an operation status: a job is listed when one of its operations has it.
    `since`/`until` bound the job's creation time (epoch seconds).
    """

    user_id: str | None = None
    board_id: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100


@attrs.frozen
class JobSummary:
    """One line of the jobs list: the job, its owner, and how many operations are in each state."""

    id: str
    user_id: str
    kind: str
    created_at: float
    request_id: str | None
    boards: tuple[str, ...]
    counts: tuple[tuple[str, int], ...]
    """(status, operations) for each status that has any, in `STATUSES` order."""


@attrs.frozen
class OperationDetail:
    """One operation as the job page shows it: every attempt's error, its Miro item."""

    seq: int
    board_id: str
    kind: str
    status: str
    attempts: int
    last_error: str | None
    item_id: str | None
    history: tuple[str, ...]
    updated_at: float
    dead: bool
    """Filed as a dead letter (and not retried or discarded since)."""


@attrs.frozen
class JobDetail:
    """A job with every operation, and the request that enqueued it."""

    id: str
    user_id: str
    kind: str
    created_at: float
    request_id: str | None
    operations: tuple[OperationDetail, ...]


@attrs.frozen
class DeadLetter:
    """An operation given up on after its last attempt, with the error of every attempt."""

    job_id: str
    seq: int
    user_id: str
    kind: str
    attempts: int
    last_error: str | None
    history: tuple[str, ...]
    dead_at: float


@attrs.frozen
class AuditEntry:
    """Something an operator did in the console: who, when, what, to which operation."""

    at: float
    operator: str
    action: str
    job_id: str
    seq: int
    address: str | None


@attrs.frozen
class QueueCounts:
    """The queue at a glance: operations by status, dead letters, jobs enqueued per minute.

    `per_minute` holds the last hour, oldest minute first (60 numbers).
    """

    by_status: tuple[tuple[str, int], ...]
    dead_letters: int
    per_minute: tuple[int, ...]


@attrs.frozen
class UserSummary:
    """A user as the console lists them: never a token, only whether and until when it works.

    `refreshed_at` is when the token row last changed (a login or a refresh).
    """

    id: str
    name: str
    connected: bool | None
    """None: the user never connected a Miro account."""
    expires_at: float | None
    refreshed_at: float | None
    created_at: float
