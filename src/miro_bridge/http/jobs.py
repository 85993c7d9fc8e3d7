"""Routes that enqueue durable jobs (batch, cards, ops, board refresh), job status, limits.

Each accepted request is one job, on disk before the 202. The operation shapes:

- `/api/batch`: `{"boardId"?, "operations": [...]}`, each with `type` in `create_shape`,
  `update_shape`, `delete_shape`, `create_card`, `update_card`, `delete_item` (`boardId`?,
  `itemId` for update/delete, `data`), or the older `{"type": "create_node", "node_id",
  "data"}` (a shape) and `{"type": "update_card", "card_id", "payload"}`;
- `/api/cards`: an array of CardData, the board from `?boardId=` or each card's `boardId`;
- `/api/boards/{id}/ops`: `[{"op": "create", "data"} | {"op": "update", "id", "data"} |
  {"op": "delete", "id"}]` of ShapeData.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import attrs
import msgspec
from quart import Quart, Response, request
from quart_schema import document_request, document_response

from miro_bridge.actors.job_queue import Enqueue, GetJob, QueueLength
from miro_bridge.actors.miro_client import BudgetView, GetBudgets
from miro_bridge.actors.system import ActorSystem
from miro_bridge.config import Settings
from miro_bridge.errors import ValidationFailed
from miro_bridge.http import debug
from miro_bridge.http.auth import acting_user
from miro_bridge.http.boards import ShapeData, shape_item
from miro_bridge.http.bodies import convert_body, json_response
from miro_bridge.http.idempotent import idempotent
from miro_bridge.store.jobs import NewOperation
from miro_bridge.timestamps import iso8601

MAX_OPERATIONS = 500
MAX_TAGS = 8  # Miro's limit per card


@attrs.frozen
class CardStyle:
    """A card's look; Miro's REST API knows `cardTheme` only (`fillBackground` is dropped)."""

    cardTheme: str | None = None
    fillBackground: bool | None = None


@attrs.frozen
class CardData:
    """A card as the Node client describes it."""

    title: str
    id: str | None = None
    description: str | None = None
    tags: list[str] = attrs.field(factory=list)
    style: CardStyle | None = None
    fields: list[Any] | None = None
    taskStatus: str | None = None
    boardId: str | None = None


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
    data: ShapeData | None = None


BoardOperations = Annotated[
    list[BoardOperation], msgspec.Meta(min_length=1, max_length=MAX_OPERATIONS)
]


@attrs.frozen
class JobAccepted:
    """A job is on disk."""

    jobId: str


@attrs.frozen
class OperationStatus:
    """One operation of a job."""

    id: str
    status: str
    message: str | None = None
    itemId: str | None = None


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


def card_body(card: CardData, *, partial: bool = False) -> dict[str, Any]:
    """Miro's card body for a CardData (REST cards have title, description and theme)."""
    data = {
        key: value
        for key, value in (("title", card.title), ("description", card.description))
        if value is not None and not (partial and key == "title" and value == "")
    }
    body: dict[str, Any] = {"data": data}
    if card.style is not None and card.style.cardTheme is not None:
        body["style"] = {"cardTheme": card.style.cardTheme}
    return body


def _text(op: Mapping[str, Any], key: str, loc: list[str | int]) -> str:
    value = op.get(key)
    if not isinstance(value, str) or not value:
        raise ValidationFailed.at([*loc, key], "required: a non-empty string")
    return value


def _card(data: object, loc: list[str | int], *, partial: bool = False) -> CardData:
    if partial and isinstance(data, dict) and "title" not in data:
        data = {**data, "title": ""}
    card: CardData = convert_body(data, CardData)
    if len(card.tags) > MAX_TAGS:
        raise ValidationFailed.at([*loc, "tags"], f"a card takes at most {MAX_TAGS} tags")
    return card


def _create_card(card: CardData, board_id: str) -> NewOperation:
    return NewOperation(
        "create_card", board_id, {"item": {"type": "card", **card_body(card)}, "tags": card.tags}
    )


def batch_operation(op: object, index: int, default_board: str | None) -> NewOperation:
    """One `/api/batch` operation as a queue operation; `ValidationFailed` naming the field."""
    loc: list[str | int] = ["body", "operations", index]
    if not isinstance(op, dict):
        raise ValidationFailed.at(loc, "an operation is an object")
    kind = op.get("type")
    board = op.get("boardId") or default_board
    if not isinstance(board, str) or not board:
        raise ValidationFailed.at(
            [*loc, "boardId"], "no board id: give one here or for the whole batch"
        )
    if kind in ("create_shape", "create_node"):
        shape: ShapeData = convert_body(op.get("data"), ShapeData)
        return NewOperation("create_shape", board, {"item": {"type": "shape", **shape_item(shape)}})
    if kind == "update_shape":
        shape = convert_body(op.get("data"), ShapeData)
        item_id = _text(op, "itemId", loc)
        return NewOperation("update_shape", board, {"item_id": item_id, "body": shape_item(shape)})
    if kind in ("delete_shape", "delete_item"):
        return NewOperation("delete_item", board, {"item_id": _text(op, "itemId", loc)})
    if kind == "create_card":
        return _create_card(_card(op.get("data"), [*loc, "data"]), board)
    if kind == "update_card":
        item_key, data_key = ("card_id", "payload") if "card_id" in op else ("itemId", "data")
        card = _card(op.get(data_key), [*loc, data_key], partial=True)
        return NewOperation(
            "update_card",
            board,
            {"item_id": _text(op, item_key, loc), "body": card_body(card, partial=True)},
        )
    raise ValidationFailed.at([*loc, "type"], f"unknown operation type {kind!r}")


