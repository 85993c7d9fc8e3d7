"""Routes that enqueue durable jobs (batch, cards, ops, board refresh), job status, limits.

Each accepted request is one job, on disk before the 202. The operation shapes:

- `/api/batch`: `{"boardId"?, "operations": [...]}`, each with `type` in `create_shape`,
  `update_shape`, `delete_shape`, `create_card`, `update_card`, `delete_item` (`boardId`?,
  `itemId` for update/delete, `data`), or the older `{"type": "create_node", "node_id",
  "data"}` (a shape) and `{"type": "update_card", "card_id", "payload"}`;
- `/api/cards`: an array of CardData, the board from `?boardId=` or each card's `boardId`;
- `/api/boards/{id}/ops`: `[{"op": "create", "data"} | {"op": "update", "id", "data"} |
  {"op": "delete", "id"}]`, `data` a ShapeData or a NodeDefinition, `id` an item's or a node's.

How operations are read and translated: `miro_bridge.http.operations`. A plain
`POST /api/batch` (no `Idempotency-Key`, a body the route would take as it is) is taken at the
edge, without Quart (`batch_fast_post`): the same checks, the same job, the same answer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import attrs
import msgspec
from quart import Quart, Response, request
from quart_schema import document_request, document_response

from miro_bridge.actors.job_queue import Enqueue, GetJob, QueueLength
from miro_bridge.actors.miro_client import GetBudgets
from miro_bridge.actors.system import ActorSystem
from miro_bridge.config import Settings
from miro_bridge.errors import BridgeError, ValidationFailed
from miro_bridge.http import debug
from miro_bridge.http._edge import FastPost
from miro_bridge.http.auth import acting_user, user_claimed_in
from miro_bridge.http.bodies import json_response, parse_json
from miro_bridge.http.idempotent import Keyed, idempotent
from miro_bridge.http.openapi import one_of
from miro_bridge.http.operations import (
    MAX_OPERATIONS,
    batch_operations,
    board_operations,
    bounded,
    card,
    card_create,
)
from miro_bridge.http.typing import Scope
from miro_bridge.miro.cards import CardData
from miro_bridge.miro.endpoints import check_id
from miro_bridge.miro.shapes import ShapeData
from miro_bridge.miro.templates import NodeDefinition
from miro_bridge.records.credits import BudgetView
from miro_bridge.records.jobs import NewOperation, new_job_id
from miro_bridge.timestamps import iso8601

if TYPE_CHECKING:
    ShapeOrNode = dict[str, Any]
else:
    ShapeOrNode = one_of(ShapeData, NodeDefinition)
"""A ShapeData, or the client's NodeDefinition (it has no `shape`)."""


@attrs.frozen
class BatchOperation:
    """One `/api/batch` operation; which fields each `type` needs: the module docstring.

    Documentation only: the route checks operations itself, to name the field at fault.
    """

    type: Literal[
        "create_shape",
        "update_shape",
        "delete_shape",
        "create_card",
        "update_card",
        "delete_item",
        "create_node",
    ]
    boardId: str | None = None
    itemId: str | None = None
    data: dict[str, Any] | None = None
    node_id: str | None = None
    card_id: str | None = None
    payload: dict[str, Any] | None = None


@attrs.frozen
class Batch:
    """The body of `POST /api/batch` (documentation only, like `BatchOperation`)."""

    operations: Annotated[
        list[BatchOperation], msgspec.Meta(min_length=1, max_length=MAX_OPERATIONS)
    ]
    boardId: str | None = None


@attrs.frozen
class BoardOperation:
    """One `/api/boards/{id}/ops` operation (documentation only, like `BatchOperation`).

    `create` takes `data`, `update` takes `id` and `data`, `delete` takes `id`.
    """

    op: Literal["create", "update", "delete"]
    id: str | None = None
    data: ShapeOrNode | None = None


