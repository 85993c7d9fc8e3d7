"""`/openapi.json` describes what the routes really accept."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from tests.support import USER, Bridge, Miro, connect, shape

H = {"X-User-Id": USER}


def request_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    """The documented JSON body schema of an operation, its `$ref`s resolvable."""
    body = document["paths"][path][method]["requestBody"]["content"]["application/json"]
    return {**body["schema"], "components": document.get("components", {})}


async def test_bodies_the_routes_accept_match_the_document(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro)
    board = str(miro.sandbox.create_board(USER)["id"])
    document = (await bridge.client.get("/openapi.json")).json()
    card = {"title": "t", "tags": ["a"], "style": {"cardTheme": "#2d9bf0"}}
    accepted: list[tuple[str, str, str, Any]] = [
        (
            "/api/batch",
            "/api/batch",
            "post",
            {
                "boardId": board,
                "operations": [
                    {"type": "create_shape", "data": shape(1)},
                    {"type": "update_shape", "itemId": "1", "data": shape(2)},
                    {"type": "delete_shape", "itemId": "1", "boardId": board},
                    {"type": "create_card", "data": card},
                    {"type": "update_card", "itemId": "2", "data": {"title": "u"}},
                    {"type": "update_card", "card_id": "2", "payload": {"description": "d"}},
                    {"type": "delete_item", "itemId": "3"},
                    {"type": "create_node", "node_id": "n1", "data": shape(3)},
                ],
            },
        ),
        (
            f"/api/boards/{board}/ops",
            "/api/boards/{board_id}/ops",
            "post",
            [
                {"op": "create", "data": shape(1)},
                {"op": "create", "data": {"id": "n1", "label": "L", "type": "T"}},
                {"op": "update", "id": "1", "data": shape(2)},
                {"op": "update", "id": "n1", "data": {"id": "n1", "label": "M", "type": "T"}},
                {"op": "delete", "id": "1"},
            ],
        ),
        (f"/api/cards?boardId={board}", "/api/cards", "post", [card, {"title": "x"}]),
        (f"/api/boards/{board}/shapes", "/api/boards/{board_id}/shapes", "post", shape(4)),
        (f"/api/boards/{board}/shapes", "/api/boards/{board_id}/shapes", "post", [shape(5)]),
        (
            "/api/logs",
            "/api/logs",
            "post",
            [
                {"timestamp": "2026-11-27T10:00:00Z", "level": "WARN", "message": "m"},
                {"timestamp": 1764237600000, "level": "info", "message": "n", "context": {"a": 1}},
            ],
        ),
        ("/api/webhook", "/api/webhook", "post", {"challenge": "c"}),
        ("/api/webhook", "/api/webhook", "post", {"events": [{"event": "e", "data": {}}]}),
        ("/api/webhook", "/api/webhook", "post", {"event": {"event": "e", "data": {}}}),
    ]
    for url, template, method, body in accepted:
        response = await bridge.client.request(method, url, json=body, headers=H)
        assert response.status_code < 300, (url, body, response.text)
        jsonschema.validate(body, request_schema(document, template, method))


async def test_openapi_document_describes_bodies_whole(bridge: Bridge) -> None:
    document = (await bridge.client.get("/openapi.json")).json()
    text = json.dumps(document)
    components = document.get("components", {}).get("schemas", {})
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert refs  # nested models are referred to...
    assert refs <= set(components)  # ...and every reference resolves
    paths = document["paths"]

    def body(path: str, method: str, status: str | None = None) -> dict[str, Any]:
        operation = paths[path][method]
        holder = operation["requestBody"] if status is None else operation["responses"][status]
        schema: dict[str, Any] = holder["content"]["application/json"]["schema"]
        return schema

    tags = body("/api/boards/{board_id}/tags", "get", "200")
    assert tags == {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}}
    assert body("/api/cards", "post")["type"] == "array"
    one_or_many = body("/api/boards/{board_id}/shapes", "post")["anyOf"]
    assert [schema.get("type") for schema in one_or_many] == ["array", None]
    assert body("/api/boards/{board_id}/shapes", "post", "201")["type"] == "array"
    assert body("/api/cache/{board_id}", "get", "200")["title"] == "CachedBoard"
    for operations in paths.values():  # every route documents its success and error bodies
        for operation in operations.values():
            assert any(status[0] in "23" for status in operation["responses"]), operation
            for statuses in ("4XX", "5XX"):
                failed = operation["responses"][statuses]["content"]["application/json"]
                assert failed["schema"]["required"] == ["code", "message", "requestId"]
