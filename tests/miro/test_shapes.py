"""The translation of the client's ShapeData into Miro's shape body, checked against Miro's
description (the project's copy) and the sandbox's own validator."""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from miro_bridge.errors import ValidationFailed
from miro_bridge.miro.shapes import (
    BORDER_STYLES,
    FONT_FAMILIES,
    NUMBER_KEYS,
    SHAPES,
    STYLE_KEYS,
    TEXT_ALIGNS,
    TEXT_ALIGNS_VERTICAL,
    TEXTLESS_SHAPES,
    ShapeData,
    shape_body,
    translate_style,
)
from miro_bridge.sandbox import _validation as sandbox
from tests.support import CLIENT_SHAPE, miro_schema, miro_schema_errors

#: Every key Miro's shape style has, in the web SDK's vocabulary.
FULL_STYLE = {
    "borderColor": "#abc",
    "borderOpacity": 0.5,
    "borderStyle": "Dashed",
    "borderWidth": 2.0,
    "color": "#1a1a1a",
    "fillColor": "#e2e3e4",
    "fillOpacity": 1,
    "fontFamily": "Times New Roman",
    "fontSize": 14,
    "textAlign": "Center",
    "textAlignVertical": "MIDDLE",
}


def shape(**changes: Any) -> ShapeData:
    """The client's templated shape, with some fields changed."""
    converted: ShapeData = msgspec.convert({**CLIENT_SHAPE, **changes}, ShapeData)
    return converted


def refusal(style: dict[str, Any]) -> ValidationFailed:
    """The error `translate_style` raises for `style`."""
    with pytest.raises(ValidationFailed) as caught:
        translate_style(style)
    return caught.value


def sandbox_errors(kind: str, body: dict[str, Any]) -> list[str]:
    """What the sandbox Miro (which the integration tests hit) finds wrong with a shape body."""
    check = sandbox.CREATE["shape"] if kind == "create" else sandbox.UPDATE["shape"]
    return [f"{error.field}: {error.message}" for error in check(body, "")]


def test_the_clients_templated_shape_becomes_miros_body() -> None:
    assert shape_body(shape()) == {
        "data": {"shape": "round_rectangle", "content": "Alpha"},
        "position": {"x": 0, "y": 0},
        "geometry": {"width": 160, "height": 100, "rotation": 0},
        "style": {
            "fillColor": "#e2e3e4",
            "fontFamily": "arial",
            "borderColor": "#939598",
            "borderWidth": "2",
        },
    }


@pytest.mark.parametrize(
    ("schema", "kind"), [("ShapeCreateRequest", "create"), ("ShapeUpdateRequest", "update")]
)
@pytest.mark.parametrize("style", [CLIENT_SHAPE["style"], FULL_STYLE], ids=["client", "full"])
def test_translated_bodies_are_valid_for_miro(
    schema: str, kind: str, style: dict[str, Any]
) -> None:
    body = shape_body(shape(style=style))
    assert miro_schema_errors(schema, body) == []
    assert sandbox_errors(kind, body) == []


@pytest.mark.parametrize(
    ("schema", "kind"), [("ShapeCreateRequest", "create"), ("ShapeUpdateRequest", "update")]
)
def test_the_style_copied_unchanged_is_refused(schema: str, kind: str) -> None:
    """The check above can fail: the client's style as it comes is what Miro refuses."""
    body = {**shape_body(shape(style=None)), "style": CLIENT_SHAPE["style"]}
    assert len(miro_schema_errors(schema, body)) == 2  # fontFamily and borderWidth
    assert len(sandbox_errors(kind, body)) == 2


def test_every_style_key_is_translated() -> None:
    assert translate_style(FULL_STYLE) == {
        "borderColor": "#aabbcc",
        "borderOpacity": "0.5",
        "borderStyle": "dashed",
        "borderWidth": "2",
        "color": "#1a1a1a",
        "fillColor": "#e2e3e4",
        "fillOpacity": "1",
        "fontFamily": "times_new_roman",
        "fontSize": "14",
        "textAlign": "center",
        "textAlignVertical": "middle",
    }


