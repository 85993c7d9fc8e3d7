"""Small helpers the route modules share: reading, converting and answering JSON bodies.

Every JSON body is read by `parse_json`, which is stricter than `json.loads`: JSON text is
UTF-8, numbers are finite (`NaN`, `Infinity` and overflowing literals like `1e999` are 422:
Miro and httpx cannot send them on), strings are Unicode (a lone surrogate such as `\\ud800`
is 400: it cannot be encoded again), nesting stops at `MAX_DEPTH` levels (400), and an integer
Python cannot read (more than 4,300 digits) is 400. So nothing of such a request is stored or
sent anywhere. msgspec's decoder, which refuses all of these but the depth itself, reads a body
first; one it refuses is read again by `json.loads`, to say what is wrong with it.
"""

from __future__ import annotations

import array
import itertools
import json
import math
from collections.abc import Sequence
from typing import Any

import msgspec
from quart import Response
from quart_trio.wrappers import TrioRequest

from miro_bridge.errors import BadRequest, BridgeError, ValidationFailed
from miro_bridge.http.errors import field_problems

#: The deepest nesting of arrays and objects a JSON body may have.
MAX_DEPTH = 64
_TOO_DEEP = f"JSON nested deeper than {MAX_DEPTH} levels"


_DECODER = msgspec.json.Decoder()


def parse_json(data: bytes) -> Any:
    """The JSON value of `data`; `BadRequest` or `ValidationFailed` saying what is wrong."""
    try:
        value = _DECODER.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return _parse_refused(data)
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH:  # else it cannot nest that deep
        depth = _nesting(data)
        if depth is None:
            _check(value)  # the walk tells
        elif depth > MAX_DEPTH:
            raise BadRequest(_TOO_DEEP)
    return value


#: Every byte but quotes and brackets; and the step each bracket makes in depth (0xff: -1).
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _nesting(data: bytes) -> int | None:
    """How deep the arrays and objects of `data` (JSON msgspec has read) nest; None when
    the bytes alone cannot tell: a string holds a backslash escape, or a bracket.

    Without a backslash, every quote delimits a string. Of the quotes and brackets kept, the
    strings that hold no bracket are the `""` pairs, removed at once (`bytes.replace`). A
    string that holds a bracket always leaves a quote behind: the first such string's opening
    quote ends a run of quotes that began at an opening quote, an odd number of them. What is
    left then is the structure's brackets alone: the deepest running sum of +1 for each
    opening one and -1 for each closing one is the depth, all of it counted in C.
    """
    if b"\\" in data:
        return None
    structure = data.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in structure:
        return None
    steps = array.array("b", structure.translate(_STEPS))
    return max(itertools.accumulate(steps), default=0)


def _parse_refused(data: bytes) -> Any:
    """`data`, which msgspec refused, read by `json.loads` and `_check`: what is wrong with
    it, or (should the two disagree) its value."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not JSON: it is not UTF-8 text") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadRequest(
            f"the body is not JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except RecursionError:
        raise BadRequest(_TOO_DEEP) from None
    except ValueError as error:  # an integer of more digits than `int` reads
        raise BadRequest(f"the body holds a number that cannot be read: {error}") from None
    _check(value)
    return value


def _check(value: Any) -> None:
    """Refuse too deep nesting, lone surrogates and non-finite numbers in a parsed body."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                loc = ("body", *_path_to(value, item))
                raise ValidationFailed.at(loc, "NaN and Infinity are not JSON numbers")
        elif isinstance(item, (list, dict)):
            if depth >= MAX_DEPTH:
                raise BadRequest(_TOO_DEEP)
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = f"\\u{ord(text[error.start]):04x}"
        raise BadRequest(
            f"a JSON string holds a lone surrogate ({bad}): not Unicode text"
        ) from None


def _path_to(root: Any, target: float) -> list[str | int]:
    """Where in `root` the (non-finite) number `target` is; only called on failure."""
    stack: list[tuple[Any, list[str | int]]] = [(root, [])]
    while stack:
        item, path = stack.pop()
        if item is target:
            return path
        if isinstance(item, dict):
            stack.extend((child, [*path, key]) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, [*path, index]) for index, child in enumerate(item))
    return []


class JSONRequest(TrioRequest):
    """Quart-Trio's request, with JSON bodies read by `parse_json`."""

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """Parse the body as JSON (`parse_json`); None when it is not declared JSON."""
        if cache and self._cached_json[silent] is not Ellipsis:
            return self._cached_json[silent]
        if not (force or self.is_json):
            return None
        data = await self.get_data(cache=cache, as_text=False, parse_form_data=False)
        try:
            result = parse_json(data)
        except BridgeError:
            if not silent:
                raise
            result = None
        if cache:
            self._cached_json[silent] = result
        return result


def convert_body(data: object, kind: Any, loc: Sequence[str | int] = ("body",)) -> Any:
    """`data` (parsed JSON, found at `loc`) as `kind` (attrs classes, lists, unions).

    422 naming the field, under `loc`, if it is not one.
    """
    try:
        return msgspec.convert(data, kind, from_attributes=False)
    except msgspec.ValidationError as error:
        raise ValidationFailed.of(field_problems(error, loc)) from None


def json_response(body: object, status: int = 200) -> Response:
    """A JSON response."""
    return Response(json.dumps(body), status=status, content_type="application/json")
