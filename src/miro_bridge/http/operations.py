"""The operations of `/api/batch` and `/api/boards/{id}/ops`, read into queue operations.

Each is checked field by field (a 422 names the field at fault: `body.operations.3.itemId`)
and its data translated to Miro's REST body by `miro_bridge.miro` before the job is stored,
so a job never holds something Miro would refuse for its form.

A shape's `data` is a ShapeData, or the client's NodeDefinition (no `shape`; a `label` or a
`type`): a node is drawn from its template, and the nodes one request creates without a
position are placed together on a grid (`miro.templates.node_shapes`). A node's id and
metadata stay with its operation (`node_id`, shown as `nodeId` by `/api/jobs/{id}`); when its
create is done, the node id names its Miro item on that board for that user, so that a later
`/ops` update or delete may name the node instead of the item (`target`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from miro_bridge.errors import ValidationFailed
from miro_bridge.http.bodies import convert_body
from miro_bridge.miro.cards import CardData, card_body
from miro_bridge.miro.endpoints import check_id
from miro_bridge.miro.shapes import ShapeData, shape_body
from miro_bridge.miro.templates import NodeDefinition, Templates, node_shapes
from miro_bridge.records.jobs import NewOperation

MAX_OPERATIONS = 500
MAX_TAGS = 8  # Miro's limit per card

Loc = Sequence[str | int]
Drawing = ShapeData | NodeDefinition


def bounded(items: object, loc: Loc) -> list[Any]:
    """`items` if it is a non-empty array of at most `MAX_OPERATIONS`; 422 otherwise."""
    if not isinstance(items, list):
        raise ValidationFailed.at(loc, "must be an array")
    if not items:
        raise ValidationFailed.at(loc, "must not be empty")
    if len(items) > MAX_OPERATIONS:
        raise ValidationFailed.at(loc, f"at most {MAX_OPERATIONS} operations in one request")
    return items


def identifier(op: Mapping[str, Any], key: str, loc: Loc) -> str:
    """The id at `op[key]`: a non-empty string that can be a segment of a Miro path."""
    value = op.get(key)
    if not isinstance(value, str) or not value:
        raise ValidationFailed.at([*loc, key], "required: a non-empty string")
    return check_id(value, [*loc, key])


def card(data: object, loc: Loc, *, partial: bool = False) -> CardData:
    """A CardData (`partial`: for an update, the title may be left out)."""
    if partial and isinstance(data, dict) and "title" not in data:
        data = {**data, "title": ""}
    read: CardData = convert_body(data, CardData, loc)
    if len(read.tags) > MAX_TAGS:
        raise ValidationFailed.at([*loc, "tags"], f"a card takes at most {MAX_TAGS} tags")
    return read


def card_create(data: CardData, board_id: str) -> NewOperation:
    """A card create: its body, and the tag titles attached after it."""
    body = {"type": "card", **card_body(data)}
    return NewOperation("create_card", board_id, {"item": body, "tags": data.tags})


def drawing(data: object, loc: Loc) -> Drawing:
    """A shape operation's `data`: a NodeDefinition when it has no `shape` but a label or type."""
    if isinstance(data, dict) and "shape" not in data and ("label" in data or "type" in data):
        node: NodeDefinition = convert_body(data, NodeDefinition, loc)
        return node
    shape: ShapeData = convert_body(data, ShapeData, loc)
    return shape


def translated(shape: ShapeData, loc: Loc) -> dict[str, Any]:
    """Miro's body for `shape`; a style Miro would refuse is a 422 naming the field."""
    try:
        return shape_body(shape)
    except ValidationFailed as error:
        raise error.within(loc) from None


class _Drawings:
    """The drawings of one request, by operation index, with its nodes placed together."""

    def __init__(self, templates: Templates) -> None:
        self._templates = templates
        self._drawn: dict[int, tuple[Drawing, Loc]] = {}
        self._placed: dict[int, ShapeData] = {}

    def add(self, index: int, data: object, loc: Loc) -> None:
        self._drawn[index] = (drawing(data, loc), loc)

    def place(self, creates: Sequence[int]) -> None:
        """Draw the nodes these operations create, on one grid."""
        nodes = [i for i in creates if isinstance(self._drawn[i][0], NodeDefinition)]
        shapes = node_shapes([self._node(i) for i in nodes], self._templates)
        self._placed.update(zip(nodes, shapes, strict=True))

    def _node(self, index: int) -> NodeDefinition:
        node = self._drawn[index][0]
        assert isinstance(node, NodeDefinition)
        return node

    def create(self, index: int, node_id: str | None = None) -> dict[str, Any]:
        """The payload of a create: the item, and the node it draws, if any."""
        drawn, loc = self._drawn[index]
        shape = self._placed.get(index) or drawn
        assert isinstance(shape, ShapeData)
        payload: dict[str, Any] = {"item": {"type": "shape", **translated(shape, loc)}}
        if isinstance(drawn, NodeDefinition):
            payload.update(node_id=drawn.id, metadata=drawn.metadata)
        if node_id is not None:
            payload["node_id"] = node_id
        return payload

    def update(self, index: int) -> dict[str, Any]:
        """The payload of an update: the body (a node keeps its place unless it gives one)."""
        drawn, loc = self._drawn[index]
        if isinstance(drawn, ShapeData):
            return {"body": translated(drawn, loc)}
        (shape,) = node_shapes([drawn], self._templates)
        body = translated(shape, loc)
        if drawn.x is None or drawn.y is None:
            del body["position"]
        return {"body": body, "node_id": drawn.id, "metadata": drawn.metadata}


