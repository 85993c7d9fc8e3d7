"""Shapes: the Node client's ShapeData, and its translation to Miro's REST shape body.

The client describes a shape as `{"shape", "x", "y", "width", "height", "rotation"?, "text"?,
"style"?}`; Miro's create (`ShapeCreateRequest`) and update (`ShapeUpdateRequest`) body is
`{"data": {"shape", "content"}, "position": {"x", "y"}, "geometry": {"width", "height",
"rotation"?}, "style": {...}}`.

The client's `style` speaks the web SDK's vocabulary; `translate_style` turns it into the REST
API's, by the rules of API.md (ShapeData):

- `fontFamily`: matched to Miro's fonts (`FONT_FAMILIES`) ignoring case, spaces, hyphens and
  underscores (`Arial` -> `arial`, `Open Sans` / `open-sans` -> `open_sans`).
- `borderWidth`, `borderOpacity`, `fillOpacity`, `fontSize`: a finite number becomes a numeric
  string, integral values without a fraction (`2` -> `"2"`, `1.0` -> `"1"`, `2.5` -> `"2.5"`);
  a numeric string passes unchanged. Ranges are Miro's to check.
- `textAlign`, `textAlignVertical`, `borderStyle`: lower-cased, then one of Miro's values.
- `borderColor`, `color`, `fillColor`: strings pass, `#RGB` expanded to `#RRGGBB`.
- A key set to `null` counts as not given and is left out.
- Keys Miro's `ShapeStyleForCreate` does not have are dropped (logged at debug).

Anything else raises `ValidationFailed` at `("style", key)` naming the value and what is
accepted. `ShapeStyleForUpdate` has the same keys and types; its alignments lack the value
`unknown`, which Miro only ever answers (never accepts), so one translation serves both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs
import structlog

from miro_bridge.errors import ValidationFailed

log = structlog.get_logger(__name__)

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
"""Miro's basic shapes (`ShapeDataForCreate.shape`)."""

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
"""Miro's flowchart shapes (`ShapeDataForCreate.shape`)."""

SHAPES = BASIC_SHAPES + FLOWCHART_SHAPES
"""Every value of `data.shape` Miro accepts."""

TEXTLESS_SHAPES = ("flow_chart_or", "flow_chart_summing_junction")
"""Shapes that take no `data.content` (the description of `ShapeDataForCreate.content`)."""

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
"""`ShapeStyleForCreate.fontFamily`."""

TEXT_ALIGNS = ("left", "right", "center")
"""`ShapeStyleForUpdate.textAlign` (create also lists `unknown`, which Miro only answers)."""

TEXT_ALIGNS_VERTICAL = ("top", "middle", "bottom")
"""`ShapeStyleForUpdate.textAlignVertical` (create also lists `unknown`, as `TEXT_ALIGNS`)."""

BORDER_STYLES = ("normal", "dotted", "dashed")
"""`ShapeStyleForCreate.borderStyle`."""

NUMBER_KEYS = ("borderOpacity", "borderWidth", "fillOpacity", "fontSize")
"""Style keys Miro types as numbers written in strings."""

CHOICE_KEYS: Mapping[str, tuple[str, ...]] = {
    "borderStyle": BORDER_STYLES,
    "textAlign": TEXT_ALIGNS,
    "textAlignVertical": TEXT_ALIGNS_VERTICAL,
}
"""Style keys taking one of a few lower-case words, and those words."""

COLOR_KEYS = ("borderColor", "color", "fillColor")
"""Style keys holding a hex colour."""

STYLE_KEYS = frozenset({"fontFamily", *NUMBER_KEYS, *CHOICE_KEYS, *COLOR_KEYS})
"""Every key of `ShapeStyleForCreate` (and of `ShapeStyleForUpdate`)."""

_SEPARATORS = re.compile(r"[\s_-]+")
_FONTS = {_SEPARATORS.sub("", font): font for font in FONT_FAMILIES}
_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SHORT_HEX = re.compile(r"#([0-9a-fA-F])([0-9a-fA-F])([0-9a-fA-F])")


@attrs.frozen
class ShapeData:
    """A shape as the Node client describes it (web-SDK style vocabulary)."""

    shape: str
    x: float
    y: float
    width: float
    height: float
    rotation: float | None = None
    text: str | None = None
    style: dict[str, Any] | None = None


def _font(value: object) -> str:
    font = _FONTS.get(_SEPARATORS.sub("", value.lower())) if isinstance(value, str) else None
    if font is None:
        raise ValidationFailed.at(
            ("style", "fontFamily"),
            f"font {value!r} is not one of Miro's: {', '.join(FONT_FAMILIES)} "
            "(case, spaces, hyphens and underscores do not matter)",
        )
    return font


def _number_text(key: str, value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str) and _NUMERIC.fullmatch(value) and math.isfinite(float(value)):
        return value
    raise ValidationFailed.at(
        ("style", key), f"{value!r} is not a number (or a string holding a number)"
    )


def _choice(key: str, value: object) -> str:
    accepted = CHOICE_KEYS[key]
    word = value.lower() if isinstance(value, str) else None
    if word not in accepted:
        raise ValidationFailed.at(
            ("style", key), f"{value!r} is not one of Miro's values: {', '.join(accepted)}"
        )
    assert word is not None
    return word


def _color(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationFailed.at(("style", key), f"{value!r} is not a colour like #1a1a1a")
    short = _SHORT_HEX.fullmatch(value)
    return "#" + "".join(digit * 2 for digit in short.groups()) if short else value


def translate_style(style: Mapping[str, Any]) -> dict[str, Any]:
    """The REST API's shape style for a web-SDK style (the rules: the module docstring).

    Raises `ValidationFailed` at `("style", key)` for the first value that cannot be translated.
    """
    translated: dict[str, Any] = {}
    dropped = []
    for key, value in style.items():
        if value is None:
            continue
        if key == "fontFamily":
            translated[key] = _font(value)
        elif key in NUMBER_KEYS:
            translated[key] = _number_text(key, value)
        elif key in CHOICE_KEYS:
            translated[key] = _choice(key, value)
        elif key in COLOR_KEYS:
            translated[key] = _color(key, value)
        else:
            dropped.append(key)
    if dropped:
        log.debug("shape.style_dropped", keys=dropped)
    return translated


def shape_body(shape: ShapeData) -> dict[str, Any]:
    """Miro's create or update body for a ShapeData (without `type`), its style translated."""
    data: dict[str, Any] = {"shape": shape.shape}
    if shape.text is not None:
        data["content"] = shape.text
    geometry: dict[str, Any] = {"width": shape.width, "height": shape.height}
    if shape.rotation is not None:
        geometry["rotation"] = shape.rotation
    body: dict[str, Any] = {
        "data": data,
        "position": {"x": shape.x, "y": shape.y},
        "geometry": geometry,
    }
    style = translate_style(shape.style) if shape.style else {}
    if style:
        body["style"] = style
    return body


def refusal(error: ValidationFailed) -> dict[str, Any]:
    """Miro's error body (400 `invalidParameters`) for a shape refused before it was sent."""
    fields = [{"field": ".".join(map(str, p.loc)), "message": p.msg} for p in error.detail]
    return {
        "type": "error",
        "status": 400,
        "code": "invalidParameters",
        "message": error.message,
        "context": {"fields": fields},
    }
