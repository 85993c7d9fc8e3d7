"""Who a request acts for: `X-User-Id` (header mode) or a verified Miro ID token.

`MIRO_AUTH_MODE=header` trusts `X-User-Id`, for deployments where only the Node client can
reach the service. `id-token` requires `Authorization: Bearer <JWT from miro.board.getIdToken()>`,
an HS256 JWT signed with the app's client secret, with `iss == "miro"`, `sub ==` the client id,
`exp`/`iat`, and the user in its `user` claim; an `X-User-Id`, if sent, must name the same user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jwt
from quart import request

from miro_bridge.config import AuthMode, Settings
from miro_bridge.errors import BadRequest, Unauthorized

#: Miro user ids are numeric strings (kept as strings: they exceed 2**53).
USER_ID = re.compile(r"[0-9]{1,32}")
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: Clock skew allowed between Miro and us when checking `exp`/`iat`.
LEEWAY_SECONDS = 60


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated base64url parts: a JWT, as opposed to an opaque Miro token."""
    return _JWT_SHAPE.fullmatch(token) is not None


def verify_id_token(token: str, settings: Settings) -> str:
    """The Miro user id of a valid app ID token; `Unauthorized` saying why otherwise."""
    try:
        claims = jwt.decode(
            token,
            settings.client_secret,
            algorithms=["HS256"],
            issuer="miro",
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the Miro ID token has expired") from None
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"the Miro ID token does not verify: {error}") from None
    if claims["sub"] != settings.client_id:
        raise Unauthorized("the Miro ID token was issued for another app")
    user = claims.get("user")
    if not isinstance(user, (str, int)) or not USER_ID.fullmatch(str(user)):
        raise Unauthorized("the Miro ID token names no user")
    return str(user)


def checked_user_id(value: str) -> str:
    """`value` if it is a Miro user id; `BadRequest` otherwise."""
    if not USER_ID.fullmatch(value):
        raise BadRequest("a Miro user id is a string of digits")
    return value


def claimed_user(settings: Settings) -> str | None:
    """The user the current request says it acts for, verified per the auth mode, if any."""
    return user_claimed_by(
        request.headers.get("X-User-Id"), request.headers.get("Authorization"), settings
    )


def user_claimed_by(
    header: str | None, authorization: str | None, settings: Settings
) -> str | None:
    """The user that an `X-User-Id` and an `Authorization` header claim, verified per the auth
    mode, if any; `BadRequest` or `Unauthorized` when they do not hold.

    For callers outside a Quart request (the edge: `user_claimed_in`); routes use
    `claimed_user`.
    """
    if settings.auth_mode is AuthMode.HEADER:
        return checked_user_id(header) if header is not None else None
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization must be 'Bearer <Miro ID token>'")
    user = verify_id_token(token.strip(), settings)
    if header is not None and header != user:
        raise Unauthorized("X-User-Id does not match the Miro ID token")
    return user


def user_claimed_in(headers: Mapping[bytes, bytes], settings: Settings) -> str | None:
    """`user_claimed_by` of a request's ASGI headers (names in lower case), for the edge."""
    header, authorization = headers.get(b"x-user-id"), headers.get(b"authorization")
    return user_claimed_by(
        header.decode("latin-1") if header is not None else None,
        authorization.decode("latin-1") if authorization is not None else None,
        settings,
    )


def acting_user(settings: Settings) -> str:
    """The user the current request acts for; 400 (header mode) or 401 (id-token) if none."""
    user = claimed_user(settings)
    if user is not None:
        return user
    if settings.auth_mode is AuthMode.HEADER:
        raise BadRequest("the X-User-Id header is required")
    raise Unauthorized("a Miro ID token is required (Authorization: Bearer ...)")
