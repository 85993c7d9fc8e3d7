"""Tags: create, offset pages, get, update, delete, attach/detach, at most 8 per item."""

from __future__ import annotations

from typing import Any

import httpx

TAG_LIMIT = 8


async def make_tag(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str, title: str, **extra: str
) -> dict[str, Any]:
    response = await client.post(
        f"/v2/boards/{board_id}/tags", json={"title": title} | extra, headers=auth
    )
    assert response.status_code == 201
    tag: dict[str, Any] = response.json()
    return tag


async def make_item(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str, route: str = "cards"
) -> str:
    response = await client.post(f"/v2/boards/{board_id}/{route}", json={}, headers=auth)
    item_id: str = response.json()["id"]
    return item_id


async def test_tag_lifecycle(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str, base_url: str
) -> None:
    tag = await make_tag(client, auth, board_id, "Urgent", fillColor="magenta")
    assert tag["title"] == "Urgent"
    assert tag["fillColor"] == "magenta"
    assert tag["type"] == "tag"
    url = f"/v2/boards/{board_id}/tags/{tag['id']}"
    assert tag["links"]["self"] == base_url + url.replace("=", "%3D")
    assert (await client.get(url, headers=auth)).json() == tag

    updated = await client.patch(url, json={"fillColor": "blue"}, headers=auth)
    assert updated.json() == tag | {"fillColor": "blue"}

    default = await make_tag(client, auth, board_id, "Later")
    assert default["fillColor"] == "red"

    assert (await client.delete(url, headers=auth)).status_code == 204
    assert (await client.get(url, headers=auth)).status_code == 404


async def test_tag_titles_are_unique_and_bounded(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    await make_tag(client, auth, board_id, "Same")
    url = f"/v2/boards/{board_id}/tags"
    duplicate = await client.post(url, json={"title": "Same"}, headers=auth)
    assert duplicate.status_code == 400
    assert (await client.post(url, json={"title": "same"}, headers=auth)).status_code == 201
    too_long = await client.post(url, json={"title": "x" * 121}, headers=auth)
    assert too_long.status_code == 400
    bad_color = await client.post(url, json={"title": "c", "fillColor": "pink"}, headers=auth)
    assert bad_color.json()["context"]["fields"][0]["field"] == "fillColor"


async def test_tags_are_listed_in_offset_pages(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str, base_url: str
) -> None:
    titles = [f"tag-{n:02}" for n in range(25)]
    for title in titles:
        await make_tag(client, auth, board_id, title)
    url = f"/v2/boards/{board_id}/tags"
    first = (await client.get(url, headers=auth)).json()
    assert (first["total"], first["size"], first["offset"], first["limit"]) == (25, 20, 0, 20)
    assert "links" not in first["data"][0]
    seen: list[str] = []
    page = (await client.get(url, params={"limit": 10}, headers=auth)).json()
    while True:
        seen += [tag["title"] for tag in page["data"]]
        if "next" not in page["links"]:
            break
        page = (await client.get(page["links"]["next"], headers=auth)).json()
    assert seen == titles
    assert page["offset"] == 20
    assert page["links"]["prev"] == f"{base_url}{url.replace('=', '%3D')}?limit=10&offset=10"
    assert (await client.get(url, params={"limit": 51}, headers=auth)).status_code == 400


async def test_attach_detach_and_list_an_items_tags(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    card = await make_item(client, auth, board_id, "cards")
    sticky = await make_item(client, auth, board_id, "sticky_notes")
    red = await make_tag(client, auth, board_id, "Red")
    blue = await make_tag(client, auth, board_id, "Blue", fillColor="blue")
    items = f"/v2/boards/{board_id}/items"
    for item, tag in [(card, red), (card, blue), (sticky, red)]:
        attached = await client.post(f"{items}/{item}", params={"tag_id": tag["id"]}, headers=auth)
        assert attached.status_code == 204

    tags = (await client.get(f"{items}/{card}/tags", headers=auth)).json()
    assert tags == {
        "tags": [
            {"id": red["id"], "title": "Red", "fillColor": "red", "type": "tag"},
            {"id": blue["id"], "title": "Blue", "fillColor": "blue", "type": "tag"},
        ]
    }
    tagged = (await client.get(items, params={"tag_id": red["id"]}, headers=auth)).json()
    assert [item["id"] for item in tagged["data"]] == [card, sticky]
    assert tagged["total"] == 2

    detached = await client.delete(f"{items}/{card}", params={"tag_id": red["id"]}, headers=auth)
    assert detached.status_code == 204
    assert (await client.get(f"{items}/{card}", headers=auth)).status_code == 200
    tags = (await client.get(f"{items}/{card}/tags", headers=auth)).json()
    assert [tag["id"] for tag in tags["tags"]] == [blue["id"]]

    await client.delete(f"/v2/boards/{board_id}/tags/{blue['id']}", headers=auth)
    assert (await client.get(f"{items}/{card}/tags", headers=auth)).json() == {"tags": []}


async def test_at_most_eight_tags_per_item(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    card = await make_item(client, auth, board_id)
    url = f"/v2/boards/{board_id}/items/{card}"
    for n in range(TAG_LIMIT):
        tag = await make_tag(client, auth, board_id, f"t{n}")
        assert (
            await client.post(url, params={"tag_id": tag["id"]}, headers=auth)
        ).status_code == 204
    ninth = await make_tag(client, auth, board_id, "ninth")
    refused = await client.post(url, params={"tag_id": ninth["id"]}, headers=auth)
    assert refused.status_code == 400
    assert refused.json()["context"]["fields"][0]["field"] == "tag_id"
    assert len((await client.get(f"{url}/tags", headers=auth)).json()["tags"]) == TAG_LIMIT


async def test_tags_attach_only_to_cards_and_sticky_notes(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    shape = await make_item(client, auth, board_id, "shapes")
    tag = await make_tag(client, auth, board_id, "T")
    url = f"/v2/boards/{board_id}/items/{shape}"
    assert (await client.post(url, params={"tag_id": tag["id"]}, headers=auth)).status_code == 400
    assert (await client.post(url, headers=auth)).status_code == 400
    unknown = await client.post(url, params={"tag_id": "999"}, headers=auth)
    assert unknown.status_code == 404


async def test_deleting_an_item_keeps_the_tag(
    client: httpx.AsyncClient, auth: dict[str, str], board_id: str
) -> None:
    card = await make_item(client, auth, board_id)
    tag = await make_tag(client, auth, board_id, "Kept")
    url = f"/v2/boards/{board_id}/items/{card}"
    await client.post(url, params={"tag_id": tag["id"]}, headers=auth)
    assert (await client.delete(url, headers=auth)).status_code == 204
    tags = (await client.get(f"/v2/boards/{board_id}/tags", headers=auth)).json()
    assert [t["id"] for t in tags["data"]] == [tag["id"]]
    tagged = await client.get(
        f"/v2/boards/{board_id}/items", params={"tag_id": tag["id"]}, headers=auth
    )
    assert tagged.json()["data"] == []