def _bounded(items: object, loc: list[str | int]) -> list[Any]:
    if not isinstance(items, list):
        raise ValidationFailed.at(loc, "must be an array")
    if not items:
        raise ValidationFailed.at(loc, "must not be empty")
    if len(items) > MAX_OPERATIONS:
        raise ValidationFailed.at(loc, f"at most {MAX_OPERATIONS} operations in one request")
    return items


def _fill(budget: BudgetView, now: float) -> int:
    """The percentage of the budget left now (a window that has ended counts as full)."""
    if budget.limit is None or budget.limit <= 0 or now >= budget.reset_at:
        return 100
    return max(0, min(100, math.floor(100 * budget.remaining / budget.limit)))


def register_job_routes(app: Quart, settings: Settings, actors: ActorSystem) -> None:
    """Add the job routes to `app`."""

    async def enqueue(user_id: str, kind: str, operations: list[NewOperation]) -> str:
        job_id: str = await actors.jobs.call(Enqueue(user_id, kind, tuple(operations)))
        return job_id

    @app.post("/api/batch")
    @document_request(Batch)
    @document_response(JobAccepted, 202)
    async def batch() -> Response:
        """Enqueue a batch of operations; 202 once it is on disk."""
        user_id = acting_user(settings)

        async def run() -> Response:
            body = await request.get_json()
            if not isinstance(body, dict):
                raise ValidationFailed.at(["body"], "a batch is an object with `operations`")
            default = body.get("boardId")
            items = _bounded(body.get("operations"), ["body", "operations"])
            operations = [batch_operation(op, i, default) for i, op in enumerate(items)]
            job_id = await enqueue(user_id, "batch", operations)
            return json_response(
                {"enqueued": len(operations), "job_id": job_id, "jobId": job_id}, 202
            )

        return await idempotent(actors, user_id, run)

    @app.post("/api/cards")
    @document_request(list[CardData])
    @document_response(JobAccepted, 202)
    async def cards() -> Response:
        """Enqueue card creates (with tags by title); 202 once they are on disk."""
        user_id = acting_user(settings)

        async def run() -> Response:
            items = _bounded(await request.get_json(), ["body"])
            default = request.args.get("boardId")
            operations = []
            for index, item in enumerate(items):
                card = _card(item, ["body", index])
                board = card.boardId or default
                if not board:
                    raise ValidationFailed.at(
                        ["body", index, "boardId"], "no board: ?boardId= or per card"
                    )
                operations.append(_create_card(card, board))
            job_id = await enqueue(user_id, "cards", operations)
            return json_response({"accepted": len(operations), "jobId": job_id}, 202)

        return await idempotent(actors, user_id, run)

    @app.post("/api/boards/<board_id>/ops")
    @document_request(BoardOperations)
    @document_response(JobAccepted, 202)
    async def board_ops(board_id: str) -> Response:
        """Enqueue shape creates, updates and deletes on one board."""
        user_id = acting_user(settings)

        async def run() -> Response:
            items = _bounded(await request.get_json(), ["body"])
            operations = []
            for index, op in enumerate(items):
                loc: list[str | int] = ["body", index]
                kind = op.get("op") if isinstance(op, dict) else None
                if kind == "create":
                    shape: ShapeData = convert_body(op.get("data"), ShapeData)
                    item = {"type": "shape", **shape_item(shape)}
                    operations.append(NewOperation("create_shape", board_id, {"item": item}))
                elif kind == "update":
                    shape = convert_body(op.get("data"), ShapeData)
                    change = {"item_id": _text(op, "id", loc), "body": shape_item(shape)}
                    operations.append(NewOperation("update_shape", board_id, change))
                elif kind == "delete":
                    target = {"item_id": _text(op, "id", loc)}
                    operations.append(NewOperation("delete_item", board_id, target))
                else:
                    raise ValidationFailed.at([*loc, "op"], "op is create, update or delete")
            return json_response({"jobId": await enqueue(user_id, "ops", operations)}, 202)

        return await idempotent(actors, user_id, run)

    @app.post("/api/boards/<board_id>/shapes/refresh")
    @document_response(JobAccepted, 202)
    async def refresh_board(board_id: str) -> Response:
        """Enqueue a full sync of the board from Miro."""
        user_id = acting_user(settings)
        job_id = await enqueue(user_id, "sync", [NewOperation("sync_board", board_id, {})])
        return json_response({"jobId": job_id}, 202)

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
