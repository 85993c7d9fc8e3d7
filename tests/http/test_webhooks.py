"""`POST /api/webhook`: handshake, signatures, redeliveries, and the cache refresh it causes."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from miro_bridge.store import jobs
from tests.support import (
    USER,
    Bridge,
    ManualClock,
    Miro,
    StartBridge,
    bearer,
    connect,
    metric,
)

SECRETS = ("old-secret", "new-secret")
JSON = {"content-type": "application/json"}


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post(bridge: Bridge, payload: Any, signature: str | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["X-Miro-Signature"] = signature
    return await bridge.client.post("/api/webhook", content=body, headers=headers)


async def test_handshake_is_echoed(bridge: Bridge) -> None:
    response = await post(bridge, {"challenge": "a1b2"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"challenge": "a1b2"}


async def test_signatures(start_bridge: StartBridge) -> None:
    bridge = await start_bridge(webhook_secrets=SECRETS)
    payload = {"challenge": "c"}
    body = json.dumps(payload).encode()
    for secret in SECRETS:  # either secret of a rotation is accepted
        assert (await post(bridge, payload, sign(secret, body))).status_code == 200
    for bad in (None, "", sign("wrong", body), sign("old-secret", body + b" "), "zz"):
        response = await post(bridge, payload, bad)
        assert response.status_code == 401, bad
        assert response.json()["code"] == "unauthorized"
    unparsable = b"{not json"
    signed = await bridge.client.post(
        "/api/webhook",
        content=unparsable,
        headers={"X-Miro-Signature": sign("new-secret", unparsable), **JSON},
    )
    assert signed.status_code == 400  # parsed only once the signature holds
    unsigned = await bridge.client.post("/api/webhook", content=unparsable, headers=JSON)
    assert unsigned.status_code == 401


async def test_malformed_bodies_are_400(bridge: Bridge) -> None:
    for payload in ([], {"hello": 1}, {"events": [1]}, {"events": "x"}):
        assert (await post(bridge, payload)).status_code == 400, payload


@pytest.mark.backends
async def test_an_event_refreshes_the_board_once(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    token = await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    before = (await bridge.client.get(f"/api/cache/{board_id}", headers={"X-User-Id": USER})).json()
    clock.advance(5)
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as c:
        await c.post(f"/v2/boards/{board_id}/shapes", json={"data": {"shape": "circle"}})

    event = {
        "events": [{"event": "board_item_created", "data": {"id": "ev-1", "boardId": board_id}}]
    }
    first = await post(bridge, event)
    assert first.status_code == 202
    assert first.json() == {"accepted": 1}
    again = await post(bridge, event)  # redelivered
    assert again.json() == {"accepted": 0}
    unknown = await post(bridge, {"event": {"boardId": "uXjVNeverRead="}})
    assert unknown.status_code == 202

    with trio.fail_after(10):
        while True:
            after = (
                await bridge.client.get(f"/api/cache/{board_id}", headers={"X-User-Id": USER})
            ).json()
            if after["version"] > before["version"]:
                break
            await trio.sleep(0.01)
    assert len(after["items"]) == 1
    assert await webhook_jobs(bridge) == 1
    assert await bridge.actors.store.call(jobs.DeadLetterCount()) == 0
    metrics = (await bridge.client.get("/metrics")).text
    assert 'webhook_events_total{outcome="enqueued"} 1.0' in metrics
    assert 'webhook_events_total{outcome="duplicate"} 1.0' in metrics
    assert 'webhook_events_total{outcome="ignored"} 1.0' in metrics


async def read_board(bridge: Bridge, miro: Miro) -> str:
    """A board the cache has read, so that events about it are processed."""
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    read = await bridge.client.get(f"/api/cache/{board_id}", headers={"X-User-Id": USER})
    assert read.status_code == 200
    return board_id


async def outcomes(bridge: Bridge) -> dict[str, float]:
    text = (await bridge.client.get("/metrics")).text
    (family,) = (f for f in text_string_to_metric_families(text) if f.name == "webhook_events")
    return {s.labels["outcome"]: s.value for s in family.samples if s.name.endswith("_total")}


@pytest.mark.backends
async def test_events_without_ids_are_recognised_by_body(bridge: Bridge, miro: Miro) -> None:
    event = {"event": {"type": "update", "boardId": await read_board(bridge, miro)}}
    assert (await post(bridge, event)).status_code == 202
    assert (await post(bridge, event)).status_code == 202
    assert (await outcomes(bridge))["duplicate"] == 1


async def test_only_json_is_taken(bridge: Bridge) -> None:
    # A web page can post text/plain anywhere without a preflight: not here.
    body = json.dumps({"events": [{"event": "x", "data": {"boardId": "b"}}]})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": content_type} if content_type else {}
        response = await bridge.client.post("/api/webhook", content=body, headers=headers)
        assert response.status_code == 415, content_type
        assert response.json()["code"] == "bad_request"


@pytest.mark.backends
async def test_a_flood_of_events_lists_a_board_once(start_bridge: StartBridge, miro: Miro) -> None:
    bridge = await start_bridge(webhook_max_events=5000, webhook_events_per_minute=60)
    board_id = await read_board(bridge, miro)
    listings = sum(1 for r in miro.sandbox.requests() if r["path"].endswith("/items"))
    flood = {
        "events": [
            {"event": "board_item_updated", "data": {"id": f"ev-{n}", "boardId": board_id}}
            for n in range(2000)
        ]
    }
    response = await post(bridge, flood)
    assert response.status_code == 202
    assert response.json() == {"accepted": 1}
    counted = await outcomes(bridge)
    assert (counted["enqueued"], counted["coalesced"], counted["limited"]) == (1, 59, 1940)
    assert await webhook_jobs(bridge) == 1
    with trio.fail_after(10):
        while await metric(bridge, "jobs_completed", kind="webhook", outcome="done") < 1:  # noqa: ASYNC110 -- a metric has no event to wait on
            await trio.sleep(0.01)
    assert sum(1 for r in miro.sandbox.requests() if r["path"].endswith("/items")) == listings + 1


async def webhook_jobs(bridge: Bridge) -> float:
    """Jobs the webhook route enqueued."""
    return await metric(bridge, "jobs_enqueued", kind="webhook")


async def test_too_many_events_in_one_request_are_refused(bridge: Bridge, miro: Miro) -> None:
    board_id = await read_board(bridge, miro)
    events = [{"event": "e", "data": {"id": f"ev-{n}", "boardId": board_id}} for n in range(101)]
    response = await post(bridge, {"events": events})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await webhook_jobs(bridge) == 0
