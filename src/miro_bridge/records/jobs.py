"""Durable jobs: what is enqueued, what a worker holds, what becomes of it, what users see."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any, Literal

import attrs

CREATES = ("create_shape", "create_card")
"""Operation kinds that create items: run together, up to `BULK_SIZE` in one bulk call."""
BULK_SIZE = 20
#: How long a webhook event's key is remembered, to recognise redeliveries.
WEBHOOK_MEMORY_SECONDS = 24 * 3600.0


def new_job_id() -> str:
    """A fresh, unguessable job id."""
    return secrets.token_hex(12)


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
class NewJob:
    """A job to store: its id, owner, kind, operations and origin."""

    id: str
    user_id: str
    kind: str
    operations: tuple[NewOperation, ...]
    origin: Origin


@attrs.frozen
class ClaimedOperation:
    """An operation a worker holds: where it is, what it does, what it did so far.

    `unit` names the claim (the operations taken together); only its holder records the
    outcome, so an operation whose lease expired and was taken again is never settled twice.
    `attempt`: for a create, when an earlier attempt began whose outcome is unknown (its answer
    was lost, or its holder died): it may have been created already (`None`: it was not).
    """

    rowid: int
    unit: str
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
    attempt: float | None = None


@attrs.frozen
class ItemResponse:
    """What Miro answered for one item of a create: the status and its JSON body."""

    status: int
    body: Mapping[str, Any]

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps({"status": self.status, "body": self.body}, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ItemResponse:
        """The stored form read back."""
        data = json.loads(text)
        return cls(int(data["status"]), data["body"])


Action = Literal["done", "retry", "fail", "dead", "defer"]


@attrs.frozen
class Decision:
    """What becomes of a claimed operation after an attempt.

    `done` (with the item id), `retry` from `available_at` (with the error), `fail` for good,
    `dead` (failed after its last attempt: filed in the dead letters), or `defer`: put back
    untried until `available_at` (it waits for another operation to finish first).

    `in_doubt`: a create's attempt failed without saying whether Miro carried it out (its
    attempt stays open; the next one reconciles first). `response`: what Miro answered for
    it, kept for a job that answers a request itself (`ItemResponse`).
    """

    operation: ClaimedOperation
    action: Action
    item_id: str | None = None
    error: str | None = None
    available_at: float | None = None
    in_doubt: bool = False
    response: ItemResponse | None = None


@attrs.frozen
class FinishedJob:
    """A job that the last decisions finished: its id, kind, outcome and age."""

    id: str
    kind: str
    status: str
    created_at: float


@attrs.frozen
class OperationView:
    """An operation as `GET /api/jobs/{id}` shows it."""

    seq: int
    status: str
    message: str | None
    item_id: str | None
    node_id: str | None = None
    response: ItemResponse | None = None


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


@attrs.frozen
class Target:
    """What an update or delete that names an item or a node acts on.

    `item_id` is the Miro item (the node's, when a create drew one under that id; else the
    name itself); `waiting` is true when a create of that node has not finished yet.
    """

    item_id: str
    waiting: bool = False


@attrs.frozen
class WebhookEvent:
    """An event Miro posted: its dedup key and the board it names (if any)."""

    key: str
    board_id: str | None
