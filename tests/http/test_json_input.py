"""Bodies JSON cannot carry on: NaN and Infinity (422), lone surrogates, deep nesting and
integers of more digits than Python reads (400).

Every route that reads a JSON body refuses them before anything is stored or sent to Miro:
Python's `json` accepts all of them, and httpx then fails to encode them (a 500 whose
traceback once held the user's token).
"""

from __future__ import annotations

import json
import random

import pytest

from miro_bridge.errors import BadRequest
from miro_bridge.http.bodies import MAX_DEPTH, parse_json
from miro_bridge.store import client_logs, jobs
from tests.support import USER, Bridge, Miro, connect

H = {"X-User-Id": USER, "Content-Type": "application/json"}
SHAPE = '{"shape": "rectangle", "x": %s, "y": 0, "width": 100, "height": 50, "text": %s}'
ROUTES = {
    "shapes": ("POST", "/api/boards/{board}/shapes", "[" + SHAPE + "]"),
    "shape": ("PUT", "/api/boards/{board}/shapes/3458764500000000099", SHAPE),
    "ops": ("POST", "/api/boards/{board}/ops", '[{"op": "create", "data": ' + SHAPE + "}]"),
    "batch": (
        "POST",
        "/api/batch",
        '{"boardId": "{board}", "operations": [{"type": "create_shape", "data": ' + SHAPE + "}]}",
    ),
    "cards": ("POST", "/api/cards?boardId={board}", '[{"title": %s, "description": "x", "n": %s}]'),
    "logs": ("POST", "/api/logs", '[{"timestamp": %s, "level": "info", "message": %s}]'),
    "webhook": ("POST", "/api/webhook", '{"events": [{"event": "x", "n": %s, "data": %s}]}'),
    "users": ("POST", "/api/users", '{"id": "1", "name": %s, "access_token": %s}'),
}
BAD = {
    "NaN": ("NaN", '"a"', 422, "NaN and Infinity"),
    "Infinity": ("-Infinity", '"a"', 422, "NaN and Infinity"),
    "overflow": ("1e999", '"a"', 422, "NaN and Infinity"),
    "surrogate": ("1", '"\\ud800 lone"', 400, "surrogate"),
    # Python reads integers of up to 4,300 digits; this one was a 500.
    "digits": ("9" * 4301, '"a"', 400, "a number that cannot be read"),
}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def nothing_stored(bridge: Bridge) -> tuple[int, int, str]:
    """Operations queued, client log entries stored, webhook events counted."""
    queued = await bridge.actors.store.call(jobs.QueueLength())
    logs = await bridge.actors.store.call(client_logs.CountLogs())
    metrics = (await bridge.client.get("/metrics")).text
    events = [line for line in metrics.splitlines() if line.startswith("webhook_events_total")]
    return queued, logs, "".join(e for e in events if not e.endswith(" 0.0"))


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_every_json_route_refuses_what_json_cannot_carry(
    route: str, bridge: Bridge, miro: Miro
) -> None:
    await connect(bridge, miro)
    board = str(miro.sandbox.create_board(USER)["id"])
    method, path, template = ROUTES[route]
    path = path.replace("{board}", board)
    template = template.replace("{board}", board)
    before = len(miro.sandbox.requests())
    for name, (number, text, status, says) in BAD.items():
        body = template % (number, text)
        response = await bridge.client.request(method, path, content=body.encode(), headers=H)
        assert response.status_code == status, (name, response.text)
        error = response.json()
        assert error["code"] == ("validation_error" if status == 422 else "bad_request")
        assert error["requestId"] == response.headers["x-request-id"]
        assert says in error["message"], (name, error)
        if status == 422:
            assert error["detail"][0]["loc"][0] == "body"
    for depth in (MAX_DEPTH + 1, 100_000):
        response = await bridge.client.request(
            method, path, content=nested(depth).encode(), headers=H
        )
        assert response.status_code == 400, (depth, response.text)
        assert f"deeper than {MAX_DEPTH}" in response.json()["message"]
    assert await nothing_stored(bridge) == (0, 0, "")
    assert len(miro.sandbox.requests()) == before


async def test_nesting_up_to_the_limit_is_parsed(bridge: Bridge) -> None:
    # 64 levels is JSON the routes read (here: an array of log entries that are not objects).
    response = await bridge.client.post("/api/logs", content=nested(MAX_DEPTH).encode(), headers=H)
    assert response.status_code == 422
    assert response.json()["message"].startswith("body.0:")


