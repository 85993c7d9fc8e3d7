"""Board routes end to end: HTTP → BoardCache → MiroClient → the sandbox Miro over loopback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from miro_bridge.actors.board_cache import SYNC_IDLE_AFTER
from miro_bridge.sandbox import Faults
from miro_bridge.store import boards
from tests.support import OTHER_USER, USER, Bridge, ManualClock, Miro, StartBridge, bearer, connect

H = {"X-User-Id": USER}


def shape(n: int, **extra: Any) -> dict[str, Any]:
    return {"shape": "rectangle", "x": n * 10, "y": 0, "width": 100, "height": 50, **extra}


async def board_with_items(miro: Miro, token: str, count: int, name: str = "Plan") -> str:
    board_id = str(miro.sandbox.create_board(USER, name)["id"])
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        for n in range(count):
            body = {"data": {"shape": "circle", "content": f"item {n}"}, "position": {"x": n}}
            response = await client.post(f"/v2/boards/{board_id}/shapes", json=body)
            assert response.status_code == 201
    return board_id


def requests_to(miro: Miro, suffix: str, method: str = "GET") -> list[dict[str, Any]]:
    return [
        r for r in miro.sandbox.requests() if r["method"] == method and r["path"].endswith(suffix)
    ]


@pytest.mark.backends
async def test_cache_reads_through_then_serves_from_memory(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 60)
    response = await bridge.client.get(f"/api/cache/{board_id}", headers=H)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == board_id
    assert body["name"] == "Plan"
    assert body["version"] == 1
    assert body["fetchedAt"].endswith("Z")
    assert len(body["items"]) == 60
    assert {item["data"]["content"] for item in body["items"]} == {f"item {n}" for n in range(60)}
    assert body["tags"] == []
    assert len(requests_to(miro, "/items")) == 2  # cursor pages of 50

    before = len(miro.sandbox.requests())
    again = await bridge.client.get(f"/api/cache/{board_id}", headers=H)
    assert again.content == response.content
    assert len(miro.sandbox.requests()) == before  # a hit costs Miro nothing


async def test_hundred_concurrent_cold_reads_cause_one_fetch(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 5)
    already = len(miro.sandbox.requests())  # count only what the reads cause
    statuses: list[int] = []

    async def read() -> None:
        statuses.append((await bridge.client.get(f"/api/cache/{board_id}", headers=H)).status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(read)
    assert statuses == [200] * 100
    caused = miro.sandbox.requests()[already:]
    assert [r["path"] for r in caused] == [
        f"/v2/boards/{board_id}",
        f"/v2/boards/{board_id}/items",
        f"/v2/boards/{board_id}/tags",
    ]


async def test_another_users_board_is_forbidden_cached_or_not(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    await connect(bridge, miro, OTHER_USER)
    board_id = await board_with_items(miro, token, 3)
    other = {"X-User-Id": OTHER_USER}

    cold = await bridge.client.get(f"/api/cache/{board_id}", headers=other)
    assert cold.status_code == 403
    assert cold.json()["code"] == "forbidden"
    assert (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).status_code == 200
    for path in (
        f"/api/cache/{board_id}",
        f"/api/boards/{board_id}/tags",
        f"/api/boards/{board_id}/shapes",
    ):
        cached = await bridge.client.get(path, headers=other)
        assert cached.status_code == 403, path
    item_id = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()["items"][0][
        "id"
    ]
    item = await bridge.client.get(f"/api/boards/{board_id}/shapes/{item_id}", headers=other)
    assert item.status_code == 403

    unknown = await bridge.client.get("/api/cache/uXjVNoSuchBoard=", headers=H)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"


async def test_tags_are_id_title_color(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 1)
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        for title, color in (("urgent", "red"), ("later", "blue")):
            created = await client.post(
                f"/v2/boards/{board_id}/tags", json={"title": title, "fillColor": color}
            )
            assert created.status_code == 201
    response = await bridge.client.get(f"/api/boards/{board_id}/tags", headers=H)
    assert response.status_code == 200
    tags = response.json()
    assert sorted((t["title"], t["color"]) for t in tags) == [("later", "blue"), ("urgent", "red")]
    assert all(set(t) == {"id", "title", "color"} and isinstance(t["id"], str) for t in tags)


async def test_forty_five_shapes_are_three_bulk_calls(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 0)
    shapes = [shape(n, text=f"s{n}", rotation=5, style={"fillColor": "#ff0000"}) for n in range(45)]
    response = await bridge.client.post(f"/api/boards/{board_id}/shapes", json=shapes, headers=H)
    assert response.status_code == 201, response.text
    results = response.json()
    assert len(results) == 45
    assert {r["status"] for r in results} == {201}
    created = [json.loads(r["body"]) for r in results]
    assert [item["data"]["content"] for item in created] == [f"s{n}" for n in range(45)]
    assert len(requests_to(miro, "/items/bulk", "POST")) == 3

    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        listed = await client.get(f"/v2/boards/{board_id}/items", params={"limit": "50"})
    at_miro = {item["id"]: item for item in listed.json()["data"]}
    assert set(at_miro) == {item["id"] for item in created}
    first = at_miro[created[0]["id"]]
    assert first["geometry"]["rotation"] == 5
    assert first["position"]["x"] == 0


async def test_single_shape_object_is_accepted(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 0)
    response = await bridge.client.post(f"/api/boards/{board_id}/shapes/", json=shape(1), headers=H)
    assert response.status_code == 201
    assert len(response.json()) == 1


async def test_partial_failure_reports_each_shape(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 0)
    shapes = [shape(0), shape(1, shape="no_such_shape"), shape(2)]
    response = await bridge.client.post(f"/api/boards/{board_id}/shapes", json=shapes, headers=H)
    assert response.status_code == 201
    results = response.json()
    assert [r["status"] for r in results] == [201, 400, 201]
    error = json.loads(results[1]["body"])
    assert error["type"] == "error"
    assert error["status"] == 400
    cache = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    assert len(cache["items"]) == 2


async def test_shape_bodies_are_validated(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 0)
    bad = await bridge.client.post(
        f"/api/boards/{board_id}/shapes",
        json=[shape(0), {"shape": "circle", "x": "left"}],
        headers=H,
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][:2] == ["body", 1]
    assert requests_to(miro, "/items/bulk", "POST") == []


async def created_answer(miro: Miro, token: str, board_id: str) -> list[dict[str, Any]]:
    """What creating the board's two newest shapes answers: each as Miro has it (API.md)."""
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        items = (await client.get(f"/v2/boards/{board_id}/items")).json()["data"][-2:]
        shapes = [
            (await client.get(f"/v2/boards/{board_id}/shapes/{i['id']}")).json() for i in items
        ]
    return [{"status": 201, "body": json.dumps(item)} for item in shapes]


