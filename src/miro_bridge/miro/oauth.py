"""Miro's OAuth endpoints: code exchange, refresh, token context, revocation.

Plain async functions over an `httpx.AsyncClient` owned by the TokenStore actor. Failures
become the project's errors: Miro refusing a token is `TokenRejected`; Miro unreachable or
answering something unusable is `UpstreamError` (502).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import attrs
import httpx

from miro_bridge.config import Settings
from miro_bridge.errors import UpstreamError
from miro_bridge.tracing import URL_TEMPLATE


class TokenRejected(UpstreamError):
    """Miro said the code or token is invalid, expired or revoked."""

    status = 401
    code = "unauthorized"


@attrs.frozen
class TokenGrant:
    """What Miro's token endpoint answers (both grants)."""

    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(repr=False)
    expires_in: float | None
    scopes: tuple[str, ...]
    user_id: str
    team_id: str | None


@attrs.frozen
class TokenContext:
    """Who an access token belongs to (`GET /v1/oauth-token`)."""

    user_id: str
    user_name: str
    team_id: str | None
    scopes: tuple[str, ...]


def authorize_url(settings: Settings, state: str) -> str:
    """Miro's authorize URL for a login with `state`."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.client_id,
            "redirect_uri": settings.oauth_redirect_uri,
            "state": state,
        }
    )
    return f"{settings.oauth_authorize_url}?{query}"


async def _send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    request.extensions[URL_TEMPLATE] = request.url.path  # OAuth paths hold no ids
    try:
        return await client.send(request)
    except httpx.HTTPError as error:
        raise UpstreamError(
            f"Miro did not answer {request.url.path}: {type(error).__name__}"
        ) from error


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise UpstreamError(f"Miro answered {response.request.url.path} with a non-JSON body")
    return body


def _grant(response: httpx.Response) -> TokenGrant:
    if response.status_code in (400, 401):
        raise TokenRejected(f"Miro refused the grant ({response.status_code})")
    if response.status_code != 200:
        raise UpstreamError(f"Miro's token endpoint answered {response.status_code}")
    body = _json(response)
    try:
        expires_in = body.get("expires_in")
        team = body.get("team_id")
        return TokenGrant(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]) if body.get("refresh_token") else None,
            expires_in=float(expires_in) if expires_in is not None else None,
            scopes=tuple(str(body.get("scope", "")).split()),
            user_id=str(body["user_id"]),
            team_id=str(team) if team is not None else None,
        )
    except (KeyError, TypeError, ValueError):
        raise UpstreamError("Miro's token response lacks access_token or user_id") from None


async def _grant_request(
    client: httpx.AsyncClient, settings: Settings, **fields: str
) -> TokenGrant:
    """POST Miro's token endpoint with the app's credentials and `fields` (a form body)."""
    form = {"client_id": settings.client_id, "client_secret": settings.client_secret, **fields}
    request = client.build_request("POST", settings.oauth_token_url, data=form)
    return _grant(await _send(client, request))


async def exchange_code(client: httpx.AsyncClient, settings: Settings, code: str) -> TokenGrant:
    """Trade an authorization code for a token pair."""
    return await _grant_request(
        client,
        settings,
        grant_type="authorization_code",
        code=code,
        redirect_uri=settings.oauth_redirect_uri,
    )


async def refresh(client: httpx.AsyncClient, settings: Settings, refresh_token: str) -> TokenGrant:
    """Trade a refresh token for a new pair; Miro invalidates the old one (rotation)."""
    return await _grant_request(
        client, settings, grant_type="refresh_token", refresh_token=refresh_token
    )


async def token_context(
    client: httpx.AsyncClient, settings: Settings, access_token: str
) -> TokenContext:
    """Who `access_token` belongs to; `TokenRejected` if Miro does not know it."""
    request = client.build_request(
        "GET",
        f"{settings.api_base_url}/v1/oauth-token",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    response = await _send(client, request)
    if response.status_code in (400, 401, 403):
        raise TokenRejected("Miro does not recognise this access token")
    if response.status_code != 200:
        raise UpstreamError(f"Miro's token context answered {response.status_code}")
    body = _json(response)
    try:
        user = body["user"]
        team = body.get("team") or {}
        return TokenContext(
            user_id=str(user["id"]),
            user_name=str(user.get("name", "")),
            team_id=str(team["id"]) if "id" in team else None,
            scopes=tuple(str(s) for s in body.get("scopes", ())),
        )
    except (KeyError, TypeError):
        raise UpstreamError("Miro's token context lacks the user") from None


async def revoke(client: httpx.AsyncClient, settings: Settings, access_token: str) -> None:
    """Revoke a token pair at Miro; a token Miro no longer knows counts as revoked."""
    request = client.build_request(
        "POST",
        f"{settings.api_base_url}/v2/oauth/revoke",
        json={
            "accessToken": access_token,
            "clientId": settings.client_id,
            "clientSecret": settings.client_secret,
        },
    )
    response = await _send(client, request)
    if response.status_code not in (200, 204, 404):
        raise UpstreamError(f"Miro's revoke endpoint answered {response.status_code}")
