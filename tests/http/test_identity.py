"""Identity end to end: OAuth with the sandbox Miro, tokens, users, auth modes, logout."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import pytest
import trio
from cryptography.fernet import Fernet

from miro_bridge import maintenance
from miro_bridge.actors.token_store import GetAccessToken
from miro_bridge.config import AuthMode
from miro_bridge.errors import Disconnected
from miro_bridge.store.crypto import TokenCipher
from tests.support import (
    OTHER_USER,
    USER,
    Bridge,
    ManualClock,
    Miro,
    StartBridge,
    id_token,
    metric,
)

KEY = Fernet.generate_key().decode()
OLD_KEY = Fernet.generate_key().decode()


async def authorize(bridge: Bridge, *, as_user: str = USER, **query: str) -> httpx.Response:
    """Walk the OAuth flow as a browser would, up to (not following) the callback's redirect."""
    login = await bridge.client.get("/oauth/login", params=query)
    assert login.status_code == 302, login.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(f"{login.headers['location']}&sandbox_user={as_user}")
        assert consent.status_code == 302, consent.text
        callback = consent.headers["location"]
        assert callback.startswith(f"{bridge.url}/oauth/callback?")
        return await browser.get(callback)


async def connect(bridge: Bridge, user: str = USER) -> None:
    response = await authorize(bridge, as_user=user)
    assert response.status_code == 302, response.text


def token_requests(miro: Miro) -> int:
    return sum(1 for r in miro.sandbox.requests() if r["path"] == "/v1/oauth/token")


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.json()["requestId"] == response.headers["x-request-id"]


@pytest.mark.backends
async def test_login_flow_end_to_end(bridge: Bridge, miro: Miro) -> None:
    response = await authorize(bridge, returnUrl="/app.html?board=1")
    assert response.status_code == 302
    assert response.headers["location"] == "/app.html?board=1"

    status = await bridge.client.get("/api/auth/status", headers={"X-User-Id": USER})
    assert status.status_code == 200
    body = status.json()
    assert body["authorized"] is True
    assert body["userId"] == USER
    assert body["expiresAt"].endswith("Z")
    assert set(body["scopes"]) == {"boards:read", "boards:write"}

    other = await bridge.client.get("/api/auth/status", headers={"X-User-Id": OTHER_USER})
    assert_error(other, 404, "not_found")
    assert_error(await bridge.client.get("/api/auth/status"), 400, "bad_request")


async def test_login_defaults_to_app_html(bridge: Bridge) -> None:
    response = await authorize(bridge)
    assert response.headers["location"] == "/app.html"


@pytest.mark.backends
async def test_forged_replayed_and_expired_states_are_refused(
    bridge: Bridge, clock: ManualClock
) -> None:
    forged = await bridge.client.get("/oauth/callback", params={"code": "c", "state": "forged"})
    assert_error(forged, 400, "bad_request")

    login = await bridge.client.get("/oauth/login")
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(login.headers["location"])
        callback = consent.headers["location"]
        assert (await browser.get(callback)).status_code == 302
        assert_error(await browser.get(callback), 400, "bad_request")  # replayed

        login = await bridge.client.get("/oauth/login")
        consent = await browser.get(login.headers["location"])
        clock.advance(601)  # the state expires after 10 minutes
        assert_error(await browser.get(consent.headers["location"]), 400, "bad_request")


async def test_access_denied_and_missing_parameters(bridge: Bridge) -> None:
    denied = await bridge.client.get(
        "/oauth/callback", params={"error": "access_denied", "state": "x"}
    )
    assert_error(denied, 400, "bad_request")
    assert "access_denied" in denied.json()["message"]
    assert_error(await bridge.client.get("/oauth/callback"), 400, "bad_request")


async def test_failed_code_exchange_is_a_502(bridge: Bridge) -> None:
    login = await bridge.client.get("/oauth/login")
    state = parse_qs(urlsplit(login.headers["location"]).query)["state"][0]
    response = await bridge.client.get(
        "/oauth/callback", params={"code": "not-a-code", "state": state}
    )
    assert_error(response, 502, "upstream_error")


async def test_exchange_with_miro_down_is_a_502(start_bridge: StartBridge) -> None:
    bridge = await start_bridge(oauth_token_url="http://127.0.0.1:9/v1/oauth/token")
    login = await bridge.client.get("/oauth/login")
    state = parse_qs(urlsplit(login.headers["location"]).query)["state"][0]
    response = await bridge.client.get("/oauth/callback", params={"code": "c", "state": state})
    assert_error(response, 502, "upstream_error")


