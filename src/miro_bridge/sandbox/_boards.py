"""Boards, their items and tags, and the rules Miro applies to them.

Ids are what Miro hands out: boards get 12-character ids like `uXjVOfjmfkE=`, items and tags
get int64 numbers written as strings, increasing with creation, which is also the order
`GET /items` pages through. Every change stamps the item's (and the board's) `modifiedAt`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from miro_bridge.sandbox._errors import (
    FieldError,
    bulk_invalid,
    forbidden,
    invalid,
    invalid_parameters,
    not_found,
)
from miro_bridge.sandbox._validation import (
    BOARD_CREATE,
    CREATE,
    FLOWCHART_SHAPES,
    GENERIC_UPDATE,
    TAG_CREATE,
    TAG_UPDATE,
    UPDATE,
    join,
)

ITEM_TYPES = ("shape", "card", "sticky_note", "text", "frame")
"""The item types the sandbox can create; Miro's other types are refused."""

BULK_TYPES_MIRO_ONLY = ("app_card", "image", "document", "embed")
TAGGABLE_TYPES = ("card", "sticky_note")
MAX_TAGS_PER_ITEM = 8
MAX_BULK_ITEMS = 20

_FIRST_ID = 3458764600000000000
_BOARD_ID_PREFIX = b"\xb9\x78\xd5"  # base64 "uXjV", how Miro board ids start

_STICKY_RATIO = {"square": 228.0 / 199.0, "rectangle": 228.0 / 350.0}


@attrs.define
class Tag:
    """A board tag."""

    id: str
    title: str
    fill_color: str


@attrs.define
class Item:
    """A board item: shape, card, sticky note, text or frame."""

    id: str
    type: str
    data: dict[str, Any]
    style: dict[str, Any]
    position: dict[str, float]
    geometry: dict[str, float]
    parent_id: str | None
    created_at: float
    created_by: str
    modified_at: float
    modified_by: str
    tag_ids: list[str] = attrs.Factory(list)


@attrs.define
class Board:
    """A board, who may use it, and what is on it."""

    id: str
    name: str
    description: str
    owner: str
    members: dict[str, str]
    created_at: float
    modified_at: float
    modified_by: str
    items: dict[str, Item] = attrs.Factory(dict)
    tags: dict[str, Tag] = attrs.Factory(dict)

    def role_of(self, user_id: str) -> str | None:
        """`owner`, `editor`, or None for a user with no access."""
        return self.members.get(user_id)


@attrs.frozen
class _Plan:
    """An item's state after a create or update that passed every check."""

    data: dict[str, Any]
    style: dict[str, Any]
    position: dict[str, float]
    geometry: dict[str, float]
    parent_id: str | None


