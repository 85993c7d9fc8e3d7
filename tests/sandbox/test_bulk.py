"""Bulk creation: 1 to 20 items, all or nothing, priced per item."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from miro_bridge.sandbox import Sandbox

GOOD: list[dict[str, Any]] = [
    {"type": "shape", "data": {"shape": "circle"}, "position": {"x": 1, "y": 2}},
    {"type": "card", "data": {"title": "Task"}},
    {"type": "sticky_note", "data": {"content": "Note"}, "style": {"fillColor": "cyan"}},
    {"type": "text", "data": {"content": "Heading"}},
    {"type": "frame", "data": {"title": "Area"}},
]


async def item_count(client: httpx.AsyncClient, auth: dict[str, str], board_id: str) -> int:
    page = await client.get(f"/v2/boards/{board_id}/items", headers=auth)
    total: int = page.json()["total"]
    return total


async def test_bulk_creates_every_item_in_order(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str, sandbox: Sandbox
) -> None:
    response = await client.post(f"/v2/boards/{board_id}/items/bulk", json=GOOD, headers=auth)
    assert response.status_code == 201
    body = response.json()
    assert body["type"] == "bulk-list"
    assert [item["type"] for item in body["data"]] == [entry["type"] for entry in GOOD]
    assert body["data"][0]["data"]["shape"] == "circle"
    assert body["data"][2]["style"]["fillColor"] == "cyan"
    assert all(item["links"]["self"] for item in body["data"])
    assert await item_count(client, auth, board_id) == len(GOOD)
    bulk_call = next(r for r in sandbox.requests() if r["path"].endswith("/items/bulk"))
    assert bulk_call["credits"] == 100 * len(GOOD)
    assert response.headers["X-RateLimit-Remaining"] == str(100_000 - 100 * len(GOOD))


async def test_one_invalid_item_creates_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    items = [*GOOD[:1], {"type": "shape", "data": {"shape": "oval"}}, *GOOD[1:]]
    items.append({"type": "sticky_note", "geometry": {"width": 10, "height": 10}})
    response = await client.post(f"/v2/boards/{board_id}/items/bulk", json=items, headers=auth)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error"
    assert error["status"] == 400
    assert error["message"]
    fields = error["context"]["fields"]
    assert [field["field"] for field in fields] == ["1.data.shape", "6.geometry"]
    assert all(field["message"] and field["context"] == {} for field in fields)
    assert await item_count(client, auth, board_id) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ([{"type": "shape"}] * 21, "body"),
        ({"type": "shape"}, "body"),
        ([{"data": {}}], "0.type"),
        ([{"type": "image", "data": {"url": "https://example.com/a.png"}}], "0.type"),
        ([{"type": "text"}], "0.data"),
    ],
)
async def test_bulk_refuses_bad_bodies(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    board_id: str,
    body: object,
    field: str,
) -> None:
    response = await client.post(f"/v2/boards/{board_id}/items/bulk", json=body, headers=auth)
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["context"]["fields"]] == [field]
    assert await item_count(client, auth, board_id) == 0


async def test_bulk_of_twenty_is_allowed(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    body = [{"type": "sticky_note", "data": {"content": str(n)}} for n in range(20)]
    response = await client.post(f"/v2/boards/{board_id}/items/bulk", json=body, headers=auth)
    assert response.status_code == 201
    assert len(response.json()["data"]) == 20


async def test_bulk_items_can_go_into_an_existing_frame(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    frame = await client.post(f"/v2/boards/{board_id}/frames", json={"data": {}}, headers=auth)
    frame_id = frame.json()["id"]
    body = [{"type": "card", "parent": {"id": frame_id}}, {"type": "card", "parent": {"id": "1"}}]
    refused = await client.post(f"/v2/boards/{board_id}/items/bulk", json=body, headers=auth)
    assert [f["field"] for f in refused.json()["context"]["fields"]] == ["1.parent.id"]
    created = await client.post(f"/v2/boards/{board_id}/items/bulk", json=body[:1], headers=auth)
    assert created.json()["data"][0]["parent"]["id"] == frame_id
