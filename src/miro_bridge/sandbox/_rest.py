"""Miro's REST v2 routes: what each does, what it costs, and the pages it answers.

Handlers are plain functions of a `Call` (the authenticated caller, the base URL, the query
and the raw body) that answer a `Reply` or raise `ApiError`; `SandboxApp` wraps them with
authentication, credits and the rate-limit headers.
"""

from __future__ import annotations

import functools
import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from werkzeug.datastructures import MultiDict

from miro_bridge.sandbox import _render
from miro_bridge.sandbox._boards import ITEM_TYPES, Board
from miro_bridge.sandbox._credits import LEVEL_COSTS
from miro_bridge.sandbox._errors import invalid
from miro_bridge.sandbox._oauth import Session

if TYPE_CHECKING:
    from miro_bridge.sandbox._sandbox import Sandbox

ITEM_TYPE_FILTERS = (
    "text",
    "shape",
    "sticky_note",
    "image",
    "document",
    "card",
    "app_card",
    "preview",
    "frame",
    "embed",
    "doc_format",
    "data_table_format",
)
"""The values Miro accepts for `GET /items?type=`; the sandbox only has some of these types."""


@attrs.frozen
class Reply:
    """A handler's answer: status and JSON body (None for an empty body)."""

    status: int
    body: object = None


@attrs.frozen
class Call:
    """One authenticated REST call as a handler sees it."""

    session: Session
    base: str
    args: MultiDict[str, str]
    raw_body: bytes

    @property
    def user(self) -> str:
        """The caller's user id."""
        return self.session.user_id

    def json(self) -> object:
        """The JSON body; 400 when it is not JSON."""
        try:
            return json.loads(self.raw_body)
        except ValueError:
            raise invalid("body", "Must be a JSON document") from None

    def bulk_size(self) -> int:
        """How many items a bulk body holds (1 when it is not a list), to price it."""
        try:
            body = json.loads(self.raw_body)
        except ValueError:
            return 1
        return max(len(body), 1) if isinstance(body, list) else 1


Cost = Callable[[Call], int]
Handler = Callable[..., Reply]


def level(number: int) -> Cost:
    """The cost of an operation at rate-limit level `number`."""
    return lambda call: LEVEL_COSTS[number]


def per_item(number: int) -> Cost:
    """Level `number` credits for each item of a bulk body."""
    return lambda call: LEVEL_COSTS[number] * call.bulk_size()


def by_query(name: str, present: Cost, absent: Cost) -> Cost:
    """One cost when query parameter `name` is given, another when it is not."""
    return lambda call: present(call) if name in call.args else absent(call)


def _int_arg(args: Mapping[str, str], name: str, low: int, high: int | None, default: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, "Must be an integer") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise invalid(name, f"Must be {bounds}")
    return value


def _offset_page(
    url: str, entries: list[Any], args: Mapping[str, str], render: Callable[[Any], object]
) -> dict[str, Any]:
    """An offset-paged list body (`limit` 1 to 50, default 20), with Miro's page links."""
    limit = _int_arg(args, "limit", 1, 50, 20)
    offset = _int_arg(args, "offset", 0, None, 0)
    page = entries[offset : offset + limit]
    extra = {key: value for key, value in args.items() if key not in {"limit", "offset"}}

    def link(at: int) -> str:
        return f"{url}?{urllib.parse.urlencode(extra | {'limit': limit, 'offset': at})}"

    last = max(len(entries) - 1, 0) // limit * limit
    links = {"self": link(offset), "first": link(0), "last": link(last)}
    if offset > 0:
        links["prev"] = link(max(offset - limit, 0))
    if offset + limit < len(entries):
        links["next"] = link(offset + limit)
    return {
        "data": [render(entry) for entry in page],
        "total": len(entries),
        "size": len(page),
        "offset": offset,
        "limit": limit,
        "links": links,
        "type": "list",
    }


