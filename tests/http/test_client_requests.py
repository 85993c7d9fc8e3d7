"""The Node client's own requests, exactly as it sends them, against the sandbox Miro.

Its template-drawn shapes speak the web SDK's style vocabulary; its Excel import posts
NodeDefinition creates to `/ops` and polls the job; it reads nodes back by their ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import trio

from miro_bridge import service
from miro_bridge.config import Settings
from miro_bridge.miro.templates import load_templates
from tests.support import (
    CLIENT_SHAPE,
    USER,
    Bridge,
    Miro,
    StartBridge,
    bearer,
    connect,
    wait_for_job,
)

H = {"X-User-Id": USER}

#: A template file in the client's own format: two types, one alias, and presets it ignores.
TEMPLATES = {
    "Motivation": {
        "elements": [
            {
                "shape": "round_rectangle",
                "width": 200,
                "height": 120,
                "style": {"fillColor": "#fff9b1", "fontFamily": "Open Sans", "borderWidth": 2},
                "text": "{{label}}",
            }
        ],
        "alias": ["Driver"],
    },
    "Goal": {
        "elements": [
            {
                "shape": "hexagon",
                "width": 140,
                "height": 140,
                "style": {"fillColor": "#d5f692", "textAlign": "Center"},
                "text": "Goal: {{label}}",
            }
        ]
    },
    "stylePresets": {"yellow": {"fillColor": "#fff9b1"}},
}


async def test_templated_shapes_are_created_as_the_client_sends_them(
    settings: Settings, nursery: trio.Nursery
) -> None:
    shutdown = trio.Event()
    url = await nursery.start(service.run, settings, shutdown)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        tokens = (await client.post("/_sandbox/_admin/tokens", json={"user_id": USER})).json()
        board = await client.post("/_sandbox/_admin/boards", json={"owner": USER})
        board_id = board.json()["id"]
        registered = await client.post(
            "/api/users", json={"id": USER, "access_token": tokens["access_token"]}
        )
        assert registered.status_code in (200, 201), registered.text
        shapes = f"/api/boards/{board_id}/shapes"

        one = await client.post(shapes, json=CLIENT_SHAPE, headers=H)
        three = await client.post(shapes, json=[CLIENT_SHAPE] * 3, headers=H)
        assert (one.status_code, three.status_code) == (201, 201), (one.text, three.text)
        results = one.json() + three.json()
        assert [r["status"] for r in results] == [201] * 4
        created = [json.loads(r["body"]) for r in results]
        for item in created:  # the real Miro item, as the client looks it up
            at_miro = await client.get(
                f"/_sandbox/v2/boards/{board_id}/shapes/{item['id']}",
                headers=bearer(tokens["access_token"]),
            )
            assert at_miro.status_code == 200
            assert at_miro.json()["style"]["fontFamily"] == "arial"
            assert at_miro.json()["style"]["borderWidth"] == "2"
            assert at_miro.json()["data"]["content"] == "Alpha"
        assert len({item["id"] for item in created}) == 4

        bulk_calls = len(await _bulk_requests(client))
        unknown = {**CLIENT_SHAPE, "style": {**CLIENT_SHAPE["style"], "fontFamily": "Comic Sans"}}
        mixed = await client.post(shapes, json=[CLIENT_SHAPE, unknown, CLIENT_SHAPE], headers=H)
        assert mixed.status_code == 201
        statuses = [r["status"] for r in mixed.json()]
        assert statuses == [201, 400, 201]
        refused = json.loads(mixed.json()[1]["body"])
        assert "Comic Sans" in refused["message"]
        assert "arial" in refused["message"]
        assert "open_sans" in refused["message"]
        assert refused["context"]["fields"][0]["field"] == "style.fontFamily"
        bulk = await _bulk_requests(client)
        assert len(bulk) == bulk_calls + 1  # one call, for the two good shapes only
        assert bulk[-1]["credits"] == 2 * 100

        alone = await client.post(shapes, json=[unknown], headers=H)
        assert [r["status"] for r in alone.json()] == [400]
        assert len(await _bulk_requests(client)) == bulk_calls + 1  # no call to Miro at all
    shutdown.set()


async def _bulk_requests(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    logged = (await client.get("/_sandbox/_admin/requests")).json()["requests"]
    return [r for r in logged if r["path"].endswith("/items/bulk")]


def _boxes_overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def box(item: dict[str, Any]) -> tuple[float, float, float, float]:
        x, y = item["position"]["x"], item["position"]["y"]
        w, h = item["geometry"]["width"], item["geometry"]["height"]
        return x - w / 2, y - h / 2, x + w / 2, y + h / 2

    (l1, t1, r1, b1), (l2, t2, r2, b2) = box(a), box(b)
    return l1 < r2 and l2 < r1 and t1 < b2 and t2 < b1


async def test_an_excel_import_draws_each_node_from_its_template(
    start_bridge: StartBridge, miro: Miro, tmp_path: Path
) -> None:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps(TEMPLATES))
    templates, _ = load_templates(path)
    bridge = await start_bridge(shape_templates=templates)
    token = await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    nodes = [
        {"id": "r1", "label": "Alpha", "type": "Motivation", "metadata": {"rowId": "r1"}},
        {"id": "r2", "label": "Beta", "type": "Driver", "metadata": {"rowId": "r2"}},
        {"id": "r3", "label": "Gamma", "type": "Goal"},
        {"id": "r4", "label": "Delta", "type": "Unheard of"},
    ]
    accepted = await bridge.client.post(
        f"/api/boards/{board_id}/ops",
        json=[{"op": "create", "data": node} for node in nodes],
        headers=H,
    )
    assert accepted.status_code == 202, accepted.text
    job = await wait_for_job(bridge, accepted.json()["jobId"])
    assert job["status"] == "done", job
    assert [op["nodeId"] for op in job["operations"]] == ["r1", "r2", "r3", "r4"]
    item_of = {op["nodeId"]: op["itemId"] for op in job["operations"]}

    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        drawn = {
            node: (await client.get(f"/v2/boards/{board_id}/shapes/{item}")).json()
            for node, item in item_of.items()
        }
        alpha, beta, gamma, delta = (drawn[n] for n in ("r1", "r2", "r3", "r4"))
        assert alpha["data"]["content"] == "Alpha"
        assert alpha["style"]["fontFamily"] == "open_sans"
        assert alpha["style"]["fillColor"] == "#fff9b1"
        assert alpha["style"]["borderWidth"] == "2"
        assert (alpha["geometry"]["width"], alpha["geometry"]["height"]) == (200, 120)
        assert beta["data"]["shape"] == "round_rectangle"  # by alias
        assert beta["style"]["fillColor"] == "#fff9b1"
        assert (gamma["data"]["shape"], gamma["data"]["content"]) == ("hexagon", "Goal: Gamma")
        assert gamma["style"]["textAlign"] == "center"
        assert (delta["data"]["shape"], delta["data"]["content"]) == ("round_rectangle", "Delta")
        assert (delta["geometry"]["width"], delta["geometry"]["height"]) == (160, 100)
        items = list(drawn.values())
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                assert not _boxes_overlap(a, b), (a["position"], b["position"])

        # A later import names the nodes: an update moves r3, a delete removes r1's shape.
        later = await bridge.client.post(
            f"/api/boards/{board_id}/ops",
            json=[
                {"op": "update", "id": "r3", "data": {**nodes[2], "label": "Gamma 2"}},
                {"op": "delete", "id": "r1"},
            ],
            headers=H,
        )
        assert later.status_code == 202, later.text
        job = await wait_for_job(bridge, later.json()["jobId"])
        assert job["status"] == "done", job
        assert [op["itemId"] for op in job["operations"]] == [item_of["r3"], item_of["r1"]]
        gone = await client.get(f"/v2/boards/{board_id}/items/{item_of['r1']}")
        assert gone.status_code == 404
        renamed = (await client.get(f"/v2/boards/{board_id}/shapes/{item_of['r3']}")).json()
        assert renamed["data"]["content"] == "Goal: Gamma 2"
        assert renamed["position"] == gamma["position"]  # an update without x, y stays put


async def test_an_update_waits_for_the_create_of_the_node_it_names(
    bridge: Bridge, miro: Miro
) -> None:
    token = await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    node = {"id": "n1", "label": "First", "type": "Anything"}
    accepted = await bridge.client.post(
        f"/api/boards/{board_id}/ops",
        json=[
            {"op": "create", "data": node},
            {"op": "update", "id": "n1", "data": {**node, "label": "Second"}},
            {"op": "create", "data": {**node, "id": "n2"}},
            {"op": "delete", "id": "n2"},
        ],
        headers=H,
    )
    job = await wait_for_job(bridge, accepted.json()["jobId"])
    assert job["status"] == "done", job
    first, updated, second, deleted = job["operations"]
    assert updated["itemId"] == first["itemId"]
    assert deleted["itemId"] == second["itemId"]
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        page = (await client.get(f"/v2/boards/{board_id}/items")).json()["data"]
    assert [(i["id"], i["data"]["content"]) for i in page] == [(first["itemId"], "Second")]


async def test_a_refused_style_in_a_job_is_a_422_naming_the_field(bridge: Bridge) -> None:
    bad = {"shape": "circle", "x": 0, "y": 0, "width": 9, "height": 9}
    bad["style"] = {"fontFamily": "Wingdings"}
    for path, body, loc in [
        ("/api/boards/b1/ops", [{"op": "create", "data": bad}], ["body", 0, "data"]),
        (
            "/api/batch",
            {"boardId": "b1", "operations": [{"type": "create_shape", "data": bad}]},
            ["body", "operations", 0, "data"],
        ),
        ("/api/boards/b1/shapes/3458764500000000099", bad, ["body"]),
    ]:
        method = "PUT" if "/shapes/" in path else "POST"
        response = await bridge.client.request(method, path, json=body, headers=H)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == [*loc, "style", "fontFamily"]
        assert "Wingdings" in response.json()["message"]


async def test_the_synchronous_create_takes_a_bounded_number_of_shapes(
    start_bridge: StartBridge,
) -> None:
    bridge = await start_bridge(shapes_max=3)
    response = await bridge.client.post("/api/boards/b1/shapes", json=[CLIENT_SHAPE] * 4, headers=H)
    assert response.status_code == 413
    assert "/ops" in response.json()["message"]
