"""Diagram nodes drawn as shapes from the client's templates.

The client's NodeDefinition (`{"id", "label", "type", "metadata"?, "x"?, "y"?, "width"?,
"height"?}`) is drawn as one Miro shape, chosen by `type` among the templates of the file named
by `MIRO_SHAPE_TEMPLATES`, in the client's own format::

    {"Process": {"elements": [{"shape": "round_rectangle", "width": 160, "height": 100,
                               "style": {"fillColor": "#e2e3e4", "fontFamily": "Arial"},
                               "text": "{{label}}"}],
                 "alias": ["Step"]},
     "stylePresets": {...}}

`load_templates` refuses a file (one `ConfigError` listing every problem, each naming the
template and element) that cannot be read or is not a JSON object; a template that is not an
object, or has no `elements`, or an empty list; a first element without `shape` or with one that
is not Miro's (`SHAPES`), without a positive number for `width` or `height`, with a `text` that
is not a string or a style `translate_style` refuses; an `alias` that is not a list of non-blank
strings; a name or alias used twice; a key given twice in one object. `null` counts as absent.

Rules where the client's format says nothing:

- A top-level `stylePresets` is ignored (its values are already resolved into the styles).
- A template draws one shape, its first element: further elements are ignored, with a warning
  from `load_templates`. Keys of a template or element other than those above are ignored.
- Styles are in the web SDK's vocabulary and translated (`translate_style`) when the file is
  loaded, so a style Miro would refuse (an unknown font) is a problem of the file, not of every
  node drawn from it; style keys Miro does not have are dropped with a warning.
- Lookup of a node's `type`: a template name, then an alias, spelled exactly; failing that,
  names then aliases compared case-insensitively, ignoring surrounding whitespace. A file whose
  names or aliases are the same or differ only in case is refused, so the lookup never has to
  choose. An unknown type, or no file, draws `DEFAULT_TEMPLATE`: a 160x100 round_rectangle.
- Text: `{{label}}` (spaces inside the braces allowed) in the element's `text` becomes the
  node's label; an element without `text` shows the label. The two shapes Miro gives no text
  (`TEXTLESS_SHAPES`) are drawn without one, with a warning when the file is loaded.
- Size and position: the node's own `width`/`height`, when a positive number, win over the
  template's. A node giving both `x` and `y` keeps them (Miro positions are item centres).
  The others are placed on a grid, in the order given: `ceil(sqrt(n))` columns of cells as
  large as the largest of them plus `GRID_GAP`, each node centred in its cell. The grid is
  centred on the board's origin, or, when some nodes of the call have positions, starts
  `GRID_GAP` below their bounding box at its left edge; so no node of one call overlaps another
  (except positioned nodes among themselves, which are where the client put them).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from miro_bridge.errors import ConfigError, ValidationFailed
from miro_bridge.miro.shapes import (
    SHAPES,
    STYLE_KEYS,
    TEXTLESS_SHAPES,
    ShapeData,
    translate_style,
)

GRID_GAP = 40.0
"""Space between the cells of the grid that unpositioned nodes are placed on."""

STYLE_PRESETS = "stylePresets"
"""The top-level key of the client's template file that is not a template."""

_LABEL = re.compile(r"\{\{\s*label\s*\}\}")


@attrs.frozen
class NodeDefinition:
    """A diagram node as the Node client describes it (from its Excel or graph import)."""

    id: str
    label: str
    type: str
    metadata: dict[str, Any] | None = None
    x: float | None = None
    y: float | None = None
    width: float | None = None
    height: float | None = None


@attrs.frozen
class Template:
    """What a template draws: a shape, its size, its style (already Miro's) and its text."""

    name: str
    shape: str
    width: float
    height: float
    style: Mapping[str, Any] = attrs.field(factory=dict)
    text: str | None = None

    def text_for(self, label: str) -> str:
        """The shape's text for a node labelled `label`."""
        if self.text is None:
            return label
        return _LABEL.sub(lambda _: label, self.text)


DEFAULT_TEMPLATE = Template("default", "round_rectangle", 160.0, 100.0)
"""What a node of an unknown type is drawn as: a 160x100 round_rectangle showing its label."""


def _fold(name: str) -> str:
    return name.strip().casefold()


