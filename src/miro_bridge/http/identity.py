"""Identity routes: the OAuth login with Miro, auth status, user registration, logout."""

from __future__ import annotations

import datetime
import math
import re
from typing import Any
from urllib.parse import urlsplit

import attrs
from quart import Quart, Response, redirect, request
from quart_schema import document_response, validate_request
from werkzeug.wrappers.response import Response as WerkzeugResponse

from miro_bridge.actors.system import ActorSystem
from miro_bridge.actors.token_store import (
    BeginLogin,
    CompleteLogin,
    ConnectWithToken,
    GetStatus,
    Logout,
    RegisterUser,
    Registration,
)
from miro_bridge.config import Settings
from miro_bridge.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    Unauthorized,
    UpstreamError,
    ValidationFailed,
)
from miro_bridge.http import debug
from miro_bridge.http.auth import (
    acting_user,
    checked_user_id,
    claimed_user,
    looks_like_jwt,
    verify_id_token,
)
from miro_bridge.http.openapi import document_status
from miro_bridge.miro.oauth import TokenRejected
from miro_bridge.timestamps import iso8601

DEFAULT_RETURN_URL = "/app.html"


def parse_expiry(raw: str) -> float | None:
    """`expires_at` as the client sends it: epoch seconds or milliseconds, or ISO-8601."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        number = float(raw)
    except ValueError:
        try:
            moment = datetime.datetime.fromisoformat(raw)
        except ValueError:
            raise ValidationFailed.at(
                ("body", "expires_at"), "not a timestamp (epoch seconds or ISO-8601)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    if not math.isfinite(number) or number <= 0:
        raise ValidationFailed.at(
            ("body", "expires_at"), "not a timestamp (epoch seconds or ISO-8601)"
        )
    return number / 1000 if number > 1e11 else number  # JavaScript's Date.now() is in ms


def safe_return_url(value: str | None, settings: Settings) -> str:
    """`value` if it stays on this site or goes to an allowed origin; else `BadRequest`.

    Parsed, never pattern-matched: control characters and backslashes are refused outright
    (browsers drop tabs and line breaks, so `/\t/evil.com` would become `//evil.com`, and
    read `\\` as `/`); a relative URL must be a path on this site (`/...`, not `//host`); an
    absolute one must be on this service's public origin (`MIRO_PUBLIC_URL`, never the
    request's `Host`) or on one of `MIRO_CORS_ORIGINS`, without user info.
    """
    if not value:
        return DEFAULT_RETURN_URL
    if len(value) > settings.return_url_max_length:
        raise BadRequest(f"returnUrl is longer than {settings.return_url_max_length} characters")
    if _UNSAFE_IN_URL.search(value):
        raise BadRequest("returnUrl must not hold control characters or backslashes")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise BadRequest("returnUrl is not a URL") from None
    if not parts.scheme and not parts.netloc:
        if value.startswith("/"):
            return value
        raise BadRequest("a relative returnUrl must be a path starting with /")
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    allowed = origin == settings.public_origin or origin in settings.cors_origins
    if parts.scheme in ("http", "https") and "@" not in parts.netloc and allowed:
        return value
    raise BadRequest("returnUrl must be on this site or on an origin in MIRO_CORS_ORIGINS")


#: What a return URL may never hold: C0 and C1 control characters, DEL, backslash.
_UNSAFE_IN_URL = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


@attrs.frozen
class AuthStatus:
    """The user has a usable Miro token."""

    authorized: bool
    userId: str
    expiresAt: str | None
    scopes: list[str]


@attrs.frozen
class UserIn:
    """`POST /api/users`: the client registers its user (all strings)."""

    id: str
    name: str = ""
    access_token: str = ""
    refresh_token: str = ""
    expires_at: str = ""


@attrs.frozen
class UserOut:
    """A registered user; never any token."""

    id: str
    name: str
    expiresAt: str | None


def register_identity_routes(app: Quart, settings: Settings, actors: ActorSystem) -> None:
    """Add the OAuth, auth-status, users and logout routes to `app`."""

    @app.get("/oauth/login")
    @document_status(302, "to Miro's authorize URL")
    async def login() -> WerkzeugResponse:
        """Send the browser to Miro's consent page; `state` remembers user and return URL."""
        user = request.args.get("userId") or claimed_user(settings)
        if user is not None:
            checked_user_id(user)
        return_url = safe_return_url(request.args.get("returnUrl"), settings)
        target = await actors.tokens.call(BeginLogin(user, return_url))
        return redirect(target, 302)

    @app.get("/oauth/callback")
    @document_status(302, "to the return URL given at login (default /app.html)")
    async def callback() -> WerkzeugResponse:
        """Miro sends the browser back here with a code (or an error)."""
        if "error" in request.args:
            reason = request.args.get("error_description") or request.args["error"]
            raise BadRequest(f"Miro did not authorize the app: {reason}")
        code, state = request.args.get("code"), request.args.get("state")
        if not code or not state:
            raise BadRequest("the callback needs both code and state")
        try:
            result = await actors.tokens.call(CompleteLogin(code, state))
        except TokenRejected as error:
            raise UpstreamError(f"Miro refused to exchange the code: {error.message}") from None
        return redirect(result.return_url, 302)

    @app.get("/api/auth/status")
    @document_response(AuthStatus)
    async def auth_status() -> dict[str, Any]:
        """200 when a usable Miro token is stored for the user, 404 otherwise."""
        user_id = acting_user(settings)
        if settings.debug_toggles and debug.auth_expired(request.headers.get("X-Debug-Auth")):
            raise NotFound(f"no usable Miro token is stored for user {user_id} (X-Debug-Auth)")
        status = await actors.tokens.call(GetStatus(user_id))
        return {
            "authorized": True,
            "userId": status.user_id,
            "expiresAt": iso8601(status.expires_at),
            "scopes": list(status.scopes),
        }

    @app.post("/api/users")
    @validate_request(UserIn)
    @document_response(UserOut, 201)
    @document_response(UserOut, 200)
    async def register_user(data: UserIn) -> tuple[dict[str, Any], int]:
        """Register the user; store a Miro token only when Miro confirms it is theirs."""
        user_id = checked_user_id(data.id)
        caller = claimed_user(settings)
        if caller is not None and caller != user_id:
            raise Forbidden("cannot register another user")
        if not data.access_token:
            raise ValidationFailed.at(("body", "access_token"), "must not be empty")
        registration: Registration
        if looks_like_jwt(data.access_token):
            if verify_id_token(data.access_token, settings) != user_id:
                raise Unauthorized("the Miro ID token belongs to another user")
            registration = await actors.tokens.call(RegisterUser(user_id, data.name))
        else:
            registration = await actors.tokens.call(
                ConnectWithToken(
                    user_id,
                    data.name,
                    data.access_token,
                    data.refresh_token or None,
                    parse_expiry(data.expires_at),
                )
            )
        body = {
            "id": registration.user_id,
            "name": registration.name,
            "expiresAt": iso8601(registration.expires_at),
        }
        return body, 201 if registration.created else 200

    @app.post("/api/logout")
    @document_status(204, "the token is revoked at Miro and deleted here")
    async def logout() -> Response:
        """Revoke the user's token at Miro and forget it here."""
        await actors.tokens.call(Logout(acting_user(settings)))
        return Response(b"", status=204)
