"""`POST /api/webhook`: handshake, signatures, redeliveries, and the cache refresh it causes."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import trio

from miro_bridge.actors.store import Read
from miro_bridge.store import jobs
from tests.support import USER, Bridge, ManualClock, Miro, StartBridge, bearer, connect

SECRETS = ("old-secret", "new-secret")


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
        headers={"X-Miro-Signature": sign("new-secret", unparsable)},
    )
    assert signed.status_code == 400  # parsed only once the signature holds
    unsigned = await bridge.client.post("/api/webhook", content=unparsable)
    assert unsigned.status_code == 401


async def test_malformed_bodies_are_400(bridge: Bridge) -> None:
    for payload in ([], {"hello": 1}, {"events": [1]}, {"events": "x"}):
        assert (await post(bridge, payload)).status_code == 400, payload


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
    webhook_jobs = await bridge.actors.store.call(
        Read(lambda c: c.execute("SELECT count(*) FROM jobs WHERE kind = 'webhook'").fetchone()[0])
    )
    assert webhook_jobs == 1
    assert await bridge.actors.store.call(Read(jobs.dead_letter_count)) == 0
    metrics = (await bridge.client.get("/metrics")).text
    assert 'webhook_events_total{outcome="enqueued"} 1.0' in metrics
    assert 'webhook_events_total{outcome="duplicate"} 1.0' in metrics
    assert 'webhook_events_total{outcome="ignored"} 1.0' in metrics


async def test_events_without_ids_are_recognised_by_body(bridge: Bridge) -> None:
    event = {"event": {"type": "update", "boardId": "uXjVSomething="}}
    assert (await post(bridge, event)).status_code == 202
    assert (await post(bridge, event)).status_code == 202
    metrics = (await bridge.client.get("/metrics")).text
    assert 'webhook_events_total{outcome="duplicate"} 1.0' in metrics