@attrs.frozen
class Templates:
    """The templates by name and alias (`by_name`); see the module docstring for the lookup."""

    by_name: Mapping[str, Template] = attrs.field(factory=dict)
    warnings: tuple[str, ...] = attrs.field(default=(), eq=False)
    """What of the file was ignored (`load_templates`), for the start-up log."""
    _folded: Mapping[str, Template] = attrs.field(init=False, repr=False, eq=False)

    @_folded.default
    def _fold_names(self) -> Mapping[str, Template]:
        folded: dict[str, Template] = {}
        for name, template in self.by_name.items():
            folded.setdefault(_fold(name), template)
        return folded

    @classmethod
    def builtin(cls) -> Templates:
        """No template file: every node is drawn as `DEFAULT_TEMPLATE`."""
        return cls()

    @property
    def names(self) -> list[str]:
        """The templates' names (not their aliases), sorted."""
        return sorted({template.name for template in self.by_name.values()})

    def template_for(self, node_type: str) -> Template:
        """The template that draws nodes of `node_type`."""
        found = self.by_name.get(node_type) or self._folded.get(_fold(node_type))
        return found or DEFAULT_TEMPLATE


def node_shapes(nodes: Sequence[NodeDefinition], templates: Templates) -> list[ShapeData]:
    """Each node as a ShapeData, in order; nodes without a position placed on a grid."""
    drawn = [templates.template_for(node.type) for node in nodes]
    sizes = [
        (_size(node.width, template.width), _size(node.height, template.height))
        for node, template in zip(nodes, drawn, strict=True)
    ]
    centres: dict[int, tuple[float, float]] = {}
    loose: list[int] = []
    for i, node in enumerate(nodes):
        if node.x is not None and node.y is not None:
            centres[i] = (node.x, node.y)
        else:
            loose.append(i)
    boxes = [_box(centre, sizes[i]) for i, centre in centres.items()]
    grid = _grid([sizes[i] for i in loose], boxes)
    centres.update(zip(loose, grid, strict=True))
    return [
        ShapeData(
            shape=template.shape,
            x=centres[i][0],
            y=centres[i][1],
            width=sizes[i][0],
            height=sizes[i][1],
            text=None if template.shape in TEXTLESS_SHAPES else template.text_for(node.label),
            style=dict(template.style) or None,
        )
        for i, (node, template) in enumerate(zip(nodes, drawn, strict=True))
    ]


def _size(given: float | None, default: float) -> float:
    return given if given is not None and math.isfinite(given) and given > 0 else default


def _box(centre: tuple[float, float], size: tuple[float, float]) -> tuple[float, float, float]:
    """The left, top and bottom edges of an item."""
    (x, y), (width, height) = centre, size
    return x - width / 2, y - height / 2, y + height / 2