def test_a_translated_style_translates_to_itself() -> None:
    translated = translate_style(FULL_STYLE)
    assert translate_style(translated) == translated


@pytest.mark.parametrize(
    ("given", "font"),
    [
        ("Arial", "arial"),
        ("arial", "arial"),
        ("Open Sans", "open_sans"),
        ("open-sans", "open_sans"),
        ("OpenSans", "open_sans"),
        ("Times New Roman", "times_new_roman"),
        ("TIMES_new  roman", "times_new_roman"),
        ("PT Sans Narrow", "pt_sans_narrow"),
        ("EB-Garamond", "eb_garamond"),
    ],
)
def test_fonts_match_ignoring_case_and_separators(given: str, font: str) -> None:
    assert translate_style({"fontFamily": given}) == {"fontFamily": font}


def test_no_two_fonts_differ_only_by_separators() -> None:
    assert len({font.replace("_", "") for font in FONT_FAMILIES}) == len(FONT_FAMILIES)


@pytest.mark.parametrize("font", ["Comic Sans", "", "arial narrow", 12, ["arial"]])
def test_an_unknown_font_is_named_with_the_accepted_ones(font: object) -> None:
    error = refusal({"fontFamily": font})
    assert [problem.loc for problem in error.detail] == [("style", "fontFamily")]
    assert repr(font) in error.message
    assert all(name in error.message for name in FONT_FAMILIES)


def test_shape_body_refuses_an_unknown_font() -> None:
    with pytest.raises(ValidationFailed) as caught:
        shape_body(shape(style={"fontFamily": "Wingdings"}))
    assert caught.value.detail[0].loc == ("style", "fontFamily")
    assert "'Wingdings'" in caught.value.message


@pytest.mark.parametrize("key", NUMBER_KEYS)
@pytest.mark.parametrize(
    ("given", "text"),
    [
        (2, "2"),
        (0, "0"),
        (2.5, "2.5"),
        (1.0, "1"),
        (0.25, "0.25"),
        (14.0, "14"),
        ("2", "2"),
        ("0.5", "0.5"),
        ("1.0", "1.0"),
    ],
)
def test_numbers_become_numeric_strings(key: str, given: object, text: str) -> None:
    assert translate_style({key: given}) == {key: text}


@pytest.mark.parametrize("key", NUMBER_KEYS)
@pytest.mark.parametrize(
    "given", [True, False, math.nan, math.inf, -math.inf, "two", "", " 2", "nan", "1e999", [2]]
)
def test_other_values_of_number_keys_are_refused(key: str, given: object) -> None:
    error = refusal({key: given})
    assert [problem.loc for problem in error.detail] == [("style", key)]
    assert repr(given) in error.message


@pytest.mark.parametrize(
    ("key", "given", "word"),
    [
        ("textAlign", "Center", "center"),
        ("textAlign", "left", "left"),
        ("textAlignVertical", "MIDDLE", "middle"),
        ("textAlignVertical", "Bottom", "bottom"),
        ("borderStyle", "Dashed", "dashed"),
        ("borderStyle", "dotted", "dotted"),
    ],
)
def test_alignments_and_border_styles_are_lower_cased(key: str, given: str, word: str) -> None:
    assert translate_style({key: given}) == {key: word}


@pytest.mark.parametrize(
    ("key", "given", "accepted"),
    [
        ("textAlign", "justify", TEXT_ALIGNS),
        ("textAlign", "unknown", TEXT_ALIGNS),
        ("textAlignVertical", "centre", TEXT_ALIGNS_VERTICAL),
        ("borderStyle", "solid", BORDER_STYLES),
        ("borderStyle", 1, BORDER_STYLES),
    ],
)
def test_other_words_are_refused_with_the_accepted_ones(
    key: str, given: object, accepted: tuple[str, ...]
) -> None:
    error = refusal({key: given})
    assert [problem.loc for problem in error.detail] == [("style", key)]
    assert repr(given) in error.message
    assert all(word in error.message for word in accepted)


