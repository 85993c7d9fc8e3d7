"""The durable job queue end to end: routes → JobQueue → BoardCache/MiroClient → sandbox."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from miro_bridge.actors.job_queue import MAX_ATTEMPTS, PER_USER
from miro_bridge.actors.store import GetStatistics
from miro_bridge.sandbox import Faults
from miro_bridge.store import jobs
from tests.support import (
    OTHER_USER,
    USER,
    Bridge,
    ManualClock,
    Miro,
    StartBridge,
    bearer,
    connect,
    items_at_miro,
    query_database,
    shape,
    wait_for_job,
)

pytestmark = pytest.mark.backends

H = {"X-User-Id": USER}


def bulk_calls(miro: Miro) -> list[dict[str, Any]]:
    return [r for r in miro.sandbox.requests() if r["path"].endswith("/items/bulk")]


async def test_batch_of_creates_runs_in_bulk(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    operations = [{"type": "create_shape", "data": shape(n)} for n in range(44)]
    operations.append({"type": "create_node", "node_id": "n1", "data": shape(44)})
    response = await bridge.client.post(
        "/api/batch", json={"boardId": board_id, "operations": operations}, headers=H
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["enqueued"] == 45
    assert accepted["job_id"] == accepted["jobId"]

    job = await wait_for_job(bridge, accepted["jobId"])
    assert job["status"] == "done"
    assert [op["status"] for op in job["operations"]] == ["done"] * 45
    assert job["createdAt"].endswith("Z")
    created = {op["itemId"] for op in job["operations"]}
    at_miro = await items_at_miro(miro, token, board_id)
    assert {item["id"] for item in at_miro} == created
    assert len(bulk_calls(miro)) == 3


async def test_cards_with_tags(bridge: Bridge, miro: Miro) -> None:
    token = await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        await client.post(f"/v2/boards/{board_id}/tags", json={"title": "urgent"})
    cards = [
        {"title": "Write", "description": "the docs", "tags": ["urgent", "docs"]},
        {"title": "Ship", "tags": ["docs"], "style": {"cardTheme": "#ff0000"}},
        {"title": "Rest"},
    ]
    response = await bridge.client.post(f"/api/cards?boardId={board_id}", json=cards, headers=H)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 3
    job = await wait_for_job(bridge, response.json()["jobId"])
    assert job["status"] == "done", job
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        tags = (await client.get(f"/v2/boards/{board_id}/tags")).json()["data"]
        assert sorted(t["title"] for t in tags) == ["docs", "urgent"]  # "docs" was created once
        titles = []
        for op in job["operations"]:
            item = (await client.get(f"/v2/boards/{board_id}/cards/{op['itemId']}")).json()
            item_tags = (
                await client.get(f"/v2/boards/{board_id}/items/{op['itemId']}/tags")
            ).json()["tags"]
            titles.append((item["data"]["title"], sorted(t["title"] for t in item_tags)))
    assert titles == [("Write", ["docs", "urgent"]), ("Ship", ["docs"]), ("Rest", [])]


async def test_ops_update_and_delete(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    created = await bridge.client.post(
        f"/api/boards/{board_id}/ops", json=[{"op": "create", "data": shape(1)}] * 2, headers=H
    )
    job = await wait_for_job(bridge, created.json()["jobId"])
    first, second = (op["itemId"] for op in job["operations"])
    changes = [
        {"op": "update", "id": first, "data": {**shape(2), "text": "renamed"}},
        {"op": "delete", "id": second},
        {"op": "update", "id": "3458764999999999999", "data": shape(3)},
    ]
    response = await bridge.client.post(f"/api/boards/{board_id}/ops", json=changes, headers=H)
    job = await wait_for_job(bridge, response.json()["jobId"])
    assert job["status"] == "partial"
    statuses = [op["status"] for op in job["operations"]]
    assert statuses == ["done", "done", "failed"]
    assert "404" in job["operations"][2]["message"]
    cache = (await bridge.client.get(f"/api/cache/{board_id}", headers=H)).json()
    assert [(i["id"], i["data"]["content"]) for i in cache["items"]] == [(first, "renamed")]


async def test_jobs_are_private(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    response = await bridge.client.post(f"/api/boards/{board_id}/shapes/refresh", headers=H)
    assert response.status_code == 202
    job_id = response.json()["jobId"]
    assert (await wait_for_job(bridge, job_id))["status"] == "done"
    other = await bridge.client.get(f"/api/jobs/{job_id}", headers={"X-User-Id": OTHER_USER})
    assert other.status_code == 404
    assert other.json()["code"] == "not_found"


async def test_disconnected_user_fails_with_a_clear_message(bridge: Bridge, miro: Miro) -> None:
    board_id = "uXjVSomeBoard="
    response = await bridge.client.post(
        "/api/batch",
        json={"boardId": board_id, "operations": [{"type": "create_shape", "data": shape(1)}]},
        headers=H,
    )
    job = await wait_for_job(bridge, response.json()["jobId"])
    assert job["status"] == "failed"
    assert "connect again" in job["operations"][0]["message"]


async def test_invalid_batches_are_refused_whole(bridge: Bridge) -> None:
    cases = [
        (
            {"operations": [{"type": "create_shape", "data": shape(1)}]},
            ["body", "operations", 0, "boardId"],
        ),
        (
            {"boardId": "b", "operations": [{"type": "paint", "data": {}}]},
            ["body", "operations", 0, "type"],
        ),
        (
            {"boardId": "b", "operations": [{"type": "delete_item"}]},
            ["body", "operations", 0, "itemId"],
        ),
        ({"boardId": "b", "operations": []}, ["body", "operations"]),
        (
            {"boardId": "b", "operations": [{"type": "delete_item", "itemId": "1"}] * 501},
            ["body", "operations"],
        ),
    ]
    for body, loc in cases:
        response = await bridge.client.post("/api/batch", json=body, headers=H)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"][0]["loc"] == loc
    missing_user = await bridge.client.post("/api/batch", json=cases[0][0])
    assert missing_user.status_code == 400
    too_many_tags = [{"title": "x", "tags": [str(n) for n in range(9)]}]
    response = await bridge.client.post("/api/cards?boardId=b", json=too_many_tags, headers=H)
    assert response.status_code == 422
    no_board = await bridge.client.post("/api/cards", json=[{"title": "x"}], headers=H)
    assert no_board.status_code == 422
    assert await bridge.actors.store.call(jobs.QueueLength()) == 0


async def test_batch_idempotency(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    body = {"boardId": board_id, "operations": [{"type": "create_shape", "data": shape(1)}]}
    headers = {**H, "Idempotency-Key": "k-1"}
    first = await bridge.client.post("/api/batch", json=body, headers=headers)
    again = await bridge.client.post("/api/batch", json=body, headers=headers)
    assert again.content == first.content
    await wait_for_job(bridge, first.json()["jobId"])
    assert len(bulk_calls(miro)) == 1
    other = {**body, "boardId": "elsewhere"}
    assert (await bridge.client.post("/api/batch", json=other, headers=headers)).status_code == 409


async def test_limits(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    fresh = (await bridge.client.get("/api/limits", headers=H)).json()
    assert fresh == {"queue_length": 0, "bucket_fill": {USER: 100}}
    await bridge.client.get(f"/api/cache/{board_id}", headers=H)  # spends 200 of 100,000
    after = (await bridge.client.get("/api/limits", headers=H)).json()
    assert after["bucket_fill"] == {USER: 99}


async def test_faults_do_not_lose_or_dead_letter_anything(
    start_bridge: StartBridge, miro: Miro
) -> None:
    # Hung calls end at the timeout (real time: a hang is real); long enough that a call
    # slowed by a loaded machine is not taken for one.
    bridge = await start_bridge(http_timeout_seconds=1.0)
    token = await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    miro.sandbox.set_faults(
        Faults(
            error_rate=0.2,
            error_statuses=(500, 502, 503),
            rate_limit_rate=0.05,
            hang_rate=0.03,
            seed=5,
        )
    )
    operations = [{"type": "create_shape", "data": shape(n)} for n in range(500)]
    response = await bridge.client.post(
        "/api/batch", json={"boardId": board_id, "operations": operations}, headers=H
    )
    assert response.status_code == 202
    job = await wait_for_job(bridge, response.json()["jobId"])
    assert job["status"] == "done", [op for op in job["operations"] if op["status"] != "done"][:3]
    assert await bridge.actors.store.call(jobs.DeadLetterCount()) == 0
    statuses = [r["status"] for r in miro.sandbox.requests()]
    assert {500, 502, 503} & set(statuses)
    assert 429 in statuses
    assert None in statuses  # hung requests were answered by nobody
    miro.sandbox.set_faults(Faults())
    assert len(await items_at_miro(miro, token, board_id)) == 500


async def test_an_operation_that_keeps_failing_is_dead_lettered(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    dead_lettered = 'jobs_dead_lettered_total{kind="batch"}'
    assert f"{dead_lettered} 0.0\n" in (await bridge.client.get("/metrics")).text
    miro.sandbox.set_faults(Faults(error_rate=1.0, error_statuses=(503,)))
    started = clock.now
    operations = [{"type": "create_shape", "data": shape(1)}]
    response = await bridge.client.post(
        "/api/batch", json={"boardId": board_id, "operations": operations}, headers=H
    )
    job = await wait_for_job(bridge, response.json()["jobId"])

    error = "Miro answered 503: Something went wrong on the server, try again later"
    gave_up = f"gave up after {MAX_ATTEMPTS} attempts: {error}"
    assert job["status"] == "failed"
    assert job["operations"] == [{"id": "0", "status": "failed", "message": gave_up}]
    # A 503 leaves the create in doubt: every later attempt reads the board first (and fails
    # there too), so the create itself is never sent again blindly.
    assert len(bulk_calls(miro)) == 1
    assert clock.now > started  # the backoffs between attempts ran on the test's clock
    rows = query_database(
        bridge.settings,
        "SELECT job_id, user_id, kind, attempts, last_error, history FROM dead_letters",
    )
    filed = (job["id"], USER, "create_shape", MAX_ATTEMPTS, gave_up)
    assert [tuple(row[:5]) for row in rows] == [filed]
    history = rows[0][5] if isinstance(rows[0][5], list) else json.loads(rows[0][5])
    assert history == [error] * (MAX_ATTEMPTS - 1) + [gave_up]  # every error
    assert f"{dead_lettered} 1.0\n" in (await bridge.client.get("/metrics")).text


async def test_a_huge_job_does_not_hold_up_another_users_small_one(
    bridge: Bridge, miro: Miro
) -> None:
    await connect(bridge, miro)
    await connect(bridge, miro, OTHER_USER)
    board_a = str(miro.sandbox.create_board(USER)["id"])
    board_b = str(miro.sandbox.create_board(OTHER_USER)["id"])
    huge = [{"type": "create_shape", "data": shape(n)} for n in range(500)]
    for _ in range(4):  # 2,000 operations
        await bridge.client.post(
            "/api/batch", json={"boardId": board_a, "operations": huge}, headers=H
        )
    small = [{"type": "create_shape", "data": shape(n)} for n in range(5)]
    b_enqueued = len(bulk_calls(miro))
    response = await bridge.client.post(
        "/api/batch",
        json={"boardId": board_b, "operations": small},
        headers={"X-User-Id": OTHER_USER},
    )
    job = await wait_for_job(bridge, response.json()["jobId"], OTHER_USER)
    assert job["status"] == "done"
    calls = bulk_calls(miro)
    b_call = next(i for i, r in enumerate(calls) if r["user"] == OTHER_USER)
    a_before_b = sum(1 for r in calls[b_enqueued:b_call] if r["user"] == USER)
    assert a_before_b <= 2, f"{a_before_b} of A's bulk calls went before B's"
    remaining = (await bridge.client.get("/api/limits", headers=H)).json()["queue_length"]
    assert remaining > 1000, "B finished while A's job was still mostly queued"


@pytest.mark.backends("sqlite")  # a shared database is polled every second anyway
async def test_enqueues_while_the_user_runs_all_they_may_cost_the_dispatcher_no_queries(
    bridge: Bridge, miro: Miro
) -> None:
    """Work enqueued by a user who already runs `PER_USER` units cannot be claimed before
    one of those ends: the dispatcher does not ask the store for ready users on each one."""
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    miro.sandbox.set_faults(Faults(hang_rate=1.0))  # the user's bulk calls stay under way
    creates = [{"type": "create_shape", "data": shape(n)} for n in range(20 * PER_USER)]
    batch = {"boardId": board_id, "operations": creates}
    assert (await bridge.client.post("/api/batch", json=batch, headers=H)).status_code == 202

    async def store_idle() -> None:
        """Until every task waits and the store holds no operation (on its threads)."""
        with trio.fail_after(5):
            await trio.testing.wait_all_tasks_blocked()
            while bridge.actors.store.statistics().in_flight or not bulk_calls(miro):
                await trio.testing.wait_all_tasks_blocked()

    await store_idle()  # both units claimed, the first call under way
    before = await bridge.actors.store.call(GetStatistics())
    for _ in range(10):
        response = await bridge.client.post("/api/batch", json=batch, headers=H)
        assert response.status_code == 202
    await store_idle()
    after = await bridge.actors.store.call(GetStatistics())

    assert after.writes == before.writes + 10  # the ten jobs, nothing else
    assert after.reads == before.reads  # no ReadyUsers, no NextDue for each


async def test_a_user_holds_a_bounded_number_of_idempotency_keys(
    start_bridge: StartBridge, miro: Miro
) -> None:
    bridge = await start_bridge(idempotency_max_keys=3)
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    path = f"/api/cards?boardId={board_id}"
    first = None
    for n in range(3):
        response = await bridge.client.post(
            path, json=[{"title": f"c{n}"}], headers={**H, "Idempotency-Key": f"k{n}"}
        )
        assert response.status_code == 202
        first = first or response
    over = await bridge.client.post(
        path, json=[{"title": "c3"}], headers={**H, "Idempotency-Key": "k3"}
    )
    assert over.status_code == 429
    assert over.json()["code"] == "rate_limited"
    assert over.headers["retry-after"]
    assert first is not None
    replay = await bridge.client.post(
        path, json=[{"title": "c0"}], headers={**H, "Idempotency-Key": "k0"}
    )
    assert (replay.status_code, replay.content) == (202, first.content)  # replays still work
    unkeyed = await bridge.client.post(path, json=[{"title": "free"}], headers=H)
    assert unkeyed.status_code == 202
    other = await bridge.client.post(
        path, json=[{"title": "o"}], headers={"X-User-Id": OTHER_USER, "Idempotency-Key": "k3"}
    )
    assert other.status_code == 202  # another user's keys are counted apart
