"""The console repository: what the operator's console reads of jobs and users, its dead-letter
actions, and the audit log that records them (migration 11).

A retry puts a dead letter's operation back to `pending` with its attempts at zero, due now,
and drops the dead letter; the open attempt of a create is kept, so that a create whose
outcome was unknown is reconciled before it is sent again (the usual exactly-once rules). A
discard drops the dead letter and leaves the operation `failed`. Each records who did it, in
the same transaction.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from miro_bridge.records.console import (
    AuditEntry,
    DeadLetter,
    JobDetail,
    JobFilter,
    JobSummary,
    QueueCounts,
    UserSummary,
)
from miro_bridge.store._operation import Operation


@attrs.frozen
class ListJobs(Operation[list[JobSummary]]):
    """The newest jobs that `filter` lets through."""

    filter: JobFilter


@attrs.frozen
class GetJobDetail(Operation[JobDetail | None]):
    """The job with every operation, whoever it belongs to."""

    job_id: str


@attrs.frozen
class ListDeadLetters(Operation[list[DeadLetter]]):
    """The newest dead letters, up to `limit`."""

    limit: int = 100


@attrs.frozen
class CountQueue(Operation[QueueCounts]):
    """Operations by status, dead letters, and jobs enqueued in each minute of the hour to `now`."""

    now: float


@attrs.frozen
class ListUsers(Operation[list[UserSummary]]):
    """Every user, with whether their tokens work and until when (never the tokens)."""


@attrs.frozen
class RetryDeadLetter(Operation[bool]):
    """Put the dead letter's operation back to pending, due `now`, and record who did it;
    False when there is no such dead letter (retried or discarded already)."""

    writes: ClassVar[bool] = True
    job_id: str
    seq: int
    operator: str
    address: str | None
    now: float


@attrs.frozen
class DiscardDeadLetter(Operation[bool]):
    """Drop the dead letter (its operation stays failed) and record who did it; False when
    there is no such dead letter."""

    writes: ClassVar[bool] = True
    job_id: str
    seq: int
    operator: str
    address: str | None
    now: float


@attrs.frozen
class ListAudit(Operation[list[AuditEntry]]):
    """The newest audit entries, up to `limit`."""

    limit: int = 50
