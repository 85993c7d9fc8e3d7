"""Creates happen once at Miro, whatever becomes of their answers.

A bulk create Miro carried out but whose answer was lost (the sandbox's `apply_then_drop`
fault) is found on the board and adopted, not created again; a keyed synchronous create runs
once however often the client retries it. The sandbox is served behind a gate, so that a test
can hold Miro's bulk calls while the client gives up.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import httpx
import pytest
import trio

from miro_bridge.http.boards import WRITE_TIMEOUT
from miro_bridge.sandbox import Faults, Sandbox, SandboxConfig
from tests.support import (
    USER,
    Bridge,
    Gate,
    ManualClock,
    Miro,
    ServeASGI,
    bearer,
    connect,
    items_at_miro,
    metric,
    shape,
    wait_for_job,
)

pytestmark = pytest.mark.backends
H = {"X-User-Id": USER}
#: With this seed, the first two Miro requests are carried out and their answers dropped.
DROP_FIRST_TWO = 238


@pytest.fixture
def gate(sandbox_config: SandboxConfig) -> Gate:
    return Gate(Sandbox(sandbox_config), "/items/bulk")


@pytest.fixture
async def miro(serve_asgi: ServeASGI, gate: Gate) -> Miro:
    return Miro(gate.sandbox, await serve_asgi(gate))


def dropped_bulk_calls(miro: Miro) -> int:
    """Bulk creates Miro carried out whose answer never reached the bridge."""
    return sum(
        1
        for r in miro.sandbox.requests()
        if r["path"].endswith("/items/bulk") and r["status"] is None
    )


async def test_creates_whose_answers_were_lost_are_adopted_not_repeated(
    bridge: Bridge, miro: Miro
) -> None:
    token = await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    miro.sandbox.set_faults(Faults(apply_then_drop_rate=0.1, seed=DROP_FIRST_TWO))
    titles = [f"card {n}" for n in range(300)]
    accepted = await bridge.client.post(
        f"/api/cards?boardId={board_id}", json=[{"title": t} for t in titles], headers=H
    )
    assert accepted.status_code == 202
    job = await wait_for_job(bridge, accepted.json()["jobId"])
    assert job["status"] == "done"
    assert {op["status"] for op in job["operations"]} == {"done"}

    miro.sandbox.set_faults(Faults())
    at_miro = await items_at_miro(miro, token, board_id)
    counts = collections.Counter(item["data"]["title"] for item in at_miro)
    assert counts == collections.Counter(titles)  # each card once: none lost, none twice
    assert {op["itemId"] for op in job["operations"]} == {item["id"] for item in at_miro}
    dropped = dropped_bulk_calls(miro)
    assert dropped >= 2
    # Every card of a bulk call whose answer was lost was found and adopted.
    assert await metric(bridge, "job_reconciled_items", kind="cards") == 20 * dropped


async def test_identical_cards_asked_for_are_all_created(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    token = await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        earlier = await client.post(
            f"/v2/boards/{board_id}/cards", json={"data": {"title": "Same"}}
        )
        assert earlier.status_code == 201
    clock.advance(60)  # that card is older than the attempt below
    # Miro carries out the first bulk call of the job and its answer is lost.
    miro.sandbox.set_faults(Faults(apply_then_drop_rate=0.1, seed=DROP_FIRST_TWO))
    cards = [{"title": "Same"}, {"title": "Same"}, {"title": "Other"}]
    accepted = await bridge.client.post(f"/api/cards?boardId={board_id}", json=cards, headers=H)
    job = await wait_for_job(bridge, accepted.json()["jobId"])
    miro.sandbox.set_faults(Faults())

    assert job["status"] == "done"
    assert dropped_bulk_calls(miro) == 1
    titles = collections.Counter(
        i["data"]["title"] for i in await items_at_miro(miro, token, board_id)
    )
    assert titles == {"Same": 3, "Other": 1}  # the earlier card and both asked for, once each
    adopted = [op["itemId"] for op in job["operations"]]
    assert len(set(adopted)) == 3
    assert earlier.json()["id"] not in adopted
    assert await metric(bridge, "job_reconciled_items", kind="cards") == 3


async def test_a_keyed_create_that_timed_out_is_not_run_again_by_its_retry(
    bridge: Bridge, miro: Miro, gate: Gate, clock: ManualClock
) -> None:
    token = await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    shapes = [shape(n) for n in range(50)]
    keyed = {**H, "Idempotency-Key": "draw-50"}
    path = f"/api/boards/{board_id}/shapes"

    gate.closed = True  # Miro takes its time over the bulk calls
    first: list[httpx.Response] = []
    async with trio.open_nursery() as nursery:

        async def send_first() -> None:
            first.append(await bridge.client.post(path, json=shapes, headers=keyed))

        nursery.start_soon(send_first)
        await gate.reached.wait()
        clock.advance(WRITE_TIMEOUT)  # the request gives up waiting
    assert first[0].status_code == 503
    assert first[0].json()["code"] == "unavailable"

    async with trio.open_nursery() as nursery:
        retried: list[httpx.Response] = []

        async def retry() -> None:
            retried.append(await bridge.client.post(path, json=shapes, headers=keyed))

        nursery.start_soon(retry)
        gate.opened.set()  # the first request's work goes on, and ends
    (answer,) = retried
    assert answer.status_code == 201
    results = answer.json()
    assert [r["status"] for r in results] == [201] * 50
    created = [json.loads(r["body"]) for r in results]
    assert [c["data"]["content"] for c in created] == [s["text"] for s in shapes]

    at_miro = await items_at_miro(miro, token, board_id)
    assert sorted(i["id"] for i in at_miro) == sorted(c["id"] for c in created)  # one set
    bulk = [r for r in miro.sandbox.requests() if r["path"].endswith("/items/bulk")]
    assert len(bulk) == 3  # 20 + 20 + 10, each sent once
    again = await bridge.client.post(path, json=shapes, headers=keyed)
    assert (again.status_code, again.content) == (201, answer.content)


async def test_a_keyed_create_answers_per_shape_and_replays_byte_for_byte(
    bridge: Bridge, miro: Miro
) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    refused: dict[str, Any] = {**shape(1), "style": {"fontFamily": "Comic Neue Sans"}}
    body = [shape(0), refused, shape(2)]
    keyed = {**H, "Idempotency-Key": "mixed"}
    path = f"/api/boards/{board_id}/shapes"
    answer = await bridge.client.post(path, json=body, headers=keyed)
    assert answer.status_code == 201
    results = answer.json()
    assert [r["status"] for r in results] == [201, 400, 201]
    assert json.loads(results[1]["body"])["code"] == "invalidParameters"
    assert json.loads(results[2]["body"])["data"]["content"] == "s2"
    again = await bridge.client.post(path, json=body, headers=keyed)
    assert again.content == answer.content
    bulk = [r for r in miro.sandbox.requests() if r["path"].endswith("/items/bulk")]
    assert len(bulk) == 1  # one bulk call, for the two sendable shapes, once


async def test_a_card_whose_tag_answer_was_lost_gets_only_the_tags_it_lacks(
    bridge: Bridge, miro: Miro
) -> None:
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    # Requests: the bulk create, the tag list, two tag creates, then the first attach, which
    # Miro carries out and whose answer is lost; nothing else fails.
    miro.sandbox.set_faults(Faults(apply_then_drop_rate=0.3, seed=336))
    card = {"title": "Tagged", "tags": ["Urgent", "Later"]}
    accepted = await bridge.client.post(f"/api/cards?boardId={board_id}", json=[card], headers=H)
    job = await wait_for_job(bridge, accepted.json()["jobId"])
    miro.sandbox.set_faults(Faults())

    assert job["status"] == "done"
    attaches = [
        r for r in miro.sandbox.requests() if r["method"] == "POST" and "/items/" in r["path"]
    ]
    assert [r["status"] for r in attaches if not r["path"].endswith("/bulk")] == [None, 204]
    assert len([r for r in attaches if r["path"].endswith("/bulk")]) == 1  # created once
    item_id = job["operations"][0]["itemId"]
    tags = miro.sandbox.boards.tags_of(miro.sandbox.boards.board(USER, board_id), item_id)
    assert sorted(tag.title for tag in tags) == ["Later", "Urgent"]
