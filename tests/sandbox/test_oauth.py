"""OAuth: authorize, code exchange, refresh rotation, token info, revocation, expiry."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
import trio
import trio.testing

from miro_bridge.sandbox import Sandbox

from .conftest import OTHER_USER, USER, bearer

REDIRECT = "http://127.0.0.1:8765/oauth/callback"
CLIENT = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}


async def authorize(client: httpx.AsyncClient, **extra: str) -> dict[str, str]:
    """Follow `GET /oauth/authorize` and answer the query of the redirect."""
    params = {
        "response_type": "code",
        "client_id": "sandbox-client",
        "redirect_uri": REDIRECT,
        "state": "csrf-42",
    } | extra
    response = await client.get("/oauth/authorize", params=params)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


async def exchange(client: httpx.AsyncClient, code: str) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    return await client.post("/v1/oauth/token", data=form | CLIENT)


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await client.post("/v1/oauth/token", data=form | CLIENT)


def assert_token_answer(answer: dict[str, object], user_id: str) -> None:
    assert set(answer) == {
        "access_token",
        "refresh_token",
        "expires_in",
        "token_type",
        "scope",
        "user_id",
        "team_id",
    }
    assert answer["expires_in"] == 3599
    assert answer["token_type"] == "bearer"
    assert answer["scope"] == "boards:write boards:read"
    assert answer["user_id"] == user_id
    assert isinstance(answer["team_id"], str)
    assert answer["team_id"].isdigit()


async def test_authorization_code_flow(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    query = await authorize(client)
    assert query["state"] == "csrf-42"
    assert query["client_id"] == "sandbox-client"
    assert query["team_id"].isdigit()

    response = await exchange(client, query["code"])
    assert response.status_code == 200
    tokens = response.json()
    assert_token_answer(tokens, USER)

    info = await client.get("/v1/oauth-token", headers=bearer(tokens))
    assert info.status_code == 200
    assert info.json()["user"]["id"] == USER
    assert info.json()["team"]["id"] == tokens["team_id"]
    assert set(info.json()["scopes"]) == {"boards:read", "boards:write"}

    boards = await client.get("/v2/boards", headers=bearer(tokens))
    assert boards.status_code == 200
    token_calls = [r for r in sandbox.requests() if r["path"] == "/v1/oauth/token"]
    assert token_calls == [
        {"method": "POST", "path": "/v1/oauth/token", "user": USER, "status": 200, "credits": 0}
    ]


async def test_authorize_consents_as_the_sandbox_user_parameter(client: httpx.AsyncClient) -> None:
    query = await authorize(client, sandbox_user=OTHER_USER)
    tokens = (await exchange(client, query["code"])).json()
    assert tokens["user_id"] == OTHER_USER


async def test_token_parameters_in_the_query_string(client: httpx.AsyncClient) -> None:
    """Miro's official clients send everything as query parameters of an empty POST."""
    query = await authorize(client)
    params = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT}
    response = await client.post("/v1/oauth/token", params=params | CLIENT)
    assert response.status_code == 200
    assert_token_answer(response.json(), USER)


async def test_authorize_redirect_keeps_the_redirect_uri_query(client: httpx.AsyncClient) -> None:
    params = {
        "response_type": "code",
        "client_id": "sandbox-client",
        "redirect_uri": "http://localhost:9000/cb?next=%2Fhome",
    }
    response = await client.get("/oauth/authorize", params=params)
    location = urllib.parse.urlsplit(response.headers["location"])
    query = dict(urllib.parse.parse_qsl(location.query))
    assert query["next"] == "/home"
    assert "code" in query
    assert "state" not in query


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"client_id": "someone-else"}, "client_id"),
        ({"redirect_uri": "https://evil.example.com/cb"}, "redirect_uri"),
        ({"redirect_uri": "not a uri"}, "redirect_uri"),
        ({"response_type": "token"}, "response_type"),
    ],
)
async def test_authorize_refuses_bad_requests(
    client: httpx.AsyncClient, change: dict[str, str], field: str
) -> None:
    params = {"response_type": "code", "client_id": "sandbox-client", "redirect_uri": REDIRECT}
    response = await client.get("/oauth/authorize", params=params | change)
    assert response.status_code == 400
    assert response.json()["code"] == "invalidParameters"
    assert response.json()["context"]["fields"][0]["field"] == field


async def test_code_reuse_is_rejected(client: httpx.AsyncClient) -> None:
    code = (await authorize(client))["code"]
    assert (await exchange(client, code)).status_code == 200
    again = await exchange(client, code)
    assert again.status_code == 401
    assert again.json() == {
        "type": "error",
        "status": 401,
        "code": "oauthError",
        "message": "Invalid authorization code.",
        "context": None,
    }


