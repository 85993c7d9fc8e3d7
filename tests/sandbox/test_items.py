"""Items: typed create/get/patch/delete, validation, frames, and `/items` cursor pages."""

from __future__ import annotations

import datetime
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from miro_bridge.sandbox import Sandbox

from .conftest import EPOCH, USER, bearer

CREATE_BODIES: dict[str, dict[str, Any]] = {
    "shapes": {
        "data": {"content": "<p>Hello</p>", "shape": "round_rectangle"},
        "style": {"fillColor": "#ff9d48", "fontSize": "18"},
        "position": {"x": 10, "y": -20.5},
        "geometry": {"width": 200, "height": 80},
    },
    "cards": {
        "data": {"title": "Ship it", "dueDate": "2026-03-01T12:00:00Z"},
        "style": {"cardTheme": "#2d9bf0"},
    },
    "sticky_notes": {
        "data": {"content": "Idea", "shape": "rectangle"},
        "style": {"fillColor": "yellow"},
    },
    "texts": {"data": {"content": "Title"}, "style": {"fontSize": "24"}},
    "frames": {"data": {"title": "Sprint"}, "geometry": {"width": 1200, "height": 900}},
}
PATCH_BODIES: dict[str, tuple[dict[str, Any], str, Any]] = {
    "shapes": ({"data": {"content": "Bye"}}, "content", "Bye"),
    "cards": ({"data": {"description": "now"}}, "description", "now"),
    "sticky_notes": ({"data": {"content": "Better"}}, "content", "Better"),
    "texts": ({"data": {"content": "Subtitle"}}, "content", "Subtitle"),
    "frames": ({"data": {"title": "Sprint 2"}}, "title", "Sprint 2"),
}
TYPES = {
    "shapes": "shape",
    "cards": "card",
    "sticky_notes": "sticky_note",
    "texts": "text",
    "frames": "frame",
}


@pytest.mark.parametrize("route", list(CREATE_BODIES))
async def test_item_lifecycle(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    board_id: str,
    base_url: str,
    route: str,
    autojump_clock: trio.testing.MockClock,
) -> None:
    collection = f"/v2/boards/{board_id}/{route}"
    created = await client.post(collection, json=CREATE_BODIES[route], headers=auth)
    assert created.status_code == 201
    item = created.json()
    assert item["type"] == TYPES[route]
    assert item["id"].isdigit()
    assert item["createdAt"] == item["modifiedAt"]
    assert item["createdAt"].endswith("Z")
    assert (
        item["links"]["self"]
        == f"{base_url}/v2/boards/{board_id.replace('=', '%3D')}/{route}/{item['id']}"
    )
    for key, value in CREATE_BODIES[route]["data"].items():
        assert item["data"][key] == value

    fetched = await client.get(f"{collection}/{item['id']}", headers=auth)
    assert fetched.json() == item

    await trio.sleep(5)
    body, key, value = PATCH_BODIES[route]
    patched = await client.patch(f"{collection}/{item['id']}", json=body, headers=auth)
    assert patched.status_code == 200
    assert patched.json()["data"][key] == value
    assert patched.json()["createdAt"] == item["createdAt"]
    assert patched.json()["modifiedAt"] > item["modifiedAt"]
    assert {k: v for k, v in patched.json()["data"].items() if k != key} == {
        k: v for k, v in item["data"].items() if k != key
    }

    deleted = await client.delete(f"{collection}/{item['id']}", headers=auth)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert "content-type" not in deleted.headers
    gone = await client.get(f"{collection}/{item['id']}", headers=auth)
    assert gone.status_code == 404
    assert gone.json()["code"] == "notFound"


