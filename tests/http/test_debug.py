"""Debug toggles: `X-Debug-429`, `X-Debug-Limits`, `X-Debug-Auth` (`MIRO_DEBUG_TOGGLES=true`)."""

from __future__ import annotations

import httpx
import pytest

from miro_bridge.config import AuthMode
from miro_bridge.http.debug import ForcedRateLimits
from tests.support import OTHER_USER, USER, Miro, StartBridge, connect, id_token

AS_USER = {"X-User-Id": USER}
AS_OTHER = {"X-User-Id": OTHER_USER}


def assert_forced_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["requestId"] == response.headers["x-request-id"]


def assert_bad_request(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"


def test_the_count_covers_the_asking_request_and_the_following_ones() -> None:
    forced = ForcedRateLimits()
    assert not forced
    assert forced.take("user 1", 3)
    assert forced.take("user 1", None)
    assert not forced.take("user 2", None)
    assert forced.take("user 1", None)
    assert not forced.take("user 1", None)
    assert not forced  # nothing kept once a sender's count is spent
    assert forced.take("user 1", 2)
    assert forced.take("user 1", 1)  # asking again starts the count again
    assert not forced.take("user 1", None)


async def test_toggles_are_off_by_default(start_bridge: StartBridge, miro: Miro) -> None:
    bridge = await start_bridge()
    assert bridge.settings.debug_toggles is False
    await connect(bridge, miro)
    for value in ("2", "banana"):
        response = await bridge.client.get("/health", headers={"X-Debug-429": value})
        assert response.status_code == 200
    assert (await bridge.client.get("/health")).status_code == 200
    limits = await bridge.client.get("/api/limits", headers={**AS_USER, "X-Debug-Limits": "5"})
    assert limits.json()["bucket_fill"] == {USER: 100}
    status = await bridge.client.get(
        "/api/auth/status", headers={**AS_USER, "X-Debug-Auth": "expired"}
    )
    assert status.status_code == 200


async def test_x_debug_429_answers_the_senders_next_requests_429(
    start_bridge: StartBridge,
) -> None:
    bridge = await start_bridge(debug_toggles=True)
    asking = await bridge.client.get("/api/limits", headers={**AS_USER, "X-Debug-429": "2"})
    assert_forced_429(asking)
    assert (await bridge.client.get("/api/limits", headers=AS_OTHER)).status_code == 200
    assert (await bridge.client.get("/health")).status_code == 200  # no user: its address
    assert_forced_429(await bridge.client.post("/api/batch", headers=AS_USER, json={}))
    assert (await bridge.client.get("/api/limits", headers=AS_USER)).status_code == 200
    assert (await bridge.client.get("/api/limits", headers=AS_USER)).status_code == 200


async def test_without_a_user_the_address_is_the_sender(start_bridge: StartBridge) -> None:
    bridge = await start_bridge(debug_toggles=True)
    assert_forced_429(await bridge.client.get("/health", headers={"X-Debug-429": "2"}))
    assert (await bridge.client.get("/health", headers=AS_USER)).status_code == 200
    assert_forced_429(await bridge.client.get("/metrics"))
    assert (await bridge.client.get("/health")).status_code == 200


async def test_in_id_token_mode_the_sender_is_the_tokens_user(start_bridge: StartBridge) -> None:
    bridge = await start_bridge(debug_toggles=True, auth_mode=AuthMode.ID_TOKEN)
    mine = {"Authorization": f"Bearer {id_token()}"}
    theirs = {"Authorization": f"Bearer {id_token(user=OTHER_USER)}"}
    assert_forced_429(await bridge.client.get("/health", headers={**mine, "X-Debug-429": "2"}))
    assert (await bridge.client.get("/health", headers=theirs)).status_code == 200
    assert (await bridge.client.get("/health")).status_code == 200
    # An X-User-Id that the token does not back is not the user: the address is the sender.
    assert (await bridge.client.get("/health", headers=AS_USER)).status_code == 200
    assert_forced_429(await bridge.client.get("/health", headers=mine))
    assert (await bridge.client.get("/health", headers=mine)).status_code == 200


@pytest.mark.parametrize("value", ["0", "101", "two", "", "1.5", "-1"])
async def test_a_bad_x_debug_429_is_a_400(start_bridge: StartBridge, value: str) -> None:
    bridge = await start_bridge(debug_toggles=True)
    assert_bad_request(
        await bridge.client.get("/health", headers={**AS_USER, "X-Debug-429": value})
    )
    assert (await bridge.client.get("/health", headers=AS_USER)).status_code == 200


async def test_x_debug_limits_sets_the_callers_bucket_fill(start_bridge: StartBridge) -> None:
    bridge = await start_bridge(debug_toggles=True)
    for value, fill in (("7", 7), ("0", 0), ("100", 100)):
        response = await bridge.client.get(
            "/api/limits", headers={**AS_USER, "X-Debug-Limits": value}
        )
        assert response.status_code == 200
        assert response.json()["bucket_fill"] == {USER: fill}
    for value in ("101", "-3", "most"):
        assert_bad_request(
            await bridge.client.get("/api/limits", headers={**AS_USER, "X-Debug-Limits": value})
        )


async def test_x_debug_auth_expired_makes_auth_status_a_404(
    start_bridge: StartBridge, miro: Miro
) -> None:
    bridge = await start_bridge(debug_toggles=True)
    await connect(bridge, miro)
    assert (await bridge.client.get("/api/auth/status", headers=AS_USER)).status_code == 200
    expired = await bridge.client.get(
        "/api/auth/status", headers={**AS_USER, "X-Debug-Auth": "expired"}
    )
    assert expired.status_code == 404
    assert expired.json()["code"] == "not_found"
    assert_bad_request(
        await bridge.client.get("/api/auth/status", headers={**AS_USER, "X-Debug-Auth": "soon"})
    )


async def test_a_preflight_allows_the_toggles_only_when_they_are_on(
    start_bridge: StartBridge,
) -> None:
    origin = "https://board.example.com"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "GET"}
    for toggles in (False, True):
        bridge = await start_bridge(cors_origins=(origin,), debug_toggles=toggles)
        response = await bridge.client.options("/api/limits", headers=preflight)
        allowed = response.headers["access-control-allow-headers"].lower()
        assert ("x-debug-429" in allowed) is toggles
        assert (await bridge.client.get("/health")).status_code == 200  # not counted
