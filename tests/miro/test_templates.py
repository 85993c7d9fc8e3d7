"""Diagram nodes drawn from the client's templates: loading a file, lookup, text, placement."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from miro_bridge.errors import ConfigError
from miro_bridge.miro.shapes import ShapeData, shape_body
from miro_bridge.miro.templates import (
    DEFAULT_TEMPLATE,
    GRID_GAP,
    NodeDefinition,
    Templates,
    load_templates,
    node_shapes,
)
from miro_bridge.sandbox import _validation as sandbox
from tests.support import miro_schema_errors

#: A template file in the client's own format: two types, an alias, style presets.
CLIENT_TEMPLATES = {
    "Process": {
        "elements": [
            {
                "shape": "round_rectangle",
                "width": 160,
                "height": 100,
                "style": {
                    "fillColor": "#e2e3e4",
                    "fontFamily": "Arial",
                    "borderColor": "#939598",
                    "borderWidth": 2,
                },
                "text": "{{label}}",
            }
        ],
        "alias": ["Step"],
    },
    "Decision": {
        "elements": [
            {
                "shape": "rhombus",
                "width": 120,
                "height": 120,
                "style": {"fillColor": "#fc0", "textAlign": "Center", "fontSize": 12.0},
                "text": "{{ label }}?",
            }
        ]
    },
    "stylePresets": {"process": {"fillColor": "#e2e3e4"}, "decision": {"fillColor": "#fc0"}},
}

GOOD = {"shape": "circle", "width": 80, "height": 80}
ONE_ELEMENT = json.dumps({"elements": [GOOD]})

PROCESS_STYLE = {
    "fillColor": "#e2e3e4",
    "fontFamily": "arial",
    "borderColor": "#939598",
    "borderWidth": "2",
}


def write(tmp_path: Path, document: object) -> Path:
    """`document` as a JSON template file."""
    path = tmp_path / "templates.json"
    path.write_text(json.dumps(document))
    return path


def load(tmp_path: Path, document: object = CLIENT_TEMPLATES) -> Templates:
    """The templates of `document`, which must load without warnings."""
    templates, warnings = load_templates(write(tmp_path, document))
    assert warnings == []
    return templates


def node(type: str, label: str = "Alpha", **fields: Any) -> NodeDefinition:
    """A node as the client sends it, converted as the routes convert bodies."""
    given = {"id": f"n-{label}", "label": label, "type": type, **fields}
    converted: NodeDefinition = msgspec.convert(given, NodeDefinition)
    return converted


def problems(path: Path) -> list[str]:
    """The problems `load_templates` finds with the file at `path`."""
    with pytest.raises(ConfigError) as caught:
        load_templates(path)
    return list(caught.value.problems)


def overlap(a: ShapeData, b: ShapeData) -> bool:
    """Whether two items (positioned by their centres) overlap."""
    return abs(a.x - b.x) * 2 < a.width + b.width and abs(a.y - b.y) * 2 < a.height + b.height


def test_nodes_are_drawn_from_their_templates(tmp_path: Path) -> None:
    templates = load(tmp_path)
    assert templates.names == ["Decision", "Process"]
    process, step, decision, unknown = node_shapes(
        [node("Process"), node("Step", "Beta"), node("Decision", "Ship"), node("Actor", "Bob")],
        templates,
    )
    assert (process.shape, process.width, process.height) == ("round_rectangle", 160, 100)
    assert (process.text, process.style) == ("Alpha", PROCESS_STYLE)
    assert (step.shape, step.text, step.style) == ("round_rectangle", "Beta", PROCESS_STYLE)
    assert (decision.shape, decision.width, decision.height) == ("rhombus", 120, 120)
    assert decision.text == "Ship?"
    assert decision.style == {"fillColor": "#ffcc00", "textAlign": "center", "fontSize": "12"}
    assert (unknown.shape, unknown.width, unknown.height) == ("round_rectangle", 160, 100)
    assert (unknown.text, unknown.style) == ("Bob", None)


def test_drawn_shapes_are_valid_for_miro(tmp_path: Path) -> None:
    nodes = [node(kind) for kind in ("Process", "Step", "Decision", "Actor")]
    for shape in node_shapes(nodes, load(tmp_path)):
        body = shape_body(shape)
        assert miro_schema_errors("ShapeCreateRequest", body) == []
        assert sandbox.CREATE["shape"](body, "") == []


@pytest.mark.parametrize("kind", ["process", "PROCESS", " Process ", "step", "STEP"])
def test_lookup_falls_back_to_ignoring_case(tmp_path: Path, kind: str) -> None:
    assert load(tmp_path).template_for(kind).name == "Process"


def test_an_unknown_type_and_no_file_draw_the_default(tmp_path: Path) -> None:
    assert load(tmp_path).template_for("stylePresets") is DEFAULT_TEMPLATE
    [shape] = node_shapes([node("Process", "Alpha")], Templates.builtin())
    assert shape == ShapeData("round_rectangle", 0, 0, 160, 100, text="Alpha")


@pytest.mark.parametrize(
    ("text", "label", "shown"),
    [
        ("{{label}}", "Alpha", "Alpha"),
        ("Step: {{label}} ({{ label }})", "Alpha", "Step: Alpha (Alpha)"),
        ("Fixed", "Alpha", "Fixed"),
        ("{{label}}", r"C:\new \1 $& {{label}}", r"C:\new \1 $& {{label}}"),
        (None, "Alpha", "Alpha"),
    ],
)
def test_the_label_fills_the_text(tmp_path: Path, text: str | None, label: str, shown: str) -> None:
    element: dict[str, Any] = {"shape": "circle", "width": 80, "height": 80}
    if text is not None:
        element["text"] = text
    templates = load(tmp_path, {"Round": {"elements": [element]}})
    assert node_shapes([node("Round", label)], templates)[0].text == shown


def test_a_shape_without_text_shows_no_label(tmp_path: Path) -> None:
    element = {"shape": "flow_chart_or", "width": 40, "height": 40, "text": "{{label}}"}
    templates, warnings = load_templates(write(tmp_path, {"Or": {"elements": [element]}}))
    assert len(warnings) == 1
    assert "'Or'" in warnings[0]
    assert "flow_chart_or" in warnings[0]
    [shape] = node_shapes([node("Or")], templates)
    assert shape.text is None
    assert "content" not in shape_body(shape)["data"]


def test_a_nodes_own_size_and_position_win(tmp_path: Path) -> None:
    templates = load(tmp_path)
    [shape] = node_shapes([node("Process", x=500, y=-20, width=300, height=50)], templates)
    assert (shape.x, shape.y, shape.width, shape.height) == (500, -20, 300, 50)


@pytest.mark.parametrize(("width", "height"), [(0, -1), (None, None)])
def test_a_size_that_is_not_positive_is_the_templates(
    tmp_path: Path, width: float | None, height: float | None
) -> None:
    [shape] = node_shapes([node("Decision", width=width, height=height)], load(tmp_path))
    assert (shape.width, shape.height) == (120, 120)


def test_the_styles_of_shapes_drawn_are_not_shared(tmp_path: Path) -> None:
    first, second = node_shapes([node("Process"), node("Process")], load(tmp_path))
    assert first.style is not None
    first.style["fillColor"] = "#000000"
    assert second.style == PROCESS_STYLE


def _mixed_nodes(count: int) -> list[NodeDefinition]:
    """Nodes of the three kinds and some sizes of their own, without positions."""
    sizes = itertools.cycle([{}, {"width": 400}, {"height": 250}, {"width": 30, "height": 30}])
    kinds = itertools.cycle(["Process", "Decision", "Actor"])
    return [node(next(kinds), f"n{i}", **next(sizes)) for i in range(count)]


@pytest.mark.parametrize("count", [1, 2, 5, 17])
def test_nodes_without_a_position_do_not_overlap(tmp_path: Path, count: int) -> None:
    shapes = node_shapes(_mixed_nodes(count), load(tmp_path))
    assert len(shapes) == count
    for a, b in itertools.combinations(shapes, 2):
        assert not overlap(a, b), (a, b)
        gap_x = abs(a.x - b.x) - (a.width + b.width) / 2
        gap_y = abs(a.y - b.y) - (a.height + b.height) / 2
        assert max(gap_x, gap_y) >= GRID_GAP


def test_the_grid_is_square_and_centred_on_the_origin(tmp_path: Path) -> None:
    shapes = node_shapes([node("Process", f"n{i}") for i in range(5)], load(tmp_path))
    assert len({shape.x for shape in shapes}) == 3  # ceil(sqrt(5)) columns
    assert len({shape.y for shape in shapes}) == 2
    assert min(s.x for s in shapes) == -max(s.x for s in shapes)
    assert min(s.y for s in shapes) == -max(s.y for s in shapes)
    [single] = node_shapes([node("Process")], load(tmp_path))
    assert (single.x, single.y) == (0, 0)


def test_the_grid_keeps_clear_of_positioned_nodes(tmp_path: Path) -> None:
    placed = [node("Process", "p1", x=0, y=0), node("Decision", "p2", x=-300, y=200)]
    nodes = [*placed, *_mixed_nodes(9)]
    shapes = node_shapes(nodes, load(tmp_path))
    assert [(s.x, s.y) for s in shapes[:2]] == [(0, 0), (-300, 200)]
    for a, b in itertools.combinations(shapes, 2):
        assert not overlap(a, b), (a, b)


def test_a_node_with_one_coordinate_is_placed_on_the_grid(tmp_path: Path) -> None:
    shapes = node_shapes(
        [node("Process", "a", x=0, y=0), node("Process", "b", x=0)], load(tmp_path)
    )
    assert not overlap(shapes[0], shapes[1])


def test_extra_elements_are_ignored_with_a_warning(tmp_path: Path) -> None:
    first = {"shape": "circle", "width": 80, "height": 80}
    icon = {"shape": "star", "width": 20, "height": 20}
    templates, warnings = load_templates(
        write(tmp_path, {"Actor": {"elements": [first, icon, icon]}})
    )
    assert len(warnings) == 1
    assert "'Actor'" in warnings[0]
    assert "2 more ignored" in warnings[0]
    assert templates.template_for("Actor").shape == "circle"


def test_style_keys_miro_does_not_have_are_ignored_with_a_warning(tmp_path: Path) -> None:
    element = {
        "shape": "circle",
        "width": 80,
        "height": 80,
        "style": {"shadow": 1, "color": "#f00"},
    }
    templates, warnings = load_templates(write(tmp_path, {"Actor": {"elements": [element]}}))
    assert len(warnings) == 1
    assert "shadow" in warnings[0]
    assert templates.template_for("Actor").style == {"color": "#ff0000"}


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        ([GOOD], ["must be a JSON object of templates"]),
        ({"A": "circle"}, ["'A'", "must be an object"]),
        ({"A": {"alias": ["B"]}}, ["'A'", 'has no "elements"']),
        ({"A": {"elements": []}}, ["'A'", '"elements" is empty']),
        ({"A": {"elements": GOOD}}, ["'A'", '"elements" must be a list']),
        ({"A": {"elements": ["circle"]}}, ["'A', element 0", "must be an object"]),
        ({"A": {"elements": [{"width": 1, "height": 1}]}}, ["'A', element 0", 'no "shape"']),
        ({"A": {"elements": [{**GOOD, "shape": "blob"}]}}, ["'blob'", "round_rectangle"]),
        ({"A": {"elements": [{**GOOD, "width": 0}]}}, ["'A', element 0", "width", "0"]),
        ({"A": {"elements": [{**GOOD, "height": "80"}]}}, ["height", "'80'"]),
        ({"A": {"elements": [{**GOOD, "width": True}]}}, ["width", "True"]),
        ({"A": {"elements": [{"shape": "circle", "height": 8}]}}, ["width", "None"]),
        ({"A": {"elements": [{**GOOD, "text": 5}]}}, ["'A', element 0", "text", "5"]),
        ({"A": {"elements": [{**GOOD, "style": "red"}]}}, ["style must be an object"]),
        (
            {"A": {"elements": [{**GOOD, "style": {"fontFamily": "Comic Sans"}}]}},
            ["'A', element 0", "style.fontFamily", "'Comic Sans'", "open_sans"],
        ),
        (
            {"A": {"elements": [{**GOOD, "style": {"borderWidth": "thick"}}]}},
            ["style.borderWidth", "'thick'"],
        ),
        ({"A": {"elements": [GOOD], "alias": "B"}}, ["'A'", '"alias" must be a list']),
        ({"A": {"elements": [GOOD], "alias": [1]}}, ['"alias" must be a list']),
        ({"A": {"elements": [GOOD], "alias": [""]}}, ['"alias" must be a list']),
        ({" ": {"elements": [GOOD]}}, ["must not be blank"]),
        (
            {"A": {"elements": [GOOD], "alias": ["X"]}, "B": {"elements": [GOOD], "alias": ["X"]}},
            ["'B'", "alias 'X' is already an alias of template 'A'"],
        ),
        (
            {"A": {"elements": [GOOD], "alias": ["B"]}, "B": {"elements": [GOOD]}},
            ["'A'", "alias 'B' is already the name of template 'B'"],
        ),
        (
            {"A": {"elements": [GOOD], "alias": ["X", "X"]}},
            ["alias 'X' is already an alias of template 'A'"],
        ),
        (
            {"Actor": {"elements": [GOOD]}, "B": {"elements": [GOOD], "alias": ["actor"]}},
            ["'actor' and 'Actor'", "differ only in case"],
        ),
    ],
)
def test_a_bad_file_is_refused_with_the_template_at_fault(
    tmp_path: Path, document: object, fragments: list[str]
) -> None:
    [problem] = problems(write(tmp_path, document))
    assert problem.startswith(f"{tmp_path / 'templates.json'}: ")
    for fragment in fragments:
        assert fragment in problem


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"A": {"elements": [', "is not JSON"),
        (f'{{"A": {ONE_ELEMENT}, "A": {ONE_ELEMENT}}}', "'A': is defined twice"),
        (
            '{"A": {"elements": [{"shape": "circle", "shape": "star", "width": 1, "height": 1}]}}',
            "key 'shape' is given twice",
        ),
    ],
)
def test_a_file_that_is_not_one_json_object_is_refused(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "templates.json"
    path.write_text(text)
    [problem] = problems(path)
    assert fragment in problem


def test_a_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    [missing] = problems(tmp_path / "absent.json")
    assert "absent.json: cannot be read" in missing
    (tmp_path / "latin1.json").write_bytes(b'{"Caf\xe9": {}}')
    [latin1] = problems(tmp_path / "latin1.json")
    assert "not UTF-8" in latin1


def test_every_problem_of_a_file_is_listed_at_once(tmp_path: Path) -> None:
    document = {
        "NoElements": {"alias": ["Gone"]},
        "BadElement": {"elements": [{"shape": "blob", "width": -1, "height": 10, "text": 1}]},
        "BadStyle": {
            "elements": [{**GOOD, "style": {"fontFamily": "Comic Sans", "textAlign": "justify"}}],
            "alias": ["Gone"],
        },
        "Fine": {"elements": [GOOD], "alias": ["Fine"]},
        "stylePresets": {"anything": "goes"},
    }
    found = problems(write(tmp_path, document))
    assert len(found) == 8, found
    for fragment in [
        "'NoElements': has no",
        "'BadElement', element 0: shape 'blob'",
        "'BadElement', element 0: width",
        "'BadElement', element 0: text",
        "'BadStyle', element 0: style.fontFamily",
        "'BadStyle', element 0: style.textAlign",
        "'BadStyle': alias 'Gone' is already an alias of template 'NoElements'",
        "'Fine': alias 'Fine' is already the name of template 'Fine'",
    ]:
        assert sum(fragment in problem for problem in found) == 1, fragment
    assert not any("stylePresets" in problem for problem in found)


def test_node_definitions_convert_like_bodies() -> None:
    given = {"id": "n1", "label": "Alpha", "type": "Process", "metadata": {"row": 3}, "x": 1}
    assert msgspec.convert(given, NodeDefinition) == NodeDefinition(
        "n1", "Alpha", "Process", {"row": 3}, x=1
    )
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"id": "n1", "type": "Process"}, NodeDefinition)