def board_operations(items: list[Any], board_id: str, templates: Templates) -> list[NewOperation]:
    """The operations of `/api/boards/{id}/ops`: create, update (by id) and delete (by id).

    An update's or delete's `id` is a Miro item id or the id of a node an earlier create drew
    on this board for this user (resolved when the operation runs).
    """
    drawings = _Drawings(templates)
    kinds: list[str] = []
    for index, op in enumerate(items):
        loc: list[str | int] = ["body", index]
        kind = op.get("op") if isinstance(op, dict) else None
        if kind not in ("create", "update", "delete"):
            raise ValidationFailed.at([*loc, "op"], "op is create, update or delete")
        if kind != "delete":
            drawings.add(index, op.get("data"), [*loc, "data"])
        kinds.append(kind)
    drawings.place([i for i, kind in enumerate(kinds) if kind == "create"])
    operations = []
    for index, (op, kind) in enumerate(zip(items, kinds, strict=True)):
        if kind == "create":
            operations.append(NewOperation("create_shape", board_id, drawings.create(index)))
            continue
        target = {"target": identifier(op, "id", ["body", index])}
        if kind == "update":
            operations.append(
                NewOperation("update_shape", board_id, target | drawings.update(index))
            )
        else:
            operations.append(NewOperation("delete_item", board_id, target))
    return operations


def batch_operations(body: object, templates: Templates) -> list[NewOperation]:
    """The operations of `/api/batch` (their types: `miro_bridge.http.jobs`)."""
    if not isinstance(body, dict):
        raise ValidationFailed.at(["body"], "a batch is an object with `operations`")
    default = body.get("boardId")
    items = bounded(body.get("operations"), ["body", "operations"])
    drawings = _Drawings(templates)
    boards: list[str] = []
    for index, op in enumerate(items):
        loc: list[str | int] = ["body", "operations", index]
        if not isinstance(op, dict):
            raise ValidationFailed.at(loc, "an operation is an object")
        board = op.get("boardId") or default
        if not isinstance(board, str) or not board:
            message = "no board id: give one here or for the whole batch"
            raise ValidationFailed.at([*loc, "boardId"], message)
        boards.append(check_id(board, [*loc, "boardId"]))
        if op.get("type") in ("create_shape", "create_node", "update_shape"):
            drawings.add(index, op.get("data"), [*loc, "data"])
    drawings.place(
        [i for i, op in enumerate(items) if op.get("type") in ("create_shape", "create_node")]
    )
    return [
        _batch_operation(op, index, board, drawings)
        for index, (op, board) in enumerate(zip(items, boards, strict=True))
    ]


def _batch_operation(
    op: dict[str, Any], index: int, board: str, drawings: _Drawings
) -> NewOperation:
    loc: list[str | int] = ["body", "operations", index]
    kind = op.get("type")
    if kind == "create_shape":
        return NewOperation("create_shape", board, drawings.create(index))
    if kind == "create_node":
        node_id = op.get("node_id")
        if node_id is not None and (not isinstance(node_id, str) or not node_id):
            raise ValidationFailed.at([*loc, "node_id"], "a non-empty string")
        return NewOperation("create_shape", board, drawings.create(index, node_id))
    if kind == "update_shape":
        change = {"item_id": identifier(op, "itemId", loc)} | drawings.update(index)
        return NewOperation("update_shape", board, change)
    if kind in ("delete_shape", "delete_item"):
        return NewOperation("delete_item", board, {"item_id": identifier(op, "itemId", loc)})
    if kind == "create_card":
        return card_create(card(op.get("data"), [*loc, "data"]), board)
    if kind == "update_card":
        item_key, data_key = ("card_id", "payload") if "card_id" in op else ("itemId", "data")
        update = card(op.get(data_key), [*loc, data_key], partial=True)
        body = card_body(update, partial=True)
        return NewOperation(
            "update_card", board, {"item_id": identifier(op, item_key, loc), "body": body}
        )
    raise ValidationFailed.at([*loc, "type"], f"unknown operation type {kind!r}")
