"""Users, their stored Miro tokens, and pending OAuth logins."""

from __future__ import annotations

import attrs


@attrs.frozen
class User:
    """A Miro user known to the service."""

    id: str
    name: str


@attrs.frozen
class StoredTokens:
    """A user's token row; the tokens are ciphertexts (`store.crypto`), never in clear."""

    user_id: str
    access_token: bytes | None = attrs.field(repr=False)
    refresh_token: bytes | None = attrs.field(repr=False)
    expires_at: float | None
    scopes: tuple[str, ...]
    connected: bool


@attrs.frozen
class NewTokens:
    """A token pair to store (ciphertexts), with its expiry and scopes."""

    access_token: bytes = attrs.field(repr=False)
    refresh_token: bytes | None = attrs.field(repr=False)
    expires_at: float | None
    scopes: tuple[str, ...]


@attrs.frozen
class OAuthState:
    """What a login stored under its `state`."""

    user_id: str | None
    return_url: str
    expires_at: float
