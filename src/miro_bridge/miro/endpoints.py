"""The Miro REST endpoints the service calls, with their rate-limit levels.

Miro charges each call against the user's per-minute credit budget by the level written in
its API description (miro/README.md §2-3): level 1 costs 50 credits, level 2 100, level 3 500,
level 4 2000; the bulk create costs level 2 per item. The MiroClient actor uses these costs to
pace each user's requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

import attrs

from miro_bridge.errors import ValidationFailed

LEVEL_CREDITS = {1: 50, 2: 100, 3: 500, 4: 2000}


@attrs.frozen
class Endpoint:
    """One Miro REST operation: method, path template, rate-limit level."""

    method: str
    template: str
    level: int
    per_item: bool = False

    @property
    def name(self) -> str:
        """The metric label: method and template, never ids."""
        return f"{self.method} {self.template}"

    @property
    def retry_safe(self) -> bool:
        """Whether repeating the call after a lost answer cannot create anything twice."""
        return self.method in ("GET", "PATCH", "DELETE")

    def cost(self, items: int = 1) -> int:
        """Credits this call costs (`items` for per-item operations)."""
        return LEVEL_CREDITS[self.level] * (items if self.per_item else 1)

    def path(self, **params: str) -> str:
        """The path with each parameter percent-encoded (board ids contain `=`).

        Every value is one whole segment: `/` is encoded, and a value that a URL would resolve
        away (`.`, `..`, empty) is refused, so that `DELETE .../items/..` can never become
        `DELETE /v2/boards/{id}`.
        """
        for name, value in params.items():
            check_id(value, ("path", name))
        return self.template.format(**{k: quote(v, safe="") for k, v in params.items()})


#: Values a URL path segment cannot hold: they resolve to the segment itself or its parent.
_UNSAFE_SEGMENTS = frozenset({"", ".", ".."})


def check_id(value: str, loc: Sequence[str | int]) -> str:
    """`value` if it can be one segment of a Miro path; `ValidationFailed` at `loc` if not."""
    if value in _UNSAFE_SEGMENTS:
        raise ValidationFailed.at(loc, f"{value!r} is not an id")
    return value


_BOARD = "/v2/boards/{board_id}"

GET_BOARD = Endpoint("GET", _BOARD, 1)
LIST_ITEMS = Endpoint("GET", f"{_BOARD}/items", 2)
GET_ITEM = Endpoint("GET", f"{_BOARD}/items/{{item_id}}", 1)
DELETE_ITEM = Endpoint("DELETE", f"{_BOARD}/items/{{item_id}}", 3)
CREATE_ITEMS = Endpoint("POST", f"{_BOARD}/items/bulk", 2, per_item=True)
GET_SHAPE = Endpoint("GET", f"{_BOARD}/shapes/{{item_id}}", 1)
UPDATE_SHAPE = Endpoint("PATCH", f"{_BOARD}/shapes/{{item_id}}", 2)
DELETE_SHAPE = Endpoint("DELETE", f"{_BOARD}/shapes/{{item_id}}", 3)
UPDATE_CARD = Endpoint("PATCH", f"{_BOARD}/cards/{{item_id}}", 2)
LIST_TAGS = Endpoint("GET", f"{_BOARD}/tags", 1)
CREATE_TAG = Endpoint("POST", f"{_BOARD}/tags", 1)
ATTACH_TAG = Endpoint("POST", f"{_BOARD}/items/{{item_id}}", 1)  # with ?tag_id=
ITEM_TAGS = Endpoint("GET", f"{_BOARD}/items/{{item_id}}/tags", 1)