@pytest.mark.parametrize(
    "return_url",
    [
        "https://evil.example/x",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.com",  # browsers drop the tab: //evil.com
        "/\n/evil.com",
        "/done\r\nSet-Cookie: stolen=1",
        "app.html",
        "/" + "a" * 2048,
    ],
)
async def test_unsafe_return_urls_are_refused(bridge: Bridge, return_url: str) -> None:
    response = await bridge.client.get("/oauth/login", params={"returnUrl": return_url})
    assert_error(response, 400, "bad_request")
    assert "location" not in response.headers


async def test_same_site_is_the_public_origin_never_the_host_header(
    start_bridge: StartBridge,
) -> None:
    bridge = await start_bridge(public_url="https://bridge.example")
    for target in ("https://evil.example/after-login", "http://evil.example/"):
        response = await bridge.client.get(
            "/oauth/login", params={"returnUrl": target}, headers={"Host": "evil.example"}
        )
        assert_error(response, 400, "bad_request")
    userinfo = await bridge.client.get(
        "/oauth/login", params={"returnUrl": "https://me@bridge.example/app.html"}
    )
    assert_error(userinfo, 400, "bad_request")
    response = await authorize(bridge, returnUrl="https://bridge.example/app.html?board=1")
    assert response.headers["location"] == "https://bridge.example/app.html?board=1"


async def test_the_public_origin_defaults_to_the_redirect_uris(bridge: Bridge) -> None:
    own = await authorize(bridge, returnUrl=f"{bridge.url}/app.html")
    assert own.headers["location"] == f"{bridge.url}/app.html"


async def test_return_url_on_an_allowed_origin(start_bridge: StartBridge) -> None:
    bridge = await start_bridge(cors_origins=("https://board.example",))
    response = await authorize(bridge, returnUrl="https://board.example/done")
    assert response.headers["location"] == "https://board.example/done"


async def test_state_is_bound_to_the_user_it_was_made_for(bridge: Bridge) -> None:
    response = await authorize(bridge, as_user=OTHER_USER, userId=USER)
    assert_error(response, 400, "bad_request")
    status = await bridge.client.get("/api/auth/status", headers={"X-User-Id": OTHER_USER})
    assert status.status_code == 404