@pytest.mark.backends
async def test_idempotency_key_replays_without_creating_again(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    await connect(bridge, miro, OTHER_USER)
    board_id = str(miro.sandbox.create_board(USER, members=[OTHER_USER])["id"])
    headers = {**H, "Idempotency-Key": "create-1"}
    path = f"/api/boards/{board_id}/shapes"
    responses: list[httpx.Response] = []

    async def post() -> None:
        responses.append(await bridge.client.post(path, json=[shape(1), shape(2)], headers=headers))

    async with trio.open_nursery() as nursery:  # concurrent first requests: one execution
        for _ in range(3):
            nursery.start_soon(post)
    responses.append(await bridge.client.post(path, json=[shape(1), shape(2)], headers=headers))
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert len(requests_to(miro, "/items/bulk", "POST")) == 1
    first = responses[0]
    assert first.json() == await created_answer(miro, token, board_id)

    conflict = await bridge.client.post(path, json=[shape(3)], headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "conflict"

    # The same key is another user's own: their first request runs (two more shapes, made
    # by them) and gets its own answer, which their repeat replays.
    other_headers = {"X-User-Id": OTHER_USER, "Idempotency-Key": "create-1"}
    other = await bridge.client.post(path, json=[shape(1), shape(2)], headers=other_headers)
    assert other.status_code == 201
    assert other.json() == await created_answer(miro, token, board_id)
    assert [json.loads(r["body"])["createdBy"]["id"] for r in other.json()] == [OTHER_USER] * 2
    assert len(requests_to(miro, "/items/bulk", "POST")) == 2
    again = await bridge.client.post(path, json=[shape(1), shape(2)], headers=other_headers)
    assert (again.status_code, again.content) == (201, other.content)


@pytest.mark.backends
async def test_the_board_loader_gets_every_shape_at_each_version(
    bridge: Bridge, miro: Miro
) -> None:
    # The client fetches since=0, then (its effect re-running on the new version) since=<v>,
    # and replaces its list with each answer: both must hold every shape.
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 3)
    first = (await bridge.client.get(f"/api/boards/{board_id}/shapes?since=0", headers=H)).json()
    assert len(first["shapes"]) == 3
    created = await bridge.client.post(f"/api/boards/{board_id}/shapes", json=[shape(9)], headers=H)
    new_id = json.loads(created.json()[0]["body"])["id"]
    path = f"/api/boards/{board_id}/shapes?since={first['version']}"
    second = (await bridge.client.get(path, headers=H)).json()
    assert second["version"] == first["version"] + 1
    assert {s["id"] for s in second["shapes"]} == {s["id"] for s in first["shapes"]} | {new_id}
    path = f"/api/boards/{board_id}/shapes?since={second['version']}"
    third = (await bridge.client.get(path, headers=H)).json()
    assert third == second
    bad = await bridge.client.get(f"/api/boards/{board_id}/shapes?since=yesterday", headers=H)
    assert bad.status_code == 422


@pytest.mark.backends
async def test_changes_name_changed_items_and_deleted_ids(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 3)
    changes = f"/api/boards/{board_id}/changes"
    first = (await bridge.client.get(f"/api/boards/{board_id}/shapes", headers=H)).json()
    v1 = first["version"]
    kept, edited, deleted = (s["id"] for s in first["shapes"])

    created = await bridge.client.post(f"/api/boards/{board_id}/shapes", json=[shape(9)], headers=H)
    new_id = json.loads(created.json()[0]["body"])["id"]
    updated = await bridge.client.put(
        f"/api/boards/{board_id}/shapes/{edited}", json=shape(5, text="moved"), headers=H
    )
    assert updated.status_code == 200
    removed = await bridge.client.delete(f"/api/boards/{board_id}/shapes/{deleted}", headers=H)
    assert removed.status_code == 204

    delta = (await bridge.client.get(f"{changes}?since={v1}", headers=H)).json()
    assert delta["version"] == v1 + 3
    assert delta["reset"] is False
    assert {s["id"] for s in delta["changed"]} == {new_id, edited}
    assert next(s for s in delta["changed"] if s["id"] == edited)["data"]["content"] == "moved"
    assert delta["deleted"] == [deleted]
    after_update = (await bridge.client.get(f"{changes}?since={v1 + 2}", headers=H)).json()
    assert after_update == {"version": v1 + 3, "changed": [], "deleted": [deleted], "reset": False}
    latest = (await bridge.client.get(f"{changes}?since={v1 + 3}", headers=H)).json()
    assert latest == {"version": v1 + 3, "changed": [], "deleted": [], "reset": False}

    # A version this board never had, and a since older than the tombstones kept: rebuild.
    ahead = (await bridge.client.get(f"{changes}?since={v1 + 10}", headers=H)).json()
    assert ahead["reset"] is True
    assert {s["id"] for s in ahead["changed"]} == {kept, edited, new_id}
    clock.advance(7 * 86400 + 1)
    old = (await bridge.client.get(f"{changes}?since={v1}", headers=H)).json()
    assert old["reset"] is True
    assert {s["id"] for s in old["changed"]} == {kept, edited, new_id}
    assert old["deleted"] == []
    recent = (await bridge.client.get(f"{changes}?since={v1 + 3}", headers=H)).json()
    assert recent["reset"] is False

    for query in ("", "?since=yesterday", "?since=-1"):
        bad = await bridge.client.get(f"{changes}{query}", headers=H)
        assert bad.status_code == 422, query
        assert bad.json()["detail"][0]["loc"] == ["query", "since"]


@pytest.mark.backends
async def test_changes_name_items_a_sync_found_deleted_at_miro(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    from miro_bridge.actors.board_cache import SyncBoard

    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 2)
    first = (await bridge.client.get(f"/api/boards/{board_id}/shapes", headers=H)).json()
    gone = first["shapes"][0]["id"]
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        assert (await client.delete(f"/v2/boards/{board_id}/items/{gone}")).status_code == 204
    version = (await bridge.actors.boards.call(SyncBoard(USER, board_id))).version
    assert version == first["version"] + 1
    path = f"/api/boards/{board_id}/changes?since={first['version']}"
    delta = (await bridge.client.get(path, headers=H)).json()
    assert delta == {"version": version, "changed": [], "deleted": [gone], "reset": False}
    # The tombstone outlives a restart: it is in SQLite with the snapshot.
    stored = await bridge.actors.store.call(boards.LoadBoard(board_id))
    assert stored is not None
    assert set(stored.tombstones) == {gone}


@pytest.mark.backends
async def test_item_read_update_delete(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 2)
    items = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()["items"]
    item_id = items[0]["id"]

    read = await bridge.client.get(f"/api/boards/{board_id}/shapes/{item_id}", headers=H)
    assert read.status_code == 200
    assert read.json()["id"] == item_id

    gone = await bridge.client.delete(f"/api/boards/{board_id}/shapes/{item_id}", headers=H)
    assert gone.status_code == 204
    again = await bridge.client.delete(f"/api/boards/{board_id}/shapes/{item_id}", headers=H)
    assert again.status_code == 204
    cache = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    assert [i["id"] for i in cache["items"]] == [items[1]["id"]]
    missing = await bridge.client.get(f"/api/boards/{board_id}/shapes/{item_id}", headers=H)
    assert missing.status_code == 404


async def test_empty_board_id_is_a_400(bridge: Bridge) -> None:
    response = await bridge.client.get("/api/boards//tags", headers=H)
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


@pytest.mark.backends
async def test_board_ids_with_equals_signs(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 1)
    assert "=" in board_id
    encoded = board_id.replace("=", "%3D")
    for path in (f"/api/cache/{board_id}", f"/api/cache/{encoded}"):
        response = await bridge.client.get(path, headers=H)
        assert response.status_code == 200, path
        assert response.json()["id"] == board_id


@pytest.mark.backends
async def test_expired_tokens_at_miro_cause_one_refresh_for_fifty_reads(
    bridge: Bridge, miro: Miro
) -> None:
    token = await connect(bridge, miro)
    board_ids = [await board_with_items(miro, token, 1, name=f"b{n}") for n in range(50)]
    miro.sandbox.expire_tokens()  # Miro says 401; our copy of the expiry does not know yet
    before = len(requests_to(miro, "/v1/oauth/token", "POST"))
    statuses: list[int] = []

    async def read(board_id: str) -> None:
        statuses.append((await bridge.client.get(f"/api/cache/{board_id}", headers=H)).status_code)

    async with trio.open_nursery() as nursery:
        for board_id in board_ids:
            nursery.start_soon(read, board_id)
    assert statuses == [200] * 50
    assert len(requests_to(miro, "/v1/oauth/token", "POST")) - before == 1


@pytest.mark.parametrize("seed", [3, 11])
async def test_reads_survive_server_errors_and_latency(
    bridge: Bridge, miro: Miro, seed: int
) -> None:
    token = await connect(bridge, miro)
    board_ids = [await board_with_items(miro, token, 12, name=f"b{n}") for n in range(4)]
    tag_board = board_ids[0]
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        await client.post(f"/v2/boards/{tag_board}/tags", json={"title": "t", "fillColor": "red"})
    miro.sandbox.set_faults(
        Faults(latency_ms=(1, 10), error_rate=0.2, error_statuses=(500, 502, 503), seed=seed)
    )
    for board_id in board_ids:
        cache = await bridge.client.get(f"/api/cache/{board_id}", headers=H)
        assert cache.status_code == 200, cache.text
        assert len(cache.json()["items"]) == 12
        shapes = await bridge.client.get(f"/api/boards/{board_id}/shapes", headers=H)
        assert len(shapes.json()["shapes"]) == 12
        item_id = shapes.json()["shapes"][0]["id"]
        item = await bridge.client.get(f"/api/boards/{board_id}/shapes/{item_id}", headers=H)
        assert item.json()["id"] == item_id
    tags = await bridge.client.get(f"/api/boards/{tag_board}/tags", headers=H)
    assert [t["title"] for t in tags.json()] == ["t"]
    failed = [r for r in miro.sandbox.requests() if (r["status"] or 0) >= 500]
    assert failed, "the faults were injected"


async def test_cache_metrics(bridge: Bridge, miro: Miro) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 1)
    for _ in range(3):
        await bridge.client.get(f"/api/cache/{board_id}", headers=H)
    text = (await bridge.client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    results = {
        s.labels["result"]: s.value
        for s in families["board_cache_requests"].samples
        if s.name.endswith("_total")
    }
    assert results["miss"] == 1
    assert results["hit"] == 2
    endpoints = {
        s.labels["endpoint"]
        for s in families["miro_api_requests"].samples
        if s.name.endswith("_total")
    }
    assert "GET /v2/boards/{board_id}/items" in endpoints
    assert not any(board_id in e for e in endpoints)
    routes = {
        s.labels["route"]
        for s in families["http_server_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert "/api/cache/<board_id>" in routes
    assert not any(board_id in r for r in routes)


@pytest.mark.backends
async def test_sync_bumps_the_version_only_when_miro_changed(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    from miro_bridge.actors.board_cache import SyncBoard

    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 2)
    first = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    unchanged = (await bridge.actors.boards.call(SyncBoard(USER, board_id))).version
    assert unchanged == first["version"]

    item_id = first["items"][0]["id"]
    clock.advance(5)  # the edit happens later: Miro's modifiedAt moves
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        patched = await client.patch(
            f"/v2/boards/{board_id}/shapes/{item_id}", json={"data": {"content": "edited at Miro"}}
        )
        assert patched.status_code == 200
    changed = (await bridge.actors.boards.call(SyncBoard(USER, board_id))).version
    assert changed == first["version"] + 1
    path = f"/api/boards/{board_id}/changes?since={first['version']}"
    since = (await bridge.client.get(path, headers=H)).json()
    assert [s["id"] for s in since["changed"]] == [item_id]
    assert since["changed"][0]["data"]["content"] == "edited at Miro"


async def test_periodic_sync_picks_up_changes(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 1)
    first = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        await client.post(f"/v2/boards/{board_id}/shapes", json={"data": {"shape": "circle"}})
    listings = len(requests_to(miro, "/items"))
    clock.advance(bridge.settings.sync_interval_seconds - 1)  # not yet
    await trio.testing.wait_all_tasks_blocked()
    assert len(requests_to(miro, "/items")) == listings
    clock.advance(1)  # the interval has passed: the board is listed again
    with trio.fail_after(10):
        while True:
            body = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
            if body["version"] > first["version"]:
                break
            await trio.sleep(0.01)
    assert len(body["items"]) == 2
    assert len(requests_to(miro, "/items")) == listings + 1


async def test_stale_entries_are_refreshed_on_read(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 1)
    await bridge.client.get(f"/api/cache/{board_id}", headers=H)
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        await client.post(f"/v2/boards/{board_id}/shapes", json={"data": {"shape": "circle"}})
    fresh = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    assert len(fresh["items"]) == 1  # within the TTL: the cached copy
    clock.advance(bridge.settings.cache_ttl_seconds + 1)
    stale = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    assert len(stale["items"]) == 2


@pytest.mark.backends
async def test_idle_boards_leave_memory_and_come_back_from_sqlite(
    start_bridge: StartBridge, miro: Miro, clock: ManualClock
) -> None:
    bridge = await start_bridge(sync_interval_seconds=0.05)
    token = await connect(bridge, miro)
    board_id = await board_with_items(miro, token, 3)
    first = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    assert len(bridge.actors.board_views) == 1
    listings = len(requests_to(miro, "/items"))

    clock.advance(SYNC_IDLE_AFTER + 1)  # unused for an hour: the next sweep forgets it
    with trio.fail_after(10):
        while True:
            await trio.sleep(0.05)
            if not len(bridge.actors.board_views):
                break

    again = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    assert again == first  # the same snapshot, loaded from SQLite
    assert len(requests_to(miro, "/items")) == listings  # Miro was not asked to list it again
    assert len(bridge.actors.board_views) == 1
