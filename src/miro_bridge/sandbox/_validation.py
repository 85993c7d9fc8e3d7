"""Checks of request bodies against the shapes in Miro's OpenAPI description.

Each check answers the list of `FieldError`s of a value; an empty list means valid. Keys the
description does not define are ignored, as the description does not forbid them, except in
`geometry`, where Miro's per-type geometry schemas are deliberately narrower (a sticky note
takes width or height, no rotation; a text takes width and rotation only).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping, Sequence

from miro_bridge.sandbox._errors import FieldError

Check = Callable[[object, str], list[FieldError]]


def join(prefix: str, key: str) -> str:
    """The dotted name of `key` inside the field `prefix`."""
    return f"{prefix}.{key}" if prefix else key


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def text(*, min_length: int = 0, max_length: int | None = None) -> Check:
    """A string, optionally of bounded length."""

    def check(value: object, field: str) -> list[FieldError]:
        if not isinstance(value, str):
            return [FieldError(field, "Must be a string")]
        if len(value) < min_length:
            return [FieldError(field, f"Must be at least {min_length} characters long")]
        if max_length is not None and len(value) > max_length:
            return [FieldError(field, f"Must be at most {max_length} characters long")]
        return []

    return check


def choice(values: Sequence[str]) -> Check:
    """One string among `values`."""
    allowed = frozenset(values)

    def check(value: object, field: str) -> list[FieldError]:
        if not isinstance(value, str) or value not in allowed:
            return [FieldError(field, f"Must be one of: {', '.join(values)}")]
        return []

    return check


def number(*, positive: bool = False) -> Check:
    """A JSON number (not a boolean, not a string)."""

    def check(value: object, field: str) -> list[FieldError]:
        if not _is_number(value):
            return [FieldError(field, "Must be a number")]
        assert isinstance(value, int | float)
        if positive and value <= 0:
            return [FieldError(field, "Must be greater than 0")]
        return []

    return check


def number_text(*, low: float | None = None, high: float | None = None) -> Check:
    """A number written as a string, as Miro types most numeric style values (`"14"`)."""

    def check(value: object, field: str) -> list[FieldError]:
        if not isinstance(value, str):
            return [FieldError(field, "Must be a string holding a number")]
        try:
            parsed = float(value)
        except ValueError:
            return [FieldError(field, "Must be a string holding a number")]
        if not math.isfinite(parsed):
            return [FieldError(field, "Must be a string holding a number")]
        if low is not None and parsed < low:
            return [FieldError(field, f"Must be at least {low:g}")]
        if high is not None and parsed > high:
            return [FieldError(field, f"Must be at most {high:g}")]
        return []

    return check


def boolean() -> Check:
    """A JSON boolean."""

    def check(value: object, field: str) -> list[FieldError]:
        return [] if isinstance(value, bool) else [FieldError(field, "Must be a boolean")]

    return check


def numeric_id() -> Check:
    """An int64 id written as a string of digits, as Miro writes item and user ids."""

    def check(value: object, field: str) -> list[FieldError]:
        if not isinstance(value, str) or not value.isdigit() or int(value) >= 2**63:
            return [FieldError(field, "Must be a numeric id string")]
        return []

    return check


def timestamp() -> Check:
    """An ISO-8601 date-time with a time zone (`2024-05-01T12:00:00Z`)."""

    def check(value: object, field: str) -> list[FieldError]:
        if isinstance(value, str):
            try:
                parsed = datetime.datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if parsed.tzinfo is not None:
                    return []
        return [FieldError(field, "Must be an ISO-8601 date-time with a time zone")]

    return check


_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?")


def color() -> Check:
    """A hex colour, `#rrggbb` or `#rrggbbaa`."""

    def check(value: object, field: str) -> list[FieldError]:
        if not isinstance(value, str) or not _HEX_COLOR.fullmatch(value):
            return [FieldError(field, "Must be a hex color like #1a1a1a")]
        return []

    return check


def fields(
    members: Mapping[str, Check], *, required: Sequence[str] = (), closed: bool = False
) -> Check:
    """A JSON object whose known keys pass their checks; `closed` rejects other keys."""

    def check(value: object, field: str) -> list[FieldError]:
        if not isinstance(value, Mapping):
            return [FieldError(field or "body", "Must be an object")]
        errors = [FieldError(join(field, key), "Required") for key in required if key not in value]
        for key, item in value.items():
            member = members.get(key)
            if member is not None:
                errors.extend(member(item, join(field, key)))
            elif closed:
                errors.append(FieldError(join(field, key), "Not supported for this item type"))
        return errors

    return check


BASIC_SHAPES = (
    "rectangle",
    "round_rectangle",
    "circle",
    "triangle",
    "rhombus",
    "parallelogram",
    "trapezoid",
    "pentagon",
    "hexagon",
    "octagon",
    "wedge_round_rectangle_callout",
    "star",
    "flow_chart_predefined_process",
    "cloud",
    "cross",
    "can",
    "right_arrow",
    "left_arrow",
    "left_right_arrow",
    "left_brace",
    "right_brace",
)
FLOWCHART_SHAPES = (
    "flow_chart_connector",
    "flow_chart_magnetic_disk",
    "flow_chart_input_output",
    "flow_chart_decision",
    "flow_chart_delay",
    "flow_chart_display",
    "flow_chart_document",
    "flow_chart_magnetic_drum",
    "flow_chart_internal_storage",
    "flow_chart_manual_input",
    "flow_chart_manual_operation",
    "flow_chart_merge",
    "flow_chart_multidocuments",
    "flow_chart_note_curly_left",
    "flow_chart_note_curly_right",
    "flow_chart_note_square",
    "flow_chart_offpage_connector",
    "flow_chart_or",
    "flow_chart_predefined_process_2",
    "flow_chart_preparation",
    "flow_chart_process",
    "flow_chart_online_storage",
    "flow_chart_summing_junction",
    "flow_chart_terminator",
)
FONT_FAMILIES = (
    "arial",
    "abril_fatface",
    "bangers",
    "eb_garamond",
    "georgia",
    "graduate",
    "gravitas_one",
    "fredoka_one",
    "nixie_one",
    "open_sans",
    "permanent_marker",
    "pt_sans",
    "pt_sans_narrow",
    "pt_serif",
    "rammetto_one",
    "roboto",
    "roboto_condensed",
    "roboto_slab",
    "caveat",
    "times_new_roman",
    "titan_one",
    "lemon_tuesday",
    "roboto_mono",
    "noto_sans",
    "plex_sans",
    "plex_serif",
    "plex_mono",
    "spoof",
    "tiempos_text",
    "formular",
)
STICKY_NOTE_COLORS = (
    "gray",
    "light_yellow",
    "yellow",
    "orange",
    "light_green",
    "green",
    "dark_green",
    "cyan",
    "light_pink",
    "pink",
    "violet",
    "red",
    "light_blue",
    "blue",
    "dark_blue",
    "black",
)
TAG_COLORS = (
    "red",
    "light_green",
    "cyan",
    "yellow",
    "magenta",
    "green",
    "blue",
    "gray",
    "violet",
    "dark_green",
    "dark_blue",
    "black",
)
_ALIGN = ("left", "right", "center")
_ALIGN_VERTICAL = ("top", "middle", "bottom")

_POSITION = fields({"x": number(), "y": number()})
_PARENT = fields({"id": numeric_id()}, required=("id",))
_SIZE = number(positive=True)

_SHAPE_STYLE = fields(
    {
        "borderColor": color(),
        "borderOpacity": number_text(low=0, high=1),
        "borderStyle": choice(("normal", "dotted", "dashed")),
        "borderWidth": number_text(low=1, high=24),
        "color": color(),
        "fillColor": color(),
        "fillOpacity": number_text(low=0, high=1),
        "fontFamily": choice(FONT_FAMILIES),
        "fontSize": number_text(low=10, high=288),
        "textAlign": choice(_ALIGN),
        "textAlignVertical": choice(_ALIGN_VERTICAL),
    }
)
_SHAPE = {
    "data": fields(
        {"content": text(), "shape": choice(BASIC_SHAPES + FLOWCHART_SHAPES)},
    ),
    "style": _SHAPE_STYLE,
    "position": _POSITION,
    "geometry": fields({"width": _SIZE, "height": _SIZE, "rotation": number()}, closed=True),
    "parent": _PARENT,
}
_CARD = {
    "data": fields(
        {
            "title": text(),
            "description": text(),
            "dueDate": timestamp(),
            "assigneeId": numeric_id(),
        }
    ),
    "style": fields({"cardTheme": color()}),
    "position": _POSITION,
    "geometry": fields({"width": _SIZE, "height": _SIZE, "rotation": number()}, closed=True),
    "parent": _PARENT,
}
_STICKY_NOTE = {
    "data": fields({"content": text(), "shape": choice(("square", "rectangle"))}),
    "style": fields(
        {
            "fillColor": choice(STICKY_NOTE_COLORS),
            "textAlign": choice(_ALIGN),
            "textAlignVertical": choice(_ALIGN_VERTICAL),
        }
    ),
    "position": _POSITION,
    "geometry": fields({"width": _SIZE, "height": _SIZE}, closed=True),
    "parent": _PARENT,
}
_TEXT = {
    "data": fields({"content": text()}, required=("content",)),
    "style": fields(
        {
            "color": color(),
            "fillColor": color(),
            "fillOpacity": number_text(low=0, high=1),
            "fontFamily": choice(FONT_FAMILIES),
            "fontSize": number_text(low=1),
            "textAlign": choice(_ALIGN),
        }
    ),
    "position": _POSITION,
    "geometry": fields({"width": _SIZE, "rotation": number()}, closed=True),
    "parent": _PARENT,
}
_FRAME = {
    "data": fields(
        {
            "format": choice(("custom",)),
            "title": text(),
            "type": choice(("freeform",)),
            "showContent": boolean(),
        }
    ),
    "style": fields({"fillColor": color()}),
    "position": _POSITION,
    "geometry": fields({"width": _SIZE, "height": _SIZE}, closed=True),
}

CREATE: dict[str, Check] = {
    "shape": fields(_SHAPE),
    "card": fields(_CARD),
    "sticky_note": fields(_STICKY_NOTE),
    "text": fields(_TEXT, required=("data",)),
    "frame": fields(_FRAME, required=("data",)),
}
"""Create bodies by item type (`ShapeCreateRequest`, `CardCreateRequest`, ...)."""

UPDATE: dict[str, Check] = {
    "shape": fields(_SHAPE),
    "card": fields(_CARD),
    "sticky_note": fields(_STICKY_NOTE),
    "text": fields(_TEXT),
    "frame": fields(_FRAME),
}
"""Update bodies by item type (`ShapeUpdateRequest`, ...)."""

GENERIC_UPDATE = fields({"parent": _PARENT, "position": _POSITION})
"""`GenericItemUpdate`: the body of `PATCH /v2/boards/{board_id}/items/{item_id}`."""

TAG_CREATE = fields(
    {"title": text(max_length=120), "fillColor": choice(TAG_COLORS)}, required=("title",)
)
"""`TagCreateRequest`."""

TAG_UPDATE = fields({"title": text(max_length=120), "fillColor": choice(TAG_COLORS)})
"""`TagUpdateRequest`."""

_ACCESS = ("private", "view", "comment", "edit")
BOARD_CREATE = fields(
    {
        "name": text(min_length=1, max_length=60),
        "description": text(max_length=300),
        "teamId": text(),
        "projectId": text(),
        "policy": fields(
            {
                "permissionsPolicy": fields(
                    {
                        "collaborationToolsStartAccess": choice(
                            ("all_editors", "board_owners_and_coowners")
                        ),
                        "copyAccess": choice(
                            ("anyone", "team_members", "team_editors", "board_owner")
                        ),
                        "sharingAccess": choice(
                            ("team_members_with_editing_rights", "owner_and_coowners")
                        ),
                    }
                ),
                "sharingPolicy": fields(
                    {
                        "access": choice(("private", "view", "edit", "comment")),
                        "inviteToAccountAndBoardLinkAccess": choice(
                            ("viewer", "commenter", "editor", "no_access")
                        ),
                        "organizationAccess": choice(_ACCESS),
                        "teamAccess": choice(_ACCESS),
                    }
                ),
            }
        ),
    }
)
"""`BoardChanges`: the body of `POST /v2/boards`."""
