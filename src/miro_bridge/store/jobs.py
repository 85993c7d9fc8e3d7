"""The jobs repository: durable jobs, their operations, leases, outcomes and dead letters.

A job is what one request enqueued; its operations are carried out one unit at a time: up to
`BULK_SIZE` creates for one board (one bulk call), or one other operation. A worker claims a
unit with a lease (`lease_until`, renewed while it works) under a unit id; only that unit's
holder settles it, so that if the lease expired and another worker (another instance) took
the operation again, the late outcome is dropped. An operation ends `done` (with the Miro item
id), `failed` (a permanent error, or its last attempt: then it is also copied to
`dead_letters` with its history), or goes back to `pending` with a later `available_at`.
Webhook events are recorded here too: each new one is a sync job of its board.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from miro_bridge.records.idempotency import Completion, KeyClaim
from miro_bridge.records.jobs import (
    ClaimedOperation,
    Decision,
    FinishedJob,
    JobView,
    NewJob,
    Origin,
    Target,
    WebhookEvent,
)
from miro_bridge.store._operation import Operation


@attrs.frozen
class Enqueue(Operation[None]):
    """Store a job and its operations, pending and available now; and, in the same
    transaction, the response that completes the request's `Idempotency-Key`, if any, or
    the key the job answers when it ends (`binds`: a replay waits for the job then).

    Raises `Conflict` when the `binds` claim is no longer its claimant's (nothing stored).
    """

    writes: ClassVar[bool] = True
    job: NewJob
    now: float
    completes: Completion | None = None
    binds: KeyClaim | None = None


@attrs.frozen
class ReleaseOrphans(Operation[int]):
    """Make every `working` operation pending again: only for a database one process uses
    (SQLite), whose previous run died with them. Shared databases rely on lease expiry."""

    writes: ClassVar[bool] = True


@attrs.frozen
class ReadyUsers(Operation[list[str]]):
    """Users with an operation that can be claimed now (pending and due, or lease expired)."""

    now: float


@attrs.frozen
class NextDue(Operation[float | None]):
    """When the next operation becomes claimable (a retry's time, a lease's end)."""


@attrs.frozen
class Claim(Operation[list[ClaimedOperation]]):
    """Lease the user's next unit of work until `lease_until` under the id `unit`: up to 20
    creates for one board, or one operation. None when the user already has `per_user`
    units running (on any instance).

    Claiming creates opens their attempt (`now`), unless one is open already: each claimed
    operation carries the attempt that was open before (`ClaimedOperation.attempt`).

    `held`: the units the claimant runs itself; their operations are never taken again, even
    with an expired lease (its clock may have jumped past a lease its heartbeat renews).
    """

    writes: ClassVar[bool] = True
    user_id: str
    unit: str
    now: float
    lease_until: float
    per_user: int
    held: tuple[str, ...] = ()


@attrs.frozen
class RenewLeases(Operation[None]):
    """Extend the leases of units still being worked on."""

    writes: ClassVar[bool] = True
    durable: ClassVar[bool] = False
    units: tuple[str, ...]
    lease_until: float


@attrs.frozen
class RecordResults(Operation[list[int]]):
    """Remember the Miro items a unit's creates made (or were found to have made), before their
    follow-up steps (tags), so that a retry never creates them twice; their attempts close.

    An item already recorded for another operation of the board is refused (two in-doubt
    creates never adopt one item). The rowids recorded.
    """

    writes: ClassVar[bool] = True
    results: tuple[tuple[ClaimedOperation, str], ...]
    now: float


@attrs.frozen
class RecordedItems(Operation[frozenset[str]]):
    """Which of `item_ids` are recorded as the result of an operation on the board."""

    board_id: str
    item_ids: tuple[str, ...]


@attrs.frozen
class Settle(Operation[list[FinishedJob]]):
    """Record each decision (only for operations still held under their unit); the jobs
    this finished."""

    writes: ClassVar[bool] = True
    decisions: tuple[Decision, ...]
    now: float


@attrs.frozen
class GetJob(Operation[JobView | None]):
    """The job, if it exists and belongs to `user_id`."""

    job_id: str
    user_id: str


@attrs.frozen
class QueueLength(Operation[int]):
    """Operations not finished yet."""


@attrs.frozen
class DeadLetterCount(Operation[int]):
    """Operations filed as dead letters."""


@attrs.frozen
class ResolveTarget(Operation[Target]):
    """The Miro item `name` stands for on the user's board: a node's item, or `name` itself."""

    user_id: str
    board_id: str
    name: str


@attrs.frozen
class AcceptWebhookEvents(Operation[list[str]]):
    """Record events and enqueue a board sync for each new one; each event's outcome.

    Outcomes: `enqueued` (a sync job, with the id at the same index of `job_ids`),
    `coalesced` (new, but a sync of its board that has not started yet will see it),
    `duplicate` (seen within a day), `limited` (its board had `per_board_per_minute` events
    in the last minute), `ignored` (no board, or one the cache has never read: there is no
    user whose token could read it; not recorded). One transaction: an event is never
    recorded without its job.
    """

    writes: ClassVar[bool] = True
    events: tuple[WebhookEvent, ...]
    job_ids: tuple[str, ...]
    origin: Origin
    now: float
    per_board_per_minute: int