@pytest.mark.parametrize("key", ["borderColor", "color", "fillColor"])
@pytest.mark.parametrize(
    ("given", "color"),
    [
        ("#abc", "#aabbcc"),
        ("#AbC", "#AAbbCC"),
        ("#e2e3e4", "#e2e3e4"),
        ("#e2e3e4ff", "#e2e3e4ff"),
    ],
)
def test_colours_pass_and_short_hex_is_expanded(key: str, given: str, color: str) -> None:
    assert translate_style({key: given}) == {key: color}


def test_a_colour_that_is_not_a_string_is_refused() -> None:
    assert refusal({"fillColor": 0xFFFFFF}).detail[0].loc == ("style", "fillColor")


def test_keys_miro_does_not_have_are_dropped_and_logged() -> None:
    with capture_logs() as logs:
        translated = translate_style({"fillColor": "#fff", "shadow": True, "padding": 4})
    assert translated == {"fillColor": "#ffffff"}
    assert logs == [
        {"event": "shape.style_dropped", "keys": ["shadow", "padding"], "log_level": "debug"}
    ]


def test_nulls_count_as_not_given() -> None:
    with capture_logs() as logs:
        assert translate_style({"fontFamily": None, "borderWidth": 2}) == {"borderWidth": "2"}
    assert logs == []


@pytest.mark.parametrize("style", [None, {}, {"shadow": True}])
def test_a_body_without_a_style_left_has_none(style: dict[str, Any] | None) -> None:
    assert "style" not in shape_body(shape(style=style))


def test_rotation_and_text_are_left_out_when_not_given() -> None:
    given = {key: value for key, value in CLIENT_SHAPE.items() if key not in ("rotation", "text")}
    body = shape_body(msgspec.convert(given, ShapeData))
    assert body["data"] == {"shape": "round_rectangle"}
    assert body["geometry"] == {"width": 160, "height": 100}


# The constants against Miro's description.


def _enum(schema: str, key: str) -> list[str]:
    values: list[str] = miro_schema(schema)["properties"][key]["enum"]
    return values


def _listed(schema: str, key: str) -> list[str]:
    """The values the description lists in HTML (`<li>`) for a property, not as an enum."""
    description = miro_schema(schema)["properties"][key]["description"]
    return re.findall(r"<li>(\w+)</li>", description)


@pytest.mark.parametrize("schema", ["ShapeStyleForCreate", "ShapeStyleForUpdate"])
def test_style_constants_are_the_descriptions(schema: str) -> None:
    assert set(miro_schema(schema)["properties"]) == STYLE_KEYS
    assert list(FONT_FAMILIES) == _enum(schema, "fontFamily")
    assert list(BORDER_STYLES) == _enum(schema, "borderStyle")
    # Create lists `unknown` too: Miro answers it for shapes without text, never accepts it.
    assert list(TEXT_ALIGNS) == [v for v in _enum(schema, "textAlign") if v != "unknown"]
    assert list(TEXT_ALIGNS_VERTICAL) == [
        v for v in _enum(schema, "textAlignVertical") if v != "unknown"
    ]
    bounded = {key for key, spec in miro_schema(schema)["properties"].items() if "maximum" in spec}
    assert bounded == set(NUMBER_KEYS)


@pytest.mark.parametrize("schema", ["ShapeDataForCreate", "ShapeDataForUpdate"])
def test_shapes_are_the_descriptions(schema: str) -> None:
    assert list(SHAPES) == _listed(schema, "shape")
    assert list(TEXTLESS_SHAPES) == _listed(schema, "content")


def test_the_sandbox_knows_the_same_fonts_and_shapes() -> None:
    assert sandbox.FONT_FAMILIES == FONT_FAMILIES
    assert sandbox.BASIC_SHAPES + sandbox.FLOWCHART_SHAPES == SHAPES
