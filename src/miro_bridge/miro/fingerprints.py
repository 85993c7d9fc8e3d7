"""What a create body draws, to recognise it among a board's items after an answer was lost.

A bulk create whose answer never came back (a dropped connection, a killed process) may or may
not have been carried out. Before it is sent again, the items created since are listed and
matched against each body's fingerprint: its type, text, shape, position and size, as far as
the body gives them (what it leaves to Miro's defaults is not compared). Text is compared
without markup and with its spacing collapsed, as Miro may wrap it (`<p>...</p>`); numbers
to a hundredth.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

Fingerprint = tuple[tuple[str, object], ...]

_FIELDS: tuple[tuple[str, ...], ...] = (
    ("type",),
    ("data", "shape"),
    ("data", "content"),
    ("data", "title"),
    ("data", "description"),
    ("position", "x"),
    ("position", "y"),
    ("geometry", "width"),
    ("geometry", "height"),
    ("geometry", "rotation"),
)
_MARKUP = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_ABSENT = object()


def _at(body: Mapping[str, Any], path: Sequence[str]) -> object:
    value: object = body
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return _ABSENT
        value = value[key]
    return value


def _normal(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return round(float(value), 2)
    if isinstance(value, str):
        return _SPACE.sub(" ", html.unescape(_MARKUP.sub(" ", value))).strip()
    return repr(value)


def fingerprint(body: Mapping[str, Any]) -> Fingerprint:
    """The fields of a create body (with its `type`) that say what it draws."""
    return tuple(
        (".".join(path), _normal(value))
        for path in _FIELDS
        if (value := _at(body, path)) is not _ABSENT
    )


def matches(mark: Fingerprint, item: Mapping[str, Any]) -> bool:
    """Whether Miro's `item` has every field of `mark`, to the same value."""
    return all(_normal(_at(item, name.split("."))) == value for name, value in mark)


def pair(marks: Sequence[Fingerprint], items: Sequence[Mapping[str, Any]]) -> list[int | None]:
    """For each mark in order, the index of a distinct item it matches, or None.

    A multiset match: two identical bodies take two identical items, never the same one.
    """
    taken: set[int] = set()
    found: list[int | None] = []
    for mark in marks:
        index = next(
            (i for i, item in enumerate(items) if i not in taken and matches(mark, item)), None
        )
        if index is not None:
            taken.add(index)
        found.append(index)
    return found