BoardOperations = Annotated[
    list[BoardOperation], msgspec.Meta(min_length=1, max_length=MAX_OPERATIONS)
]


@attrs.frozen
class JobAccepted:
    """A job is on disk."""

    jobId: str


@attrs.frozen
class OperationStatus:
    """One operation of a job; `nodeId`: the client's node it draws, if any."""

    id: str
    status: str
    message: str | None = None
    itemId: str | None = None
    nodeId: str | None = None


@attrs.frozen
class JobStatus:
    """A job and its operations."""

    id: str
    status: str
    operations: list[OperationStatus]
    createdAt: str
    updatedAt: str


@attrs.frozen
class Limits:
    """The queue length, and the caller's share of their Miro credit budget left now (%)."""

    queue_length: int
    bucket_fill: dict[str, int]


def _fill(budget: BudgetView, now: float) -> int:
    """The percentage of the budget left now (a window that has ended counts as full)."""
    if budget.limit is None or budget.limit <= 0 or now >= budget.reset_at:
        return 100
    return max(0, min(100, math.floor(100 * budget.remaining / budget.limit)))


async def _enqueue(
    actors: ActorSystem,
    keyed: Keyed | None,
    user_id: str,
    kind: str,
    operations: list[NewOperation],
    answer: Callable[[str], dict[str, Any]],
) -> bytes:
    """Enqueue a job; the body of its 202, `answer(job_id)`, stored with the job under the
    request's `Idempotency-Key` (one transaction: a retry never enqueues it twice)."""
    job_id = new_job_id()
    body = json.dumps(answer(job_id)).encode()
    completes = keyed.completion(202, body) if keyed is not None else None
    await actors.jobs.call(Enqueue(job_id, user_id, kind, tuple(operations), completes))
    return body


def _batch_accepted(operations: list[NewOperation]) -> Callable[[str], dict[str, Any]]:
    return lambda job_id: {"enqueued": len(operations), "job_id": job_id, "jobId": job_id}


def _declares_json(content_type: bytes | None) -> bool:
    """Whether a `Content-Type` is JSON as Quart's `request.is_json` reads it."""
    if content_type is None:
        return False
    mimetype = content_type.split(b";", 1)[0].strip().lower()
    return mimetype == b"application/json" or (
        mimetype.startswith(b"application/") and mimetype.endswith(b"+json")
    )


def batch_fast_post(settings: Settings, actors: ActorSystem) -> FastPost:
    """`POST /api/batch` at the edge, for a request the route would accept as it is.

    The route's own checks (`user_claimed_by`, `parse_json`, `batch_operations`) on the body
    the edge has read; whatever they refuse goes to the route, which answers the error. A
    request with an `Idempotency-Key` goes to the route too (its claim and replay are there).
    """

    async def answer(
        scope: Scope, headers: Mapping[bytes, bytes], body: bytes
    ) -> tuple[int, bytes, bytes] | None:
        if b"idempotency-key" in headers or not _declares_json(headers.get(b"content-type")):
            return None
        try:
            user_id = user_claimed_in(headers, settings)
            if user_id is None:
                return None
            operations = batch_operations(parse_json(body), settings.shape_templates)
        except BridgeError:
            return None
        accepted = await _enqueue(
            actors, None, user_id, "batch", operations, _batch_accepted(operations)
        )
        return 202, accepted, b"application/json"

    return FastPost("/api/batch", "/api/batch", answer)


