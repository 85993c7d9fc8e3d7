"""Boards: creation, listing, and who may use them."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest

from miro_bridge.sandbox import Sandbox

from .conftest import OTHER_USER, USER, bearer

MEMBER = "3458764500000000055"


async def test_create_board_belongs_to_the_caller(
    client: httpx.AsyncClient, sandbox: Sandbox, base_url: str
) -> None:
    owner, other = bearer(sandbox.issue_tokens(USER)), bearer(sandbox.issue_tokens(OTHER_USER))
    response = await client.post("/v2/boards", json={"name": "Plans"}, headers=owner)
    assert response.status_code == 201
    board = response.json()
    assert board["name"] == "Plans"
    assert board["description"] == ""
    assert board["owner"]["id"] == USER
    assert board["currentUserMembership"] == {
        "id": USER,
        "name": f"Sandbox user {USER}",
        "role": "owner",
        "type": "board_member",
    }
    quoted = urllib.parse.quote(board["id"], safe="")
    assert board["links"]["self"] == f"{base_url}/v2/boards/{quoted}"

    mine = await client.get(f"/v2/boards/{quoted}", headers=owner)
    assert mine.json()["id"] == board["id"]
    theirs = await client.get(f"/v2/boards/{quoted}", headers=other)
    assert theirs.status_code == 403
    assert theirs.json()["code"] == "insufficientPermissions"


async def test_board_ids_look_like_miro_ids_and_work_encoded_or_not(
    client: httpx.AsyncClient, sandbox: Sandbox, auth: dict[str, str]
) -> None:
    board_id = sandbox.create_board(USER)["id"]
    assert len(board_id) == 12
    assert board_id.startswith("uXjV")
    assert board_id.endswith("=")
    encoded = urllib.parse.quote(board_id, safe="")
    assert "%3D" in encoded
    for path_id in (encoded, board_id):
        response = await client.get(f"/v2/boards/{path_id}", headers=auth)
        assert response.status_code == 200
        assert response.json()["id"] == board_id


async def test_members_added_by_admin_can_use_the_board(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    board_id = sandbox.create_board(USER, name="Shared", members=[MEMBER])["id"]
    member = bearer(sandbox.issue_tokens(MEMBER))
    board = await client.get(f"/v2/boards/{board_id}", headers=member)
    assert board.json()["currentUserMembership"]["role"] == "editor"
    created = await client.post(f"/v2/boards/{board_id}/sticky_notes", json={}, headers=member)
    assert created.status_code == 201
    assert created.json()["createdBy"] == {"id": MEMBER, "type": "user"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("GET", "/items"),
        ("POST", "/shapes"),
        ("POST", "/tags"),
        ("POST", "/items/bulk"),
    ],
)
async def test_strangers_get_403_on_every_board_route(
    client: httpx.AsyncClient, sandbox: Sandbox, board_id: str, method: str, path: str
) -> None:
    stranger = bearer(sandbox.issue_tokens(OTHER_USER))
    body = [{"type": "shape"}] if path == "/items/bulk" else {"title": "t"}
    response = await client.request(
        method, f"/v2/boards/{board_id}{path}", json=body, headers=stranger
    )
    assert response.status_code == 403
    assert response.json()["code"] == "insufficientPermissions"


async def test_unknown_board_is_404(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.get("/v2/boards/uXjVnothing0=", headers=auth)
    assert response.status_code == 404
    assert response.json()["code"] == "notFound"


async def test_list_boards_shows_only_accessible_boards(
    client: httpx.AsyncClient, sandbox: Sandbox, auth: dict[str, str], base_url: str
) -> None:
    names = [f"Board {n}" for n in range(5)]
    for name in names:
        sandbox.create_board(USER, name=name)
    sandbox.create_board(OTHER_USER, name="Not mine")
    sandbox.create_board(OTHER_USER, name="Shared with me", members=[USER])

    page = (await client.get("/v2/boards", params={"limit": 4}, headers=auth)).json()
    assert [board["name"] for board in page["data"]] == names[:4]
    assert (page["total"], page["size"], page["offset"], page["limit"]) == (6, 4, 0, 4)
    assert page["links"]["next"] == f"{base_url}/v2/boards?limit=4&offset=4"
    rest = (await client.get(page["links"]["next"], headers=auth)).json()
    assert [board["name"] for board in rest["data"]] == [names[4], "Shared with me"]
    assert "next" not in rest["links"]

    found = await client.get("/v2/boards", params={"query": "shared"}, headers=auth)
    assert [board["name"] for board in found.json()["data"]] == ["Shared with me"]


async def test_create_board_validates_the_body(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post("/v2/boards", json={"name": "x" * 61}, headers=auth)
    assert response.status_code == 400
    assert response.json()["context"]["fields"][0]["field"] == "name"