async def test_code_expires_after_ten_minutes(
    client: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    fresh, stale = (await authorize(client))["code"], (await authorize(client))["code"]
    await trio.sleep(599)
    assert (await exchange(client, fresh)).status_code == 200
    await trio.sleep(1)
    assert (await exchange(client, stale)).status_code == 401


async def test_exchange_needs_the_same_redirect_uri(client: httpx.AsyncClient) -> None:
    code = (await authorize(client))["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT + "/x"}
    response = await client.post("/v1/oauth/token", data=form | CLIENT)
    assert response.status_code == 401
    assert response.json()["message"] == "Redirect URI mismatch."


async def test_exchange_needs_the_client_secret(client: httpx.AsyncClient) -> None:
    code = (await authorize(client))["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    wrong = {"client_id": "sandbox-client", "client_secret": "guess"}
    response = await client.post("/v1/oauth/token", data=form | wrong)
    assert response.status_code == 401
    assert response.json()["code"] == "oauthError"


async def test_unknown_grant_type_is_invalid(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/oauth/token", data={"grant_type": "password"} | CLIENT)
    assert response.status_code == 400
    assert response.json()["context"]["fields"][0]["field"] == "grant_type"


async def test_refresh_rotates_both_tokens(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    old = sandbox.issue_tokens(USER)
    response = await refresh(client, old["refresh_token"])
    assert response.status_code == 200
    new = response.json()
    assert_token_answer(new, USER)
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]

    assert (await client.get("/v2/boards", headers=bearer(new))).status_code == 200
    old_access = await client.get("/v2/boards", headers=bearer(old))
    assert old_access.status_code == 401
    assert old_access.json()["code"] == "tokenNotFound"
    old_refresh = await refresh(client, old["refresh_token"])
    assert old_refresh.status_code == 401
    assert old_refresh.json()["message"] == "Invalid refresh token."
    assert (await refresh(client, new["refresh_token"])).status_code == 200


async def test_access_token_expires_after_expires_in(
    client: httpx.AsyncClient, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    tokens = sandbox.issue_tokens(USER)
    await trio.sleep(3598)
    assert (await client.get("/v2/boards", headers=bearer(tokens))).status_code == 200
    await trio.sleep(1)
    expired = await client.get("/v2/boards", headers=bearer(tokens))
    assert expired.status_code == 401
    assert expired.json()["code"] == "tokenNotFound"
    assert (await refresh(client, tokens["refresh_token"])).status_code == 200


async def test_expire_tokens_expires_access_not_refresh(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    tokens = sandbox.issue_tokens(USER)
    sandbox.expire_tokens()
    assert (await client.get("/v2/boards", headers=bearer(tokens))).status_code == 401
    fresh = await refresh(client, tokens["refresh_token"])
    assert (await client.get("/v2/boards", headers=bearer(fresh.json()))).status_code == 200


async def test_token_info_of_an_invalid_token_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/oauth-token", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 400


async def test_token_info_takes_the_token_as_query_parameter(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    tokens = sandbox.issue_tokens(OTHER_USER)
    response = await client.get("/v1/oauth-token", params={"access_token": tokens["access_token"]})
    assert response.json()["user"]["id"] == OTHER_USER


async def test_revoke_v2_revokes_access_and_refresh(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    tokens = sandbox.issue_tokens(USER)
    body = {
        "accessToken": tokens["access_token"],
        "clientId": "sandbox-client",
        "clientSecret": "sandbox-secret",
    }
    response = await client.post("/v2/oauth/revoke", json=body)
    assert response.status_code == 204
    assert (await client.get("/v2/boards", headers=bearer(tokens))).status_code == 401
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401
    again = await client.post("/v2/oauth/revoke", json=body)
    assert again.status_code == 404


async def test_revoke_v2_needs_the_client_secret(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    tokens = sandbox.issue_tokens(USER)
    body = {"accessToken": tokens["access_token"], "clientId": "sandbox-client"}
    assert (await client.post("/v2/oauth/revoke", json=body)).status_code == 400
    wrong = body | {"clientSecret": "guess"}
    assert (await client.post("/v2/oauth/revoke", json=wrong)).status_code == 404
    assert (await client.get("/v2/boards", headers=bearer(tokens))).status_code == 200


async def test_deprecated_revoke_v1(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    tokens = sandbox.issue_tokens(USER)
    response = await client.post(
        "/v1/oauth/revoke", params={"access_token": tokens["access_token"]}
    )
    assert response.status_code == 204
    assert (await client.get("/v2/boards", headers=bearer(tokens))).status_code == 401


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "tokenNotProvided"),
        ({"Authorization": "Basic c2FuZGJveDpzZWNyZXQ="}, "tokenNotProvided"),
        ({"Authorization": "Bearer not-a-token"}, "tokenNotFound"),
    ],
)
async def test_rest_calls_need_a_valid_token(
    client: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    response = await client.get("/v2/boards", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response.json()["type"] == "error"
    assert "X-RateLimit-Limit" not in response.headers