def _default_style(item_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    if item_type == "shape":
        flowchart = data.get("shape") in FLOWCHART_SHAPES
        return {
            "fillColor": "#ffffff",
            "fillOpacity": "1.0",
            "fontFamily": "arial",
            "fontSize": "14",
            "borderColor": "#1a1a1a",
            "borderWidth": "2.0",
            "borderOpacity": "1.0",
            "borderStyle": "normal",
            "textAlign": "center" if flowchart else "left",
            "textAlignVertical": "middle" if flowchart else "top",
            "color": "#1a1a1a",
        }
    if item_type == "card":
        return {"cardTheme": "#2d9bf0"}
    if item_type == "sticky_note":
        return {"fillColor": "light_yellow", "textAlign": "center", "textAlignVertical": "top"}
    if item_type == "text":
        return {
            "color": "#1a1a1a",
            "fillColor": "#ffffff",
            "fillOpacity": "1.0",
            "fontFamily": "arial",
            "fontSize": "14",
            "textAlign": "center",
        }
    return {"fillColor": "#ffffffff"}


_DEFAULT_DATA: dict[str, dict[str, Any]] = {
    "shape": {"content": "", "shape": "rectangle"},
    "card": {"title": ""},
    "sticky_note": {"content": "", "shape": "square"},
    "text": {"content": ""},
    "frame": {"title": "", "format": "custom", "type": "freeform", "showContent": True},
}
_DEFAULT_GEOMETRY: dict[str, dict[str, float]] = {
    "shape": {"width": 100.0, "height": 100.0, "rotation": 0.0},
    "card": {"width": 320.0, "height": 94.0, "rotation": 0.0},
    "sticky_note": {"width": 199.0, "height": 228.0},
    "text": {"width": 320.0, "rotation": 0.0},
    "frame": {"width": 800.0, "height": 600.0},
}


def _section(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def _float_dict(values: Mapping[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in values.items()}


def _geometry(
    item_type: str,
    current: Mapping[str, float],
    given: Mapping[str, Any],
    data: Mapping[str, Any],
    style: Mapping[str, Any],
    field: str,
) -> tuple[dict[str, float], list[FieldError]]:
    """The geometry after applying `given`, with Miro's per-type constraints."""
    geometry = dict(current) | _float_dict(given)
    if item_type == "sticky_note":
        ratio = _STICKY_RATIO[data.get("shape", "square")]
        if "width" in given and "height" in given:
            return geometry, [FieldError(field, "Set either width or height, not both")]
        if "height" in given:
            geometry["width"] = round(geometry["height"] / ratio, 2)
        else:
            geometry["height"] = round(geometry["width"] * ratio, 2)
    elif item_type == "text":
        font_size = float(style.get("fontSize", "14"))
        if geometry["width"] < 1.7 * font_size:
            return geometry, [
                FieldError(join(field, "width"), "Must be at least 1.7 times the font size")
            ]
        lines = str(data.get("content", "")).count("\n") + 1
        geometry["height"] = round(font_size * 1.4 * lines, 2)
    return geometry, []


def _board_id(number: int) -> str:
    """A Miro-looking board id (`uXjV` + 7 characters + `=`), the same for the same number."""
    noise = hashlib.sha256(number.to_bytes(8, "big")).digest()[:5]
    return base64.urlsafe_b64encode(_BOARD_ID_PREFIX + noise).decode()


class BoardStore:
    """Every board of the sandbox; operations check access and raise Miro's errors."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._boards: dict[str, Board] = {}
        self._next_number = 0

    def _next_id(self) -> str:
        self._next_number += 1
        return str(_FIRST_ID + self._next_number)

    # Boards

    def create_board(
        self,
        owner: str,
        name: str = "Untitled",
        description: str = "",
        members: Iterable[str] = (),
    ) -> Board:
        """Create a board owned by `owner`, shared with `members` as editors."""
        self._next_number += 1
        now = self._clock()
        roles = dict.fromkeys(members, "editor") | {owner: "owner"}
        board_id = _board_id(self._next_number)
        while board_id in self._boards:
            self._next_number += 1
            board_id = _board_id(self._next_number)
        board = Board(
            id=board_id,
            name=name,
            description=description,
            owner=owner,
            members=roles,
            created_at=now,
            modified_at=now,
            modified_by=owner,
        )
        self._boards[board.id] = board
        return board

    def create_board_from(self, owner: str, body: object) -> Board:
        """Create a board from a `POST /v2/boards` body."""
        errors = BOARD_CREATE(body, "")
        if errors:
            raise invalid_parameters(errors)
        assert isinstance(body, Mapping)
        return self.create_board(owner, body.get("name", "Untitled"), body.get("description", ""))

    def board(self, user_id: str, board_id: str) -> Board:
        """The board, if `user_id` may use it: 404 when there is none, 403 when not theirs."""
        board = self._boards.get(board_id)
        if board is None:
            raise not_found(f"Board {board_id} not found")
        if board.role_of(user_id) is None:
            raise forbidden()
        return board

    def boards_of(self, user_id: str) -> list[Board]:
        """The boards `user_id` owns or is a member of, oldest first."""
        return [board for board in self._boards.values() if board.role_of(user_id) is not None]

    # Items

    def _touch(self, board: Board, item: Item | None, user_id: str) -> None:
        now = self._clock()
        board.modified_at, board.modified_by = now, user_id
        if item is not None:
            item.modified_at, item.modified_by = now, user_id

    def item(self, board: Board, item_id: str, item_type: str | None = None) -> Item:
        """An item of the board, of `item_type` when given (404 otherwise)."""
        item = board.items.get(item_id)
        if item is None or (item_type is not None and item.type != item_type):
            kind = (item_type or "item").replace("_", " ")
            raise not_found(f"The {kind} {item_id} was not found on this board")
        return item

    def _plan(
        self,
        board: Board,
        item_type: str,
        body: object,
        prefix: str,
        current: Item | None,
    ) -> tuple[_Plan | None, list[FieldError]]:
        schema = UPDATE[item_type] if current else CREATE[item_type]
        errors = schema(body, prefix)
        if errors:
            return None, errors
        assert isinstance(body, Mapping)
        if current is None:
            data = dict(_DEFAULT_DATA[item_type]) | _section(body, "data")
            style = _default_style(item_type, data) | _section(body, "style")
            position = {"x": 0.0, "y": 0.0}
            geometry = dict(_DEFAULT_GEOMETRY[item_type])
            parent_id = None
        else:
            data = current.data | _section(body, "data")
            style = current.style | _section(body, "style")
            position, geometry = dict(current.position), dict(current.geometry)
            parent_id = current.parent_id
        position |= _float_dict(_section(body, "position"))
        geometry, errors = _geometry(
            item_type,
            geometry,
            _section(body, "geometry"),
            data,
            style,
            join(prefix, "geometry"),
        )
        if "parent" in body and item_type != "frame":
            parent_id = body["parent"]["id"]
            if not self._is_frame(board, parent_id) or (current and parent_id == current.id):
                errors.append(FieldError(join(prefix, "parent.id"), "No such frame on this board"))
        return _Plan(data, style, position, geometry, parent_id), errors

    @staticmethod
    def _is_frame(board: Board, item_id: str) -> bool:
        item = board.items.get(item_id)
        return item is not None and item.type == "frame"

    def _add(self, board: Board, user_id: str, item_type: str, plan: _Plan) -> Item:
        now = self._clock()
        item = Item(
            id=self._next_id(),
            type=item_type,
            data=plan.data,
            style=plan.style,
            position=plan.position,
            geometry=plan.geometry,
            parent_id=plan.parent_id,
            created_at=now,
            created_by=user_id,
            modified_at=now,
            modified_by=user_id,
        )
        board.items[item.id] = item
        self._touch(board, None, user_id)
        return item

    def create_item(self, user_id: str, board: Board, item_type: str, body: object) -> Item:
        """Create one item from a `POST /v2/boards/{board_id}/<type>s` body."""
        plan, errors = self._plan(board, item_type, body, "", None)
        if errors or plan is None:
            raise invalid_parameters(errors)
        return self._add(board, user_id, item_type, plan)

    def create_items(self, user_id: str, board: Board, body: object) -> list[Item]:
        """Create 1 to 20 items at once, or none when any of them is invalid."""
        if not isinstance(body, list) or not 1 <= len(body) <= MAX_BULK_ITEMS:
            raise bulk_invalid(
                [FieldError("body", f"Must be an array of 1 to {MAX_BULK_ITEMS} items")]
            )
        plans: list[tuple[str, _Plan]] = []
        errors: list[FieldError] = []
        for index, entry in enumerate(body):
            prefix = str(index)
            item_type = entry.get("type") if isinstance(entry, Mapping) else None
            if item_type not in ITEM_TYPES:
                message = (
                    "This item type is not supported by the sandbox"
                    if item_type in BULK_TYPES_MIRO_ONLY
                    else f"Must be one of: {', '.join(ITEM_TYPES)}"
                )
                errors.append(FieldError(join(prefix, "type"), message))
                continue
            assert isinstance(entry, Mapping)
            fields = {key: value for key, value in entry.items() if key != "type"}
            plan, item_errors = self._plan(board, item_type, fields, prefix, None)
            errors.extend(item_errors)
            if plan is not None:
                plans.append((item_type, plan))
        if errors:
            raise bulk_invalid(errors)
        return [self._add(board, user_id, item_type, plan) for item_type, plan in plans]

    def update_item(
        self, user_id: str, board: Board, item_id: str, item_type: str, body: object
    ) -> Item:
        """Apply a `PATCH /v2/boards/{board_id}/<type>s/{item_id}` body."""
        item = self.item(board, item_id, item_type)
        plan, errors = self._plan(board, item_type, body, "", item)
        if errors or plan is None:
            raise invalid_parameters(errors)
        item.data, item.style = plan.data, plan.style
        item.position, item.geometry, item.parent_id = plan.position, plan.geometry, plan.parent_id
        self._touch(board, item, user_id)
        return item

    def move_item(self, user_id: str, board: Board, item_id: str, body: object) -> Item:
        """Apply a `GenericItemUpdate` (position and parent only) to any item."""
        item = self.item(board, item_id)
        errors = GENERIC_UPDATE(body, "")
        if errors:
            raise invalid_parameters(errors)
        assert isinstance(body, Mapping)
        if "parent" in body:
            parent_id = body["parent"]["id"]
            if item.type == "frame" or not self._is_frame(board, parent_id):
                raise invalid("parent.id", "No such frame on this board")
            item.parent_id = parent_id
        item.position = item.position | _float_dict(_section(body, "position"))
        self._touch(board, item, user_id)
        return item

    def delete_item(
        self, user_id: str, board: Board, item_id: str, item_type: str | None = None
    ) -> None:
        """Delete an item; a deleted frame's children stay, moved out of it."""
        item = self.item(board, item_id, item_type)
        del board.items[item_id]
        if item.type == "frame":
            left = item.position["x"] - item.geometry["width"] / 2
            top = item.position["y"] - item.geometry["height"] / 2
            for child in board.items.values():
                if child.parent_id == item_id:
                    child.parent_id = None
                    child.position = {
                        "x": left + child.position["x"],
                        "y": top + child.position["y"],
                    }
                    self._touch(board, child, user_id)
        self._touch(board, None, user_id)

    def items_after(
        self,
        board: Board,
        *,
        after: str | None,
        item_type: str | None = None,
        parent_id: str | None = None,
    ) -> list[Item]:
        """The items created after the item id `after`, oldest first, filtered."""
        floor = int(after) if after is not None else -1
        return [
            item
            for item in board.items.values()
            if int(item.id) > floor
            and (item_type is None or item.type == item_type)
            and (parent_id is None or item.parent_id == parent_id)
        ]

    def count_items(
        self, board: Board, *, item_type: str | None = None, parent_id: str | None = None
    ) -> int:
        """How many items pass the filters."""
        return len(self.items_after(board, after=None, item_type=item_type, parent_id=parent_id))

    # Tags

    def create_tag(self, user_id: str, board: Board, body: object) -> Tag:
        """Create a tag from a `TagCreateRequest`; titles are unique on a board."""
        errors = TAG_CREATE(body, "")
        if errors:
            raise invalid_parameters(errors)
        assert isinstance(body, Mapping)
        self._check_title_free(board, body["title"], None)
        tag = Tag(self._next_id(), body["title"], body.get("fillColor", "red"))
        board.tags[tag.id] = tag
        self._touch(board, None, user_id)
        return tag

    @staticmethod
    def _check_title_free(board: Board, title: str, tag_id: str | None) -> None:
        if any(tag.title == title and tag.id != tag_id for tag in board.tags.values()):
            raise invalid("title", "A tag with this title already exists on the board")

    def tag(self, board: Board, tag_id: str) -> Tag:
        """A tag of the board (404 when there is none)."""
        tag = board.tags.get(tag_id)
        if tag is None:
            raise not_found(f"Tag {tag_id} not found")
        return tag

    def update_tag(self, user_id: str, board: Board, tag_id: str, body: object) -> Tag:
        """Apply a `TagUpdateRequest`."""
        tag = self.tag(board, tag_id)
        errors = TAG_UPDATE(body, "")
        if errors:
            raise invalid_parameters(errors)
        assert isinstance(body, Mapping)
        if "title" in body:
            self._check_title_free(board, body["title"], tag.id)
            tag.title = body["title"]
        tag.fill_color = body.get("fillColor", tag.fill_color)
        self._touch(board, None, user_id)
        return tag

    def delete_tag(self, user_id: str, board: Board, tag_id: str) -> None:
        """Delete a tag and remove it from every item."""
        self.tag(board, tag_id)
        del board.tags[tag_id]
        for item in board.items.values():
            if tag_id in item.tag_ids:
                item.tag_ids.remove(tag_id)
                self._touch(board, item, user_id)
        self._touch(board, None, user_id)

    def attach_tag(self, user_id: str, board: Board, item_id: str, tag_id: str) -> None:
        """Attach a tag to a card or sticky note (at most 8 tags per item)."""
        item = self.item(board, item_id)
        self.tag(board, tag_id)
        if item.type not in TAGGABLE_TYPES:
            raise invalid("item_id", "Tags can only be attached to cards and sticky notes")
        if tag_id in item.tag_ids:
            return
        if len(item.tag_ids) >= MAX_TAGS_PER_ITEM:
            raise invalid("tag_id", f"An item can have at most {MAX_TAGS_PER_ITEM} tags")
        item.tag_ids.append(tag_id)
        self._touch(board, item, user_id)

    def detach_tag(self, user_id: str, board: Board, item_id: str, tag_id: str) -> None:
        """Remove a tag from an item."""
        item = self.item(board, item_id)
        self.tag(board, tag_id)
        if tag_id in item.tag_ids:
            item.tag_ids.remove(tag_id)
            self._touch(board, item, user_id)

    def tags_of(self, board: Board, item_id: str) -> list[Tag]:
        """The tags attached to an item."""
        item = self.item(board, item_id)
        return [board.tags[tag_id] for tag_id in item.tag_ids]

    def items_with_tag(self, board: Board, tag_id: str) -> list[Item]:
        """The items carrying a tag, oldest first."""
        self.tag(board, tag_id)
        return [item for item in board.items.values() if tag_id in item.tag_ids]
