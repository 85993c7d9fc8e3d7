"""The JSON bodies Miro answers for boards, items and tags.

`base` is the external URL the sandbox is reached at, mount prefix included (for example
`http://127.0.0.1:9100` or `http://localhost:8000/_sandbox`); every `links` URL starts with it.
"""

from __future__ import annotations

import datetime
import urllib.parse
from typing import Any

from miro_bridge.sandbox._boards import Board, Item, Tag
from miro_bridge.sandbox._oauth import TEAM_ID, TEAM_NAME, user_name

ROUTE_OF_TYPE = {
    "shape": "shapes",
    "card": "cards",
    "sticky_note": "sticky_notes",
    "text": "texts",
    "frame": "frames",
}
"""The path segment of each item type's own routes."""


def timestamp(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, as Miro writes times."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def board_url(base: str, board_id: str) -> str:
    """The API URL of a board; its id is percent-encoded (`=` becomes `%3D`)."""
    return f"{base}/v2/boards/{urllib.parse.quote(board_id, safe='')}"


def _user(user_id: str) -> dict[str, str]:
    return {"id": user_id, "name": user_name(user_id), "type": "user"}


def board(base: str, board: Board, viewer: str) -> dict[str, Any]:
    """`BoardWithLinks` as `viewer` sees it."""
    url = board_url(base, board.id)
    return {
        "id": board.id,
        "type": "board",
        "name": board.name,
        "description": board.description,
        "links": {"self": url, "related": f"{url}/members?limit=20&offset=0"},
        "createdAt": timestamp(board.created_at),
        "createdBy": _user(board.owner),
        "modifiedAt": timestamp(board.modified_at),
        "modifiedBy": _user(board.modified_by),
        "owner": _user(board.owner),
        "team": {"id": TEAM_ID, "name": TEAM_NAME, "type": "team"},
        "currentUserMembership": {
            "id": viewer,
            "name": user_name(viewer),
            "role": board.role_of(viewer) or "viewer",
            "type": "board_member",
        },
        "policy": {
            "permissionsPolicy": {
                "collaborationToolsStartAccess": "all_editors",
                "copyAccess": "anyone",
                "sharingAccess": "team_members_with_editing_rights",
            },
            "sharingPolicy": {
                "access": "private",
                "inviteToAccountAndBoardLinkAccess": "no_access",
                "organizationAccess": "private",
                "teamAccess": "private",
            },
        },
        "viewLink": f"{base}/app/board/{urllib.parse.quote(board.id, safe='')}/",
    }


def item_url(base: str, board_id: str, item: Item) -> str:
    """The URL of an item under its type's own route."""
    return f"{board_url(base, board_id)}/{ROUTE_OF_TYPE[item.type]}/{item.id}"


def _common(base: str, board_id: str, item: Item) -> dict[str, Any]:
    related = f"{board_url(base, board_id)}/items?parent_item_id={item.id}&limit=10&cursor="
    return {
        "id": item.id,
        "type": item.type,
        "data": dict(item.data),
        "position": {
            "x": item.position["x"],
            "y": item.position["y"],
            "origin": "center",
            "relativeTo": "parent_top_left" if item.parent_id else "canvas_center",
        },
        "geometry": dict(item.geometry),
        "createdAt": timestamp(item.created_at),
        "createdBy": {"id": item.created_by, "type": "user"},
        "modifiedAt": timestamp(item.modified_at),
        "modifiedBy": {"id": item.modified_by, "type": "user"},
        "links": {"self": item_url(base, board_id, item), "related": related},
    }


def item(base: str, board_id: str, item: Item) -> dict[str, Any]:
    """An item as its own routes answer it (`ShapeItem`, `CardItem`, ...)."""
    body = _common(base, board_id, item)
    body["style"] = dict(item.style)
    if item.parent_id:
        parent_url = f"{board_url(base, board_id)}/frames/{item.parent_id}"
        body["parent"] = {"id": item.parent_id, "links": {"self": parent_url}}
    return body


def generic_item(base: str, board_id: str, item: Item) -> dict[str, Any]:
    """An item as `/items` answers it (`GenericItem`: no style, parent by id only)."""
    body = _common(base, board_id, item)
    if item.parent_id:
        body["parent"] = {"id": item.parent_id}
    return body


def tag(base: str, board_id: str, tag: Tag, *, links: bool = True) -> dict[str, Any]:
    """`TagWithLinks`, or `Tag` when `links` is False (in lists)."""
    body: dict[str, Any] = {
        "id": tag.id,
        "title": tag.title,
        "fillColor": tag.fill_color,
        "type": "tag",
    }
    if links:
        body["links"] = {"self": f"{board_url(base, board_id)}/tags/{tag.id}"}
    return body
