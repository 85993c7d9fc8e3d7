"""Ids that go into Miro paths can never resolve a segment away (`..` must not reach the board)."""

from __future__ import annotations

import pytest

from miro_bridge.errors import ValidationFailed
from miro_bridge.miro import endpoints
from tests.support import USER, Bridge, Miro, connect

H = {"X-User-Id": USER}
SHAPE = {"shape": "rectangle", "x": 0, "y": 0, "width": 100, "height": 50}


@pytest.mark.parametrize("value", ["..", ".", ""])
def test_an_endpoint_refuses_ids_a_url_would_resolve_away(value: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        endpoints.DELETE_ITEM.path(board_id="uXjVOfjmfkE=", item_id=value)
    assert refused.value.detail[0].loc == ("path", "item_id")
    assert endpoints.DELETE_ITEM.path(board_id="a/b=", item_id="...") == (
        "/v2/boards/a%2Fb%3D/items/..."
    )


async def test_dot_segments_as_ids_never_reach_miro(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro)
    board = str(miro.sandbox.create_board(USER)["id"])
    before = len(miro.sandbox.requests())
    attempts = [
        ("DELETE", f"/api/boards/{board}/shapes/%2e%2e", None),
        ("DELETE", f"/api/boards/{board}/shapes/%2E", None),
        ("PUT", f"/api/boards/{board}/shapes/%2e%2e", SHAPE),
        ("GET", f"/api/boards/{board}/shapes/%2e%2e", None),
        ("GET", "/api/boards/%2e%2e/tags", None),
        ("GET", "/api/cache/%2e%2e", None),
        ("POST", "/api/boards/%2e%2e/shapes/refresh", None),
        (
            "POST",
            "/api/batch",
            {"boardId": board, "operations": [{"type": "delete_item", "itemId": ".."}]},
        ),
        (
            "POST",
            "/api/batch",
            {"operations": [{"type": "delete_item", "boardId": ".", "itemId": "1"}]},
        ),
        ("POST", f"/api/boards/{board}/ops", [{"op": "delete", "id": ".."}]),
        ("POST", f"/api/boards/{board}/ops", [{"op": "update", "id": ".", "data": SHAPE}]),
        ("POST", "/api/cards?boardId=..", [{"title": "t"}]),
    ]
    for method, path, body in attempts:
        response = await bridge.client.request(method, path, json=body, headers=H)
        assert response.status_code == 422, (method, path, response.text)
        assert response.json()["code"] == "validation_error"
        assert "is not an id" in response.json()["message"]
    assert len(miro.sandbox.requests()) == before
    assert miro.sandbox.boards.board(USER, board) is not None  # the board is still there
