"""Miro's OAuth 2.0 authorization-code flow: codes, token pairs, rotation, revocation.

The sandbox knows one app (the configured client id and secret) and accepts any redirect URI
on a loopback host. Codes are single-use and expire after 10 minutes; access tokens after
`expires_in` (3599 s); refresh tokens after 60 days. Refreshing rotates both tokens and
invalidates the old pair.
"""

from __future__ import annotations

import ipaddress
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

import attrs

from miro_bridge.sandbox._config import SandboxConfig
from miro_bridge.sandbox._errors import (
    ApiError,
    invalid,
    oauth_error,
    token_not_found,
    token_not_provided,
)

DEFAULT_USER = "3458764500000000001"
"""The user `GET /oauth/authorize` consents as when no `sandbox_user` is given."""

TEAM_ID = "3458764500000000000"
TEAM_NAME = "Sandbox team"
ORGANIZATION_ID = "3458764500000000002"
ORGANIZATION_NAME = "Sandbox organization"
SCOPES = ("boards:read", "boards:write")

CODE_SECONDS = 600.0
ACCESS_SECONDS = 3599
REFRESH_SECONDS = 60 * 24 * 3600.0


def user_name(user_id: str) -> str:
    """The display name the sandbox gives a user."""
    return f"Sandbox user {user_id}"


@attrs.frozen
class Session:
    """Who a valid access token speaks for."""

    user_id: str
    client_id: str
    access_token: str


@attrs.define
class _Code:
    user_id: str
    client_id: str
    redirect_uri: str
    expires_at: float


@attrs.define
class _Pair:
    access_token: str
    refresh_token: str
    user_id: str
    client_id: str
    access_expires_at: float
    refresh_expires_at: float


def is_loopback_uri(uri: str) -> bool:
    """True for an http(s) URI whose host is localhost or a loopback address."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class OAuthStore:
    """Authorization codes and token pairs of the sandbox's one app."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._codes: dict[str, _Code] = {}
        self._by_access: dict[str, _Pair] = {}
        self._by_refresh: dict[str, _Pair] = {}

    def authorize(self, params: Mapping[str, str]) -> str:
        """Consent as `sandbox_user` and answer the URL to redirect the browser to."""
        if params.get("response_type") != "code":
            raise invalid("response_type", "Must be code")
        if params.get("client_id") != self._config.client_id:
            raise invalid("client_id", "Unknown client id")
        redirect_uri = params.get("redirect_uri", "")
        if not is_loopback_uri(redirect_uri):
            raise invalid("redirect_uri", "Must be an http(s) URI on a loopback host")
        user_id = params.get("sandbox_user") or DEFAULT_USER
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            user_id=user_id,
            client_id=self._config.client_id,
            redirect_uri=redirect_uri,
            expires_at=self._config.clock() + CODE_SECONDS,
        )
        answer = {"code": code}
        if "state" in params:
            answer["state"] = params["state"]
        answer |= {"client_id": self._config.client_id, "team_id": TEAM_ID}
        separator = "&" if urllib.parse.urlsplit(redirect_uri).query else "?"
        return redirect_uri + separator + urllib.parse.urlencode(answer)

    def exchange(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Answer `POST /v1/oauth/token` for either grant."""
        grant_type = params.get("grant_type")
        if grant_type not in {"authorization_code", "refresh_token"}:
            raise invalid("grant_type", "Must be authorization_code or refresh_token")
        if (
            params.get("client_id") != self._config.client_id
            or params.get("client_secret") != self._config.client_secret
        ):
            raise oauth_error("Invalid client credentials.")
        if grant_type == "authorization_code":
            return self._redeem(params)
        return self._refresh(params)

    def _redeem(self, params: Mapping[str, str]) -> dict[str, Any]:
        code = self._codes.pop(params.get("code", ""), None)
        if code is None or self._config.clock() >= code.expires_at:
            raise oauth_error("Invalid authorization code.")
        if params.get("redirect_uri") != code.redirect_uri:
            raise oauth_error("Redirect URI mismatch.")
        return self.issue(code.user_id, code.client_id)

    def _refresh(self, params: Mapping[str, str]) -> dict[str, Any]:
        pair = self._by_refresh.get(params.get("refresh_token", ""))
        if pair is None or self._config.clock() >= pair.refresh_expires_at:
            raise oauth_error("Invalid refresh token.")
        self._forget(pair)
        return self.issue(pair.user_id, pair.client_id)

    def issue(self, user_id: str, client_id: str | None = None) -> dict[str, Any]:
        """Mint a token pair for a user and answer it as the token endpoint does."""
        now = self._config.clock()
        pair = _Pair(
            access_token=secrets.token_urlsafe(32),
            refresh_token=secrets.token_urlsafe(32),
            user_id=user_id,
            client_id=client_id or self._config.client_id,
            access_expires_at=now + ACCESS_SECONDS,
            refresh_expires_at=now + REFRESH_SECONDS,
        )
        self._by_access[pair.access_token] = pair
        self._by_refresh[pair.refresh_token] = pair
        return {
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "expires_in": ACCESS_SECONDS,
            "token_type": "bearer",
            "scope": " ".join(reversed(SCOPES)),
            "user_id": user_id,
            "team_id": TEAM_ID,
        }

    def _forget(self, pair: _Pair) -> None:
        self._by_access.pop(pair.access_token, None)
        self._by_refresh.pop(pair.refresh_token, None)

    def _live(self, access_token: str | None) -> _Pair | None:
        pair = self._by_access.get(access_token or "")
        if pair is None or self._config.clock() >= pair.access_expires_at:
            return None
        return pair

    def authenticate(self, access_token: str | None) -> Session:
        """The session of a valid access token; raise Miro's 401 otherwise."""
        if not access_token:
            raise token_not_provided()
        pair = self._live(access_token)
        if pair is None:
            raise token_not_found()
        return Session(pair.user_id, pair.client_id, pair.access_token)

    def user_of(self, access_token: str | None) -> str | None:
        """The user of a token, valid or not, for the request log."""
        pair = self._by_access.get(access_token or "")
        return None if pair is None else pair.user_id

    def token_info(self, access_token: str | None) -> dict[str, Any]:
        """Answer `GET /v1/oauth-token`; raise 400 for an invalid token, as Miro does."""
        pair = self._live(access_token)
        if pair is None:
            raise ApiError(400, "invalidToken", "The access token is not valid")
        user = {"type": "user", "name": user_name(pair.user_id), "id": pair.user_id}
        return {
            "type": "oauth_token",
            "organization": {
                "type": "organization",
                "name": ORGANIZATION_NAME,
                "id": ORGANIZATION_ID,
            },
            "team": {"type": "team", "name": TEAM_NAME, "id": TEAM_ID},
            "createdBy": user,
            "user": user,
            "scopes": list(SCOPES),
        }

    def revoke(self, access_token: str, client_id: str, client_secret: str) -> bool:
        """Revoke an access token and its refresh token; False when nothing was revoked."""
        pair = self._by_access.get(access_token)
        if (
            pair is None
            or client_id != pair.client_id
            or client_id != self._config.client_id
            or client_secret != self._config.client_secret
        ):
            return False
        self._forget(pair)
        return True

    def expire_all(self) -> None:
        """Make every access token expired now; refresh tokens keep working."""
        now = self._config.clock()
        for pair in self._by_access.values():
            pair.access_expires_at = min(pair.access_expires_at, now)