@pytest.mark.backends
async def test_fifty_callers_cause_one_refresh(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    await connect(bridge)
    first = await bridge.actors.tokens.call(GetAccessToken(USER))
    clock.advance(3600)  # for the bridge and Miro alike: the access token has expired
    before = token_requests(miro)
    tokens: list[str] = []

    async def caller() -> None:
        tokens.append(await bridge.actors.tokens.call(GetAccessToken(USER)))

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(caller)
    assert token_requests(miro) - before == 1
    assert len(tokens) == 50
    assert len(set(tokens)) == 1
    assert tokens[0] != first
    # The new token works at Miro; the old one no longer does (rotation).
    async with httpx.AsyncClient(base_url=miro.url) as client:
        ok = await client.get("/v1/oauth-token", headers={"Authorization": f"Bearer {tokens[0]}"})
        assert ok.status_code == 200
        old = await client.get("/v1/oauth-token", headers={"Authorization": f"Bearer {first}"})
        assert old.status_code != 200


async def test_refreshes_are_counted_by_outcome(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    await connect(bridge)
    assert await metric(bridge, "token_refreshes", outcome="refreshed") == 0
    clock.advance(3600)
    await bridge.actors.tokens.call(GetAccessToken(USER))
    assert await metric(bridge, "token_refreshes", outcome="refreshed") == 1
    miro.sandbox.reset()  # the refresh token is dead now
    clock.advance(3600)
    with pytest.raises(Disconnected):
        await bridge.actors.tokens.call(GetAccessToken(USER))
    assert await metric(bridge, "token_refreshes", outcome="rejected") == 1
    assert await metric(bridge, "token_refreshes", outcome="failed") == 0


@pytest.mark.backends
async def test_rejected_refresh_disconnects_the_user(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    await connect(bridge)
    miro.sandbox.reset()  # Miro forgets every token: the refresh token is dead
    clock.advance(3600)
    with pytest.raises(Disconnected, match="connect again"):
        await bridge.actors.tokens.call(GetAccessToken(USER))
    status = await bridge.client.get("/api/auth/status", headers={"X-User-Id": USER})
    assert_error(status, 404, "not_found")


async def test_tokens_are_encrypted_at_rest_and_never_logged(
    start_bridge: StartBridge, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    from miro_bridge.logs import configure_logging

    configure_logging(pretty=False)
    bridge = await start_bridge(encryption_keys=(KEY,))
    await connect(bridge)
    seen: set[str] = set()
    for _ in range(2):  # the first pair, then the refreshed one
        seen.add(await bridge.actors.tokens.call(GetAccessToken(USER)))
        seen.add(TokenCipher((KEY,)).decrypt((await read_row(bridge))["refresh_token"]))
        clock.advance(3600)
    assert len(seen) == 4
    database = bridge.settings.database_path
    raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    await bridge.client.post("/api/logout", headers={"X-User-Id": USER})
    logs = capsys.readouterr().out
    assert "tokens.stored" in logs
    assert "tokens.refreshed" in logs
    assert "tokens.revoked" in logs
    for token in seen:
        assert token.encode() not in raw
        assert token not in logs


async def read_row(bridge: Bridge) -> dict[str, Any]:
    from miro_bridge.store import users

    stored = await bridge.actors.store.call(users.GetTokens(USER))
    assert stored is not None
    return attrs.asdict(stored)


@pytest.mark.backends
async def test_old_key_still_decrypts_and_rotate_keys_moves_to_the_new_one(
    start_bridge: StartBridge, settings: Any, nursery: trio.Nursery
) -> None:
    old = await start_bridge(encryption_keys=(OLD_KEY,))
    await connect(old)
    token = await old.actors.tokens.call(GetAccessToken(USER))
    await old.actors.supervisor.stop()

    # The new key first, the old one still listed: tokens stored with the old key still read.
    both = await start_bridge(encryption_keys=(KEY, OLD_KEY))
    assert await both.actors.tokens.call(GetAccessToken(USER)) == token
    await both.actors.supervisor.stop()

    assert await maintenance.rotate_keys(both.settings) == 1
    only_new = await start_bridge(encryption_keys=(KEY,))
    assert await only_new.actors.tokens.call(GetAccessToken(USER)) == token


@pytest.mark.backends
async def test_rotate_keys_refuses_without_a_key_that_decrypts(
    start_bridge: StartBridge,
) -> None:
    from miro_bridge.store.crypto import UndecryptableToken

    first = await start_bridge(encryption_keys=(OLD_KEY,))
    await connect(first)
    await first.actors.supervisor.stop()
    with pytest.RaisesGroup(UndecryptableToken, flatten_subgroups=True):
        await maintenance.rotate_keys(attrs.evolve(first.settings, encryption_keys=(KEY,)))


async def test_id_token_mode(start_bridge: StartBridge) -> None:
    bridge = await start_bridge(auth_mode=AuthMode.ID_TOKEN)
    await connect(bridge)

    def status(token: str | None, **headers: str) -> Any:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return bridge.client.get("/api/auth/status", headers=headers)

    accepted = await status(id_token())
    assert accepted.status_code == 200
    assert accepted.json()["userId"] == USER
    assert (await status(id_token(), **{"X-User-Id": USER})).status_code == 200

    now = int(time.time())
    refused = {
        "no token": await status(None, **{"X-User-Id": USER}),
        "wrong secret": await status(id_token(secret="not-the-secret")),
        "expired": await status(id_token(iat=now - 7200, exp=now - 3600)),
        "wrong sub": await status(id_token(sub="another-app")),
        "wrong issuer": await status(id_token(iss="someone")),
        "missing user": await status(id_token(user=None)),
        "mismatched header": await status(id_token(), **{"X-User-Id": OTHER_USER}),
        "not a jwt": await status("opaque-token"),
    }
    for reason, response in refused.items():
        assert response.status_code == 401, reason
        assert response.json()["code"] == "unauthorized", reason


async def test_register_with_an_id_token_keeps_stored_tokens(bridge: Bridge) -> None:
    await connect(bridge)
    token = await bridge.actors.tokens.call(GetAccessToken(USER))
    body = {"id": USER, "name": "Ada", "access_token": id_token(), "refresh_token": ""}
    first = await bridge.client.post("/api/users", json=body)
    assert first.status_code == 200  # the login already created the user
    assert first.json()["name"] == "Ada"
    assert first.json()["expiresAt"].endswith("Z")
    assert set(first.json()) == {"id", "name", "expiresAt"}
    assert await bridge.actors.tokens.call(GetAccessToken(USER)) == token

    newcomer = {**body, "id": OTHER_USER, "access_token": id_token(user=OTHER_USER)}
    created = await bridge.client.post("/api/users", json=newcomer)
    assert created.status_code == 201
    assert created.json() == {"id": OTHER_USER, "name": "Ada", "expiresAt": None}
    again = await bridge.client.post("/api/users", json=newcomer)
    assert again.status_code == 200


async def test_register_refuses_bad_jwts_and_stores_nothing(bridge: Bridge) -> None:
    for token in (
        id_token(secret="wrong"),
        id_token(user=OTHER_USER),  # valid, but for someone else
        "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjoiMSJ9.c2lnbmF0dXJl",
    ):
        body = {"id": USER, "name": "Mallory", "access_token": token, "refresh_token": ""}
        assert_error(await bridge.client.post("/api/users", json=body), 401, "unauthorized")
    status = await bridge.client.get("/api/auth/status", headers={"X-User-Id": USER})
    assert status.status_code == 404
    from miro_bridge.store import users

    assert await bridge.actors.store.call(users.GetUser(USER)) is None


@pytest.mark.backends
async def test_register_with_an_opaque_token(
    bridge: Bridge, miro: Miro, clock: ManualClock
) -> None:
    issued = miro.sandbox.issue_tokens(USER)
    body = {
        "id": USER,
        "name": "Ada",
        "access_token": issued["access_token"],
        "refresh_token": issued["refresh_token"],
        "expires_at": str(int((clock.now + 3599) * 1000)),  # JavaScript's milliseconds
    }
    response = await bridge.client.post("/api/users", json=body)
    assert response.status_code == 201, response.text
    assert issued["access_token"] not in response.text
    assert issued["refresh_token"] not in response.text
    assert await bridge.actors.tokens.call(GetAccessToken(USER)) == issued["access_token"]
    assert (
        await bridge.client.get("/api/auth/status", headers={"X-User-Id": USER})
    ).status_code == 200

    stolen = miro.sandbox.issue_tokens(OTHER_USER)
    body = {**body, "access_token": stolen["access_token"], "refresh_token": ""}
    assert_error(await bridge.client.post("/api/users", json=body), 401, "unauthorized")
    unknown = {**body, "access_token": "no-such-token"}
    assert_error(await bridge.client.post("/api/users", json=unknown), 401, "unauthorized")
    assert await bridge.actors.tokens.call(GetAccessToken(USER)) == issued["access_token"]


async def test_register_validates_the_body(bridge: Bridge) -> None:
    missing = await bridge.client.post("/api/users", json={"name": "x"})
    assert_error(missing, 422, "validation_error")
    assert missing.json()["detail"][0]["loc"][:2] == ["body", "id"] or "id" in missing.text
    not_digits = {"id": "abc", "access_token": "t"}
    assert_error(await bridge.client.post("/api/users", json=not_digits), 400, "bad_request")
    bad_expiry = {"id": USER, "access_token": "t", "expires_at": "soon"}
    response = await bridge.client.post("/api/users", json=bad_expiry)
    assert_error(response, 422, "validation_error")
    assert response.json()["detail"][0]["loc"] == ["body", "expires_at"]


@pytest.mark.backends
async def test_logout_revokes_at_miro_and_forgets(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge)
    token = await bridge.actors.tokens.call(GetAccessToken(USER))
    response = await bridge.client.post("/api/logout", headers={"X-User-Id": USER})
    assert response.status_code == 204
    assert any(r["path"] == "/v2/oauth/revoke" for r in miro.sandbox.requests())
    async with httpx.AsyncClient(base_url=miro.url) as client:
        check = await client.get("/v1/oauth-token", headers={"Authorization": f"Bearer {token}"})
        assert check.status_code != 200
    status = await bridge.client.get("/api/auth/status", headers={"X-User-Id": USER})
    assert status.status_code == 404
    again = await bridge.client.post("/api/logout", headers={"X-User-Id": USER})
    assert again.status_code == 204