async def test_wide_bodies_and_the_largest_integers_are_parsed(bridge: Bridge) -> None:
    # More brackets than levels allowed, but shallow: read (here: entries that are not objects).
    wide = "[" + ",".join(["[[]]"] * 100) + "]"
    response = await bridge.client.post("/api/logs", content=wide.encode(), headers=H)
    assert response.status_code == 422
    assert response.json()["message"].startswith("body.0:")
    # The longest integer Python reads is read, and then judged by the route (too long a value).
    entry = '[{"timestamp": "t", "level": "info", "message": "m", "context": {"n": %s}}]'
    response = await bridge.client.post(
        "/api/logs", content=(entry % ("9" * 4300)).encode(), headers=H
    )
    assert response.status_code == 413, response.text
    assert "context value over 1024 characters" in response.json()["message"]


async def test_the_field_of_a_non_finite_number_is_named(bridge: Bridge) -> None:
    body = '[{"op": "create", "data": {"shape": "circle", "x": 1, "y": Infinity}}]'
    response = await bridge.client.post("/api/boards/b1/ops", content=body.encode(), headers=H)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", 0, "data", "y"]


async def test_bodies_of_many_brackets_are_read_at_their_depth(bridge: Bridge, miro: Miro) -> None:
    # A body of more than 64 brackets has its depth read from its bytes, or walked when a
    # string holds a bracket or an escape: brackets inside strings are text, not levels.
    await connect(bridge, miro)
    board = str(miro.sandbox.create_board(USER)["id"])
    shape = {"shape": "rectangle", "x": 0, "y": 0, "width": 100, "height": 50}
    for text in ("plain", "[" * 70 + "{" * 70, "two\nlines"):
        op = {"type": "create_shape", "data": {**shape, "text": text}}
        body = json.dumps({"boardId": board, "operations": [op] * 40})
        response = await bridge.client.post("/api/batch", content=body.encode(), headers=H)
        assert response.status_code == 202, (text, response.text)
        assert response.json()["enqueued"] == 40
    # 65 levels are refused whether the strings inside hold brackets, an escape, or neither.
    for inner in ('"[{"', '"\\n"', "1"):
        deep = "[" * (MAX_DEPTH + 1) + inner + "]" * (MAX_DEPTH + 1)
        response = await bridge.client.post("/api/batch", content=deep.encode(), headers=H)
        assert response.status_code == 400, (inner, response.text)
        assert f"deeper than {MAX_DEPTH}" in response.json()["message"]


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _random_json(rng: random.Random, depth: int, letters: str) -> object:
    """A value nested `depth` deep along one path, with leaves and shallow siblings beside it;
    its strings of `letters`."""
    if depth == 0:
        return rng.choice([rng.randint(-5, 5), 0.5, None, True, _text(rng, letters)])
    children = [_random_json(rng, depth - 1, letters)]
    for _ in range(rng.randint(0, 2)):
        children.append(_random_json(rng, rng.randint(0, min(depth - 1, 2)), letters))
    rng.shuffle(children)
    if rng.random() < 0.5:
        return children
    return {_text(rng, letters) + str(i): child for i, child in enumerate(children)}


def _text(rng: random.Random, letters: str) -> str:
    return "".join(rng.choices(letters, k=rng.randint(0, 4)))


def test_the_depth_read_from_the_bytes_is_the_depth_of_the_value() -> None:
    # Bodies of every kind around the limit (strings with brackets, quotes, escapes, or none)
    # are read, or refused as too deep, exactly as the depth of their value says.
    rng = random.Random(16)
    kinds = {"plain": "ab é", "brackets": "ab[]{} é", "escapes": 'ab[]{}"\\\n é'}
    seen = set()
    for n in range(600):
        kind = sorted(kinds)[n % 3]
        value = _random_json(rng, rng.randint(MAX_DEPTH - 3, MAX_DEPTH + 3), kinds[kind])
        for data in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
            if _depth(value) > MAX_DEPTH:
                with pytest.raises(BadRequest, match=f"deeper than {MAX_DEPTH}"):
                    parse_json(data.encode())
            else:
                assert parse_json(data.encode()) == value
        seen.add((kind, _depth(value) > MAX_DEPTH))
    assert seen == {(kind, deep) for kind in kinds for deep in (False, True)}