def _grid(
    sizes: Sequence[tuple[float, float]], taken: Sequence[tuple[float, float, float]]
) -> list[tuple[float, float]]:
    """Centres for items of `sizes` on a grid clear of the boxes `taken` (left, top, bottom)."""
    if not sizes:
        return []
    columns = math.ceil(math.sqrt(len(sizes)))
    rows = math.ceil(len(sizes) / columns)
    inner_width = max(width for width, _ in sizes)
    inner_height = max(height for _, height in sizes)
    cell_width, cell_height = inner_width + GRID_GAP, inner_height + GRID_GAP
    if taken:
        left = min(box[0] for box in taken)
        top = max(box[2] for box in taken) + GRID_GAP
    else:
        left = -(columns * cell_width - GRID_GAP) / 2
        top = -(rows * cell_height - GRID_GAP) / 2
    return [
        (
            left + (i % columns) * cell_width + inner_width / 2,
            top + (i // columns) * cell_height + inner_height / 2,
        )
        for i in range(len(sizes))
    ]


# Loading a template file.


class _Twice:
    """A JSON object hook that keeps the keys each object gave more than once."""

    def __init__(self) -> None:
        # The objects are kept with their keys: an id is only unique while its object lives,
        # and the value a repeated key replaced is dropped by the parse.
        self.found: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                self.found.setdefault(id(obj), (obj, []))[1].append(key)
            obj[key] = value
        return obj

    def of(self, obj: object) -> list[str]:
        """The keys `obj` (an object of the parsed document) gave twice."""
        found = self.found.get(id(obj))
        return found[1] if found is not None and found[0] is obj else []


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@attrs.define
class _Reader:
    """Reads one template file, gathering every problem and warning on the way."""

    path: Path
    twice: _Twice
    problems: list[str] = attrs.Factory(list)
    warnings: list[str] = attrs.Factory(list)

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{self.path}: {where}: {message}")

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{self.path}: {where}: {message}")

    def duplicates(self, obj: object, where: str) -> None:
        for key in self.twice.of(obj):
            self.problem(where, f"key {key!r} is given twice")

    def templates(self, document: object) -> dict[str, tuple[Template | None, list[str]]]:
        """Each template of the document, None where it is bad, with its aliases."""
        if not isinstance(document, dict):
            self.problem("file", "must be a JSON object of templates by name")
            return {}
        for name in self.twice.of(document):
            self.problem(f"template {name!r}", "is defined twice")
        read: dict[str, tuple[Template | None, list[str]]] = {}
        for name, entry in document.items():
            if name != STYLE_PRESETS:
                read[name] = self.template(name, entry)
        return read

    def template(self, name: str, entry: object) -> tuple[Template | None, list[str]]:
        where = f"template {name!r}"
        if not name.strip():
            self.problem(where, "a template name must not be blank")
        if not isinstance(entry, dict):
            self.problem(where, 'must be an object with "elements" (and "alias")')
            return None, []
        self.duplicates(entry, where)
        aliases = self.aliases(where, entry.get("alias"))
        elements = entry.get("elements")
        if elements is None:
            self.problem(where, 'has no "elements"')
        elif not isinstance(elements, list):
            self.problem(where, '"elements" must be a list')
        elif not elements:
            self.problem(where, '"elements" is empty: a template draws its first element')
        else:
            if len(elements) > 1:
                ignored = len(elements) - 1
                self.warn(where, f"draws its first element only; {ignored} more ignored")
            return self.element(name, f"{where}, element 0", elements[0]), aliases
        return None, aliases

    def aliases(self, where: str, alias: object) -> list[str]:
        if alias is None:
            return []
        if not isinstance(alias, list) or not all(
            isinstance(name, str) and name.strip() for name in alias
        ):
            self.problem(where, f'"alias" must be a list of non-blank strings, got {alias!r}')
            return []
        return alias

    def element(self, name: str, where: str, element: object) -> Template | None:
        if not isinstance(element, dict):
            self.problem(where, "must be an object")
            return None
        self.duplicates(element, where)
        problems = len(self.problems)
        shape = element.get("shape")
        if shape is None:
            self.problem(where, 'has no "shape"')
        elif shape not in SHAPES:
            self.problem(where, f"shape {shape!r} is not one of Miro's: {', '.join(SHAPES)}")
        elif shape in TEXTLESS_SHAPES:
            self.warn(where, f"Miro's {shape} takes no text: nodes drawn from it show no label")
        for key in ("width", "height"):
            if not _positive(element.get(key)):
                self.problem(where, f"{key} must be a positive number, got {element.get(key)!r}")
        text = element.get("text")
        if text is not None and not isinstance(text, str):
            self.problem(where, f"text must be a string, got {text!r}")
        style = self.style(where, element.get("style"))
        if len(self.problems) > problems or shape is None:
            return None
        return Template(name, shape, float(element["width"]), float(element["height"]), style, text)

    def style(self, where: str, style: object) -> dict[str, Any]:
        if style is None:
            return {}
        if not isinstance(style, dict):
            self.problem(where, f"style must be an object, got {style!r}")
            return {}
        self.duplicates(style, f"{where}, style")
        dropped = [key for key in style if key not in STYLE_KEYS]
        if dropped:
            self.warn(where, f"style keys Miro does not have are ignored: {', '.join(dropped)}")
        translated: dict[str, Any] = {}
        for key, value in style.items():
            if key in STYLE_KEYS:
                try:
                    translated.update(translate_style({key: value}))
                except ValidationFailed as error:
                    self.problem(where, "; ".join(f"style.{key}: {p.msg}" for p in error.detail))
        return translated

    def names(self, read: Mapping[str, tuple[Template | None, list[str]]]) -> None:
        """Refuse a name or alias used twice, or two that differ only in case."""
        owners = {name: name for name in read}
        for name, (_, aliases) in read.items():
            for alias in aliases:
                if alias not in owners:
                    owners[alias] = name
                    continue
                used = "the name of" if alias in read else "an alias of"
                message = f"alias {alias!r} is already {used} template {owners[alias]!r}"
                self.problem(f"template {name!r}", message)
        first: dict[str, tuple[str, str]] = {}
        for spelling, owner in owners.items():
            other, other_owner = first.setdefault(_fold(spelling), (spelling, owner))
            if other_owner != owner:
                message = (
                    f"{spelling!r} and {other!r} (of template {other_owner!r}) differ only in case"
                )
                self.problem(f"template {owner!r}", message)


def load_templates(path: Path) -> tuple[Templates, list[str]]:
    """The templates of the file at `path`, and warnings about what of it is ignored.

    Raises `ConfigError` listing every problem of the file at once.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([f"{path}: cannot be read: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: is not UTF-8 text"]) from None
    twice = _Twice()
    try:
        document = json.loads(raw, object_pairs_hook=twice)
    except json.JSONDecodeError as error:
        raise ConfigError([f"{path}: is not JSON: {error}"]) from None
    reader = _Reader(path, twice)
    read = reader.templates(document)
    reader.names(read)
    if reader.problems:
        raise ConfigError(reader.problems)
    by_name: dict[str, Template] = {}
    for name, (template, aliases) in read.items():
        assert template is not None
        by_name[name] = template
        by_name.update(dict.fromkeys(aliases, template))
    return Templates(by_name, tuple(reader.warnings)), reader.warnings