async def test_defaults_follow_miro(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    shape = (await client.post(f"/v2/boards/{board_id}/shapes", json={}, headers=auth)).json()
    assert shape["data"] == {"content": "", "shape": "rectangle"}
    assert shape["style"]["fillColor"] == "#ffffff"
    assert shape["style"]["borderWidth"] == "2.0"
    assert shape["position"] == {
        "x": 0.0,
        "y": 0.0,
        "origin": "center",
        "relativeTo": "canvas_center",
    }
    sticky = (
        await client.post(f"/v2/boards/{board_id}/sticky_notes", json={}, headers=auth)
    ).json()
    assert sticky["style"]["fillColor"] == "light_yellow"
    assert sticky["data"]["shape"] == "square"
    card = (await client.post(f"/v2/boards/{board_id}/cards", json={}, headers=auth)).json()
    assert card["style"] == {"cardTheme": "#2d9bf0"}


def iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def test_timestamps_come_from_the_sandbox_clock(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    board_id: str,
    autojump_clock: trio.testing.MockClock,
) -> None:
    await trio.sleep(86_400)
    auth = bearer(sandbox.issue_tokens(USER))
    before = iso(EPOCH + trio.current_time())
    shape = (await client.post(f"/v2/boards/{board_id}/shapes", json={}, headers=auth)).json()
    after = iso(EPOCH + trio.current_time())
    assert before <= shape["createdAt"] <= after
    assert shape["createdAt"].startswith("2026-01-02T")


async def test_typed_routes_serve_only_their_type(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    shape = (await client.post(f"/v2/boards/{board_id}/shapes", json={}, headers=auth)).json()
    as_card = await client.get(f"/v2/boards/{board_id}/cards/{shape['id']}", headers=auth)
    assert as_card.status_code == 404
    deleted = await client.delete(f"/v2/boards/{board_id}/cards/{shape['id']}", headers=auth)
    assert deleted.status_code == 404
    still = await client.get(f"/v2/boards/{board_id}/shapes/{shape['id']}", headers=auth)
    assert still.status_code == 200


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("shapes", {"data": {"shape": "oval"}}, "data.shape"),
        ("shapes", {"style": {"fontSize": 14}}, "style.fontSize"),
        ("shapes", {"style": {"fontSize": "300"}}, "style.fontSize"),
        ("shapes", {"style": {"fillColor": "orange"}}, "style.fillColor"),
        ("shapes", {"position": {"x": "10"}}, "position.x"),
        ("shapes", {"geometry": {"width": -1}}, "geometry.width"),
        ("shapes", {"parent": {"id": "123"}}, "parent.id"),
        ("cards", {"data": {"dueDate": "tomorrow"}}, "data.dueDate"),
        ("cards", {"data": {"assigneeId": "bob"}}, "data.assigneeId"),
        ("sticky_notes", {"style": {"fillColor": "#ffffff"}}, "style.fillColor"),
        ("sticky_notes", {"geometry": {"width": 100, "height": 100}}, "geometry"),
        ("sticky_notes", {"geometry": {"rotation": 45}}, "geometry.rotation"),
        ("texts", {}, "data"),
        ("texts", {"data": {}}, "data.content"),
        ("texts", {"data": {"content": "x"}, "geometry": {"width": 10}}, "geometry.width"),
        ("frames", {}, "data"),
        ("frames", {"data": {"format": "a4"}}, "data.format"),
    ],
)
async def test_invalid_bodies_are_400_naming_the_field(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    board_id: str,
    route: str,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await client.post(f"/v2/boards/{board_id}/{route}", json=body, headers=auth)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error"
    assert error["code"] == "invalidParameters"
    assert [f["field"] for f in error["context"]["fields"]] == [field]
    items = await client.get(f"/v2/boards/{board_id}/items", headers=auth)
    assert items.json()["total"] == 0


async def test_body_that_is_not_json_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    response = await client.post(
        f"/v2/boards/{board_id}/shapes",
        content=b"{not json",
        headers=auth | {"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["context"]["fields"][0]["field"] == "body"


async def test_sticky_note_keeps_its_ratio(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    url = f"/v2/boards/{board_id}/sticky_notes"
    sticky = (await client.post(url, json={"geometry": {"width": 398}}, headers=auth)).json()
    assert sticky["geometry"] == {"width": 398.0, "height": 456.0}
    patched = await client.patch(
        f"{url}/{sticky['id']}", json={"geometry": {"height": 228}}, headers=auth
    )
    assert patched.json()["geometry"] == {"width": 199.0, "height": 228.0}


async def test_items_inside_a_frame(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    board = f"/v2/boards/{board_id}"
    frame = (
        await client.post(
            f"{board}/frames",
            json={
                "data": {"title": "F"},
                "position": {"x": 0, "y": 0},
                "geometry": {"width": 400, "height": 200},
            },
            headers=auth,
        )
    ).json()
    child = (
        await client.post(
            f"{board}/cards",
            json={"parent": {"id": frame["id"]}, "position": {"x": 50, "y": 60}},
            headers=auth,
        )
    ).json()
    assert child["parent"]["id"] == frame["id"]
    assert child["parent"]["links"]["self"].endswith(f"/frames/{frame['id']}")
    assert child["position"]["relativeTo"] == "parent_top_left"
    await client.post(f"{board}/shapes", json={}, headers=auth)

    inside = await client.get(
        f"{board}/items", params={"parent_item_id": frame["id"]}, headers=auth
    )
    assert [item["id"] for item in inside.json()["data"]] == [child["id"]]
    assert inside.json()["data"][0]["parent"] == {"id": frame["id"]}

    assert (await client.delete(f"{board}/frames/{frame['id']}", headers=auth)).status_code == 204
    freed = (await client.get(f"{board}/cards/{child['id']}", headers=auth)).json()
    assert "parent" not in freed
    assert freed["position"]["relativeTo"] == "canvas_center"
    assert (freed["position"]["x"], freed["position"]["y"]) == (-150.0, -40.0)


async def test_generic_item_routes(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    board = f"/v2/boards/{board_id}"
    frame = (await client.post(f"{board}/frames", json={"data": {}}, headers=auth)).json()
    text = (
        await client.post(f"{board}/texts", json={"data": {"content": "t"}}, headers=auth)
    ).json()

    generic = (await client.get(f"{board}/items/{text['id']}", headers=auth)).json()
    assert generic["type"] == "text"
    assert "style" not in generic
    assert generic["data"] == {"content": "t"}

    moved = await client.patch(
        f"{board}/items/{text['id']}",
        json={"position": {"x": 5, "y": 6}, "parent": {"id": frame["id"]}},
        headers=auth,
    )
    assert moved.status_code == 200
    assert moved.json()["parent"] == {"id": frame["id"]}
    assert moved.json()["position"]["x"] == 5.0
    bad = await client.patch(
        f"{board}/items/{text['id']}", json={"parent": {"id": text["id"]}}, headers=auth
    )
    assert bad.status_code == 400

    assert (await client.delete(f"{board}/items/{text['id']}", headers=auth)).status_code == 204
    assert (await client.get(f"{board}/items/{text['id']}", headers=auth)).status_code == 404


async def create_many(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str, count: int
) -> list[str]:
    """Create `count` items, alternating shapes and sticky notes, with bulk calls of 20."""
    ids: list[str] = []
    for start in range(0, count, 20):
        batch = [
            {"type": "shape" if n % 2 == 0 else "sticky_note", "data": {"content": f"#{n}"}}
            for n in range(start, min(start + 20, count))
        ]
        response = await client.post(f"/v2/boards/{board_id}/items/bulk", json=batch, headers=auth)
        assert response.status_code == 201
        ids += [item["id"] for item in response.json()["data"]]
    return ids


async def collect_pages(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str, **params: str
) -> tuple[list[str], int]:
    """Follow cursors the way Miro's clients do; answer the ids seen and the number of pages."""
    seen: list[str] = []
    pages = 0
    cursor = ""
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/v2/boards/{board_id}/items", params=query, headers=auth)).json()
        pages += 1
        seen += [item["id"] for item in page["data"]]
        cursor = page.get("cursor", "")
        if not cursor or not page["data"]:
            return seen, pages


@pytest.mark.parametrize(("limit", "pages"), [("10", 12), ("50", 3), ("33", 4)])
async def test_cursor_pages_return_each_of_120_items_once(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str, limit: str, pages: int
) -> None:
    ids = await create_many(client, auth, board_id, 120)
    seen, page_count = await collect_pages(client, auth, board_id, limit=limit)
    assert seen == ids
    assert len(set(seen)) == 120
    assert page_count == pages


async def test_cursor_pages_survive_changes_between_pages(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    ids = await create_many(client, auth, board_id, 30)
    url = f"/v2/boards/{board_id}/items"
    first = (await client.get(url, params={"limit": 10}, headers=auth)).json()
    assert first["total"] == 30
    assert first["size"] == 10
    await client.delete(f"{url}/{ids[10]}", headers=auth)
    follow = await client.get(first["links"]["next"], headers=auth)
    assert [item["id"] for item in follow.json()["data"]] == ids[11:21]


async def test_type_filter(client: httpx.AsyncClient, auth: dict[str, str], board_id: str) -> None:
    ids = await create_many(client, auth, board_id, 40)
    seen, _ = await collect_pages(client, auth, board_id, type="sticky_note", limit="10")
    assert seen == ids[1::2]
    page = (
        await client.get(f"/v2/boards/{board_id}/items", params={"type": "image"}, headers=auth)
    ).json()
    assert (page["data"], page["total"]) == ([], 0)
    wrong = await client.get(f"/v2/boards/{board_id}/items", params={"type": "blob"}, headers=auth)
    assert wrong.status_code == 400


@pytest.mark.parametrize(
    "query", [{"limit": "9"}, {"limit": "51"}, {"limit": "ten"}, {"cursor": "??"}]
)
async def test_bad_page_parameters_are_400(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str, query: dict[str, str]
) -> None:
    response = await client.get(f"/v2/boards/{board_id}/items", params=query, headers=auth)
    assert response.status_code == 400
    assert response.json()["context"]["fields"][0]["field"] == next(iter(query))