def register_job_routes(app: Quart, settings: Settings, actors: ActorSystem) -> None:
    """Add the job routes to `app`."""

    async def accept(
        keyed: Keyed | None,
        user_id: str,
        kind: str,
        operations: list[NewOperation],
        answer: Callable[[str], dict[str, Any]],
    ) -> Response:
        """Enqueue a job and answer 202 with its body (`_enqueue`)."""
        body = await _enqueue(actors, keyed, user_id, kind, operations, answer)
        return Response(body, status=202, content_type="application/json")

    @app.post("/api/batch")
    @document_request(Batch)
    @document_response(JobAccepted, 202)
    async def batch() -> Response:
        """Enqueue a batch of operations; 202 once it is on disk."""
        user_id = acting_user(settings)

        async def run(keyed: Keyed | None) -> Response:
            body = await request.get_json()
            operations = batch_operations(body, settings.shape_templates)
            return await accept(keyed, user_id, "batch", operations, _batch_accepted(operations))

        return await idempotent(actors, user_id, run)

    @app.post("/api/cards")
    @document_request(list[CardData])
    @document_response(JobAccepted, 202)
    async def cards() -> Response:
        """Enqueue card creates (with tags by title); 202 once they are on disk."""
        user_id = acting_user(settings)

        async def run(keyed: Keyed | None) -> Response:
            items = bounded(await request.get_json(), ["body"])
            default = request.args.get("boardId")
            operations = []
            for index, item in enumerate(items):
                data = card(item, ["body", index])
                board = data.boardId or default
                if not board:
                    raise ValidationFailed.at(
                        ["body", index, "boardId"], "no board: ?boardId= or per card"
                    )
                check_id(board, ["body", index, "boardId"])
                operations.append(card_create(data, board))
            return await accept(
                keyed,
                user_id,
                "cards",
                operations,
                lambda job_id: {"accepted": len(operations), "jobId": job_id},
            )

        return await idempotent(actors, user_id, run)

    @app.post("/api/boards/<board_id>/ops")
    @document_request(BoardOperations)
    @document_response(JobAccepted, 202)
    async def board_ops(board_id: str) -> Response:
        """Enqueue shape creates, updates and deletes on one board."""
        user_id = acting_user(settings)

        async def run(keyed: Keyed | None) -> Response:
            items = bounded(await request.get_json(), ["body"])
            operations = board_operations(items, board_id, settings.shape_templates)
            return await accept(keyed, user_id, "ops", operations, lambda job_id: {"jobId": job_id})

        return await idempotent(actors, user_id, run)

    @app.post("/api/boards/<board_id>/shapes/refresh")
    @document_response(JobAccepted, 202)
    async def refresh_board(board_id: str) -> Response:
        """Enqueue a full sync of the board from Miro."""
        user_id = acting_user(settings)
        sync = [NewOperation("sync_board", board_id, {})]
        return await accept(None, user_id, "sync", sync, lambda job_id: {"jobId": job_id})

    @app.get("/api/jobs/<job_id>")
    @document_response(JobStatus)
    async def job_status(job_id: str) -> Response:
        """A job of the caller's, with each operation's status."""
        view = await actors.jobs.call(GetJob(acting_user(settings), job_id))
        operations = []
        for op in view.operations:
            entry: dict[str, Any] = {"id": str(op.seq), "status": op.status}
            if op.message:
                entry["message"] = op.message
            if op.item_id:
                entry["itemId"] = op.item_id
            if op.node_id:
                entry["nodeId"] = op.node_id
            operations.append(entry)
        return json_response(
            {
                "id": view.id,
                "status": view.status,
                "operations": operations,
                "createdAt": iso8601(view.created_at),
                "updatedAt": iso8601(view.updated_at),
            }
        )

    @app.get("/api/limits")
    @document_response(Limits)
    async def limits() -> Response:
        """Queue length, and how much of the caller's Miro budget is left (percent)."""
        user_id = acting_user(settings)
        forced = (
            debug.number(request.headers.get("X-Debug-Limits"), "X-Debug-Limits", 0, 100)
            if settings.debug_toggles
            else None
        )
        length = await actors.jobs.call(QueueLength())
        budgets: dict[str, BudgetView] = await actors.miro.call(GetBudgets())
        now = actors.clock()
        fill = _fill(budgets[user_id], now) if user_id in budgets else 100
        if forced is not None:
            fill = forced
        return json_response({"queue_length": length, "bucket_fill": {user_id: fill}})
