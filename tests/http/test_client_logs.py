"""`POST /api/logs`: limits on the real bytes, cleaning, storage with retention, re-emission."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from miro_bridge.logs import configure_logging
from miro_bridge.store import client_logs
from tests.support import USER, Bridge, ManualClock, StartBridge, query_database

pytestmark = pytest.mark.backends


def entry(message: str = "clicked", **extra: object) -> dict[str, object]:
    return {"timestamp": "2026-11-27T10:00:00Z", "level": "info", "message": message, **extra}


async def stored(bridge: Bridge) -> int:
    return await bridge.actors.store.call(client_logs.CountLogs())


def stored_messages(bridge: Bridge) -> list[str]:
    """The messages of the stored entries, oldest first, read from the database."""
    query = "SELECT message FROM client_logs ORDER BY id"
    return [message for (message,) in query_database(bridge.settings, query)]


async def test_entries_are_stored_cleaned_and_re_emitted(
    bridge: Bridge, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(pretty=False)
    forged = 'ok\n{"event": "admin login", "level": "critical"}\r\x1b[2J'
    body = [
        entry(forged, context={"board\n": "a\tb", "n": 3}),
        entry("second", level="WARN"),
        entry("third", level="Fatal", timestamp=1764237600000),
    ]
    response = await bridge.client.post(
        "/api/logs/", json=body, headers={"X-User-Id": USER, "X-Request-ID": "logs-1"}
    )
    assert response.status_code == 202, response.text
    assert response.headers["x-request-id"] == "logs-1"
    assert await stored(bridge) == 3
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    client = [line for line in lines if line.get("source") == "client"]
    assert [line["level"] for line in client] == ["info", "warning", "critical"]
    first = client[0]
    assert first["request_id"] == "logs-1"
    assert first["user_id"] == USER
    assert "\n" not in first["event"]
    assert "\x1b" not in first["event"]
    assert first["event"].startswith("ok ")
    assert first["context"] == {"board ": "a b", "n": "3"}
    assert not any(line.get("event") == "admin login" for line in lines)
    metrics = (await bridge.client.get("/metrics")).text
    assert "client_logs_ingested_total 3.0" in metrics


async def test_limits_are_checked(start_bridge: StartBridge) -> None:
    bridge = await start_bridge(log_max_entries=5, log_max_payload_bytes=4000)
    too_many = [entry()] * 6
    assert (await bridge.client.post("/api/logs", json=too_many)).status_code == 413
    long_message = [entry("x" * 1025)]
    assert (await bridge.client.post("/api/logs", json=long_message)).status_code == 413
    wide = [entry(context={str(n): "v" for n in range(21)})]
    assert (await bridge.client.post("/api/logs", json=wide)).status_code == 413
    deep = [entry(context={"k": "v" * 1025})]
    assert (await bridge.client.post("/api/logs", json=deep)).status_code == 413
    bad_level = await bridge.client.post("/api/logs", json=[entry(level="loud")])
    assert bad_level.status_code == 422
    assert bad_level.json()["detail"][0]["loc"] == ["body", 0, "level"]
    assert (await bridge.client.post("/api/logs", json={"message": "x"})).status_code == 422
    assert await stored(bridge) == 0

    # A body whose size is not declared (chunked) is counted as it arrives.
    async def chunks() -> AsyncIterator[bytes]:
        yield b"["
        for n in range(60):
            yield json.dumps(entry(f"{n:0100d}")).encode() + b","
        yield json.dumps(entry()).encode() + b"]"

    response = await bridge.client.post("/api/logs", content=chunks())
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await stored(bridge) == 0


async def test_retention_drops_old_entries(bridge: Bridge, clock: ManualClock) -> None:
    async def post(message: str) -> None:
        assert (await bridge.client.post("/api/logs", json=[entry(message)])).status_code == 202

    await post("old")
    assert stored_messages(bridge) == ["old"]
    clock.advance(60)
    await post("recent")
    assert stored_messages(bridge) == ["old", "recent"]
    clock.advance(bridge.settings.log_retention_days * 86400 - 59)  # "old" is one second over
    await post("new")
    assert stored_messages(bridge) == ["recent", "new"]


async def test_each_caller_has_a_rate_and_a_daily_quota(
    start_bridge: StartBridge, clock: ManualClock
) -> None:
    bridge = await start_bridge(log_rate_per_minute=10, log_quota_bytes=3000)
    user = {"X-User-Id": USER}
    assert (
        await bridge.client.post("/api/logs", json=[entry()] * 6, headers=user)
    ).status_code == 202
    assert await stored(bridge) == 6
    over = await bridge.client.post("/api/logs", json=[entry()] * 6, headers=user)
    assert over.status_code == 429
    assert over.json()["code"] == "rate_limited"
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert await stored(bridge) == 6  # nothing of the refused request
    # Another caller has limits of its own: anonymous callers count by address.
    anonymous = await bridge.client.post("/api/logs", json=[entry()] * 6)
    assert anonymous.status_code == 202
    assert (await bridge.client.post("/api/logs", json=[entry()] * 6)).status_code == 429

    clock.advance(61)  # a new minute: the rate is back, the day's bytes are not
    big = [entry("y" * 1000)] * 2
    assert (await bridge.client.post("/api/logs", json=big, headers=user)).status_code == 202
    full = await bridge.client.post("/api/logs", json=big, headers=user)
    assert full.status_code == 429
    assert int(full.headers["retry-after"]) > 3600
    clock.advance(86400)
    assert (await bridge.client.post("/api/logs", json=big, headers=user)).status_code == 202