class MiroApi:
    """The handlers of Miro's REST routes; each raises ApiError for Miro's error answers."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def _board(self, call: Call, board_id: str) -> Board:
        return self._sandbox.boards.board(call.user, board_id)

    # Boards

    def create_board(self, call: Call) -> Reply:
        board = self._sandbox.boards.create_board_from(call.user, call.json())
        return Reply(201, _render.board(call.base, board, call.user))

    def list_boards(self, call: Call) -> Reply:
        boards = self._sandbox.boards.boards_of(call.user)
        query = call.args.get("query")
        if query:
            boards = [board for board in boards if query.lower() in board.name.lower()]
        owner = call.args.get("owner")
        if owner:
            boards = [board for board in boards if board.owner == owner]
        body = _offset_page(
            f"{call.base}/v2/boards",
            boards,
            call.args,
            lambda board: _render.board(call.base, board, call.user),
        )
        return Reply(200, body)

    def get_board(self, call: Call, board_id: str) -> Reply:
        return Reply(200, _render.board(call.base, self._board(call, board_id), call.user))

    # Items of one type

    def create_item(self, call: Call, board_id: str, *, item_type: str) -> Reply:
        board = self._board(call, board_id)
        item = self._sandbox.boards.create_item(call.user, board, item_type, call.json())
        return Reply(201, _render.item(call.base, board.id, item))

    def get_item(self, call: Call, board_id: str, item_id: str, *, item_type: str) -> Reply:
        board = self._board(call, board_id)
        item = self._sandbox.boards.item(board, item_id, item_type)
        return Reply(200, _render.item(call.base, board.id, item))

    def update_item(self, call: Call, board_id: str, item_id: str, *, item_type: str) -> Reply:
        board = self._board(call, board_id)
        item = self._sandbox.boards.update_item(call.user, board, item_id, item_type, call.json())
        return Reply(200, _render.item(call.base, board.id, item))

    def delete_item(self, call: Call, board_id: str, item_id: str, *, item_type: str) -> Reply:
        board = self._board(call, board_id)
        self._sandbox.boards.delete_item(call.user, board, item_id, item_type)
        return Reply(204)

    # Generic items

    def list_items(self, call: Call, board_id: str) -> Reply:
        """Cursor pages of items; with `tag_id`, offset pages of the items with that tag."""
        board = self._board(call, board_id)
        url = f"{_render.board_url(call.base, board.id)}/items"
        tag_id = call.args.get("tag_id")
        if tag_id is not None:
            tagged = self._sandbox.boards.items_with_tag(board, tag_id)
            return Reply(
                200,
                _offset_page(
                    url,
                    tagged,
                    call.args,
                    lambda item: _render.generic_item(call.base, board.id, item),
                ),
            )
        limit = _int_arg(call.args, "limit", 10, 50, 10)
        item_type = call.args.get("type")
        if item_type is not None and item_type not in ITEM_TYPE_FILTERS:
            raise invalid("type", f"Must be one of: {', '.join(ITEM_TYPE_FILTERS)}")
        parent_id = call.args.get("parent_item_id") or None
        cursor = call.args.get("cursor") or None
        if cursor is not None and not cursor.isdigit():
            raise invalid("cursor", "Not a cursor this endpoint handed out")
        matching = self._sandbox.boards.items_after(
            board, after=cursor, item_type=item_type, parent_id=parent_id
        )
        page = matching[:limit]
        filters = {"type": item_type, "parent_item_id": parent_id}
        params = {key: value for key, value in filters.items() if value is not None}

        def link(at: str | None) -> str:
            query = params | {"limit": str(limit)} | ({"cursor": at} if at else {})
            return f"{url}?{urllib.parse.urlencode(query)}"

        body: dict[str, Any] = {
            "data": [_render.generic_item(call.base, board.id, item) for item in page],
            "total": self._sandbox.boards.count_items(
                board, item_type=item_type, parent_id=parent_id
            ),
            "size": len(page),
            "limit": limit,
            "links": {"self": link(cursor)},
        }
        if len(matching) > limit:
            body["cursor"] = page[-1].id
            body["links"]["next"] = link(page[-1].id)
        return Reply(200, body)

    def create_items(self, call: Call, board_id: str) -> Reply:
        board = self._board(call, board_id)
        items = self._sandbox.boards.create_items(call.user, board, call.json())
        data = [_render.item(call.base, board.id, item) for item in items]
        return Reply(201, {"type": "bulk-list", "data": data})

    def get_generic_item(self, call: Call, board_id: str, item_id: str) -> Reply:
        board = self._board(call, board_id)
        item = self._sandbox.boards.item(board, item_id)
        return Reply(200, _render.generic_item(call.base, board.id, item))

    def move_item(self, call: Call, board_id: str, item_id: str) -> Reply:
        board = self._board(call, board_id)
        item = self._sandbox.boards.move_item(call.user, board, item_id, call.json())
        return Reply(200, _render.generic_item(call.base, board.id, item))

    def delete_or_detach(self, call: Call, board_id: str, item_id: str) -> Reply:
        board = self._board(call, board_id)
        tag_id = call.args.get("tag_id")
        if tag_id is None:
            self._sandbox.boards.delete_item(call.user, board, item_id)
        else:
            self._sandbox.boards.detach_tag(call.user, board, item_id, tag_id)
        return Reply(204)

    def attach_tag(self, call: Call, board_id: str, item_id: str) -> Reply:
        board = self._board(call, board_id)
        tag_id = call.args.get("tag_id")
        if not tag_id:
            raise invalid("tag_id", "Required")
        self._sandbox.boards.attach_tag(call.user, board, item_id, tag_id)
        return Reply(204)

    def item_tags(self, call: Call, board_id: str, item_id: str) -> Reply:
        board = self._board(call, board_id)
        tags = self._sandbox.boards.tags_of(board, item_id)
        return Reply(
            200, {"tags": [_render.tag(call.base, board.id, t, links=False) for t in tags]}
        )

    # Tags

    def create_tag(self, call: Call, board_id: str) -> Reply:
        board = self._board(call, board_id)
        tag = self._sandbox.boards.create_tag(call.user, board, call.json())
        return Reply(201, _render.tag(call.base, board.id, tag))

    def list_tags(self, call: Call, board_id: str) -> Reply:
        board = self._board(call, board_id)
        body = _offset_page(
            f"{_render.board_url(call.base, board.id)}/tags",
            list(board.tags.values()),
            call.args,
            lambda tag: _render.tag(call.base, board.id, tag, links=False),
        )
        return Reply(200, body)

    def get_tag(self, call: Call, board_id: str, tag_id: str) -> Reply:
        board = self._board(call, board_id)
        return Reply(200, _render.tag(call.base, board.id, self._sandbox.boards.tag(board, tag_id)))

    def update_tag(self, call: Call, board_id: str, tag_id: str) -> Reply:
        board = self._board(call, board_id)
        tag = self._sandbox.boards.update_tag(call.user, board, tag_id, call.json())
        return Reply(200, _render.tag(call.base, board.id, tag))

    def delete_tag(self, call: Call, board_id: str, tag_id: str) -> Reply:
        board = self._board(call, board_id)
        self._sandbox.boards.delete_tag(call.user, board, tag_id)
        return Reply(204)


@attrs.frozen
class Route:
    """A REST route: its method, Werkzeug rule, price, and handler."""

    method: str
    rule: str
    cost: Cost
    handler: Handler


def rest_routes(api: MiroApi) -> list[Route]:
    """Every REST v2 route the sandbox serves, with its rate-limit level from Miro's description."""
    board = "/v2/boards/<board_id>"
    routes = [
        Route("POST", "/v2/boards", level(3), api.create_board),
        Route("GET", "/v2/boards", level(1), api.list_boards),
        Route("GET", board, level(1), api.get_board),
        Route("GET", f"{board}/items", by_query("tag_id", level(1), level(2)), api.list_items),
        Route("POST", f"{board}/items/bulk", per_item(2), api.create_items),
        Route("GET", f"{board}/items/<item_id>", level(1), api.get_generic_item),
        Route("PATCH", f"{board}/items/<item_id>", level(2), api.move_item),
        Route(
            "DELETE",
            f"{board}/items/<item_id>",
            by_query("tag_id", level(1), level(3)),
            api.delete_or_detach,
        ),
        Route("POST", f"{board}/items/<item_id>", level(1), api.attach_tag),
        Route("GET", f"{board}/items/<item_id>/tags", level(1), api.item_tags),
        Route("POST", f"{board}/tags", level(1), api.create_tag),
        Route("GET", f"{board}/tags", level(1), api.list_tags),
        Route("GET", f"{board}/tags/<tag_id>", level(1), api.get_tag),
        Route("PATCH", f"{board}/tags/<tag_id>", level(1), api.update_tag),
        Route("DELETE", f"{board}/tags/<tag_id>", level(1), api.delete_tag),
    ]
    for item_type in ITEM_TYPES:
        collection = f"{board}/{_render.ROUTE_OF_TYPE[item_type]}"
        typed = functools.partial
        routes += [
            Route("POST", collection, level(2), typed(api.create_item, item_type=item_type)),
            Route(
                "GET", f"{collection}/<item_id>", level(1), typed(api.get_item, item_type=item_type)
            ),
            Route(
                "PATCH",
                f"{collection}/<item_id>",
                level(2),
                typed(api.update_item, item_type=item_type),
            ),
            Route(
                "DELETE",
                f"{collection}/<item_id>",
                level(3),
                typed(api.delete_item, item_type=item_type),
            ),
        ]
    return routes
