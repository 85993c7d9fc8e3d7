"""Users, their encrypted Miro tokens, and pending OAuth states: plain SQL.

Functions of a `sqlite3.Connection`, run by the Store actor (wrap them in `Read`/`Write`).
Tokens go in and come out encrypted: these functions never see a token in clear.
"""

from __future__ import annotations

import sqlite3

import attrs


@attrs.frozen
class User:
    """A Miro user known to the service."""

    id: str
    name: str


@attrs.frozen
class StoredTokens:
    """A user's token row; the tokens are ciphertexts (`store.crypto`)."""

    user_id: str
    access_token: bytes | None
    refresh_token: bytes | None
    expires_at: float | None
    scopes: tuple[str, ...]
    connected: bool


@attrs.frozen
class OAuthState:
    """What a login stored under its `state`."""

    user_id: str | None
    return_url: str
    expires_at: float


def upsert_user(connection: sqlite3.Connection, user_id: str, name: str, now: float) -> bool:
    """Create or update a user; True if it was created. An empty `name` keeps the old one."""
    created = connection.execute(
        "INSERT INTO users (id, name, created_at, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (user_id, name, now, now),
    ).rowcount
    if not created:
        connection.execute(
            "UPDATE users SET name = CASE WHEN ? = '' THEN name ELSE ? END, updated_at = ? "
            "WHERE id = ?",
            (name, name, now, user_id),
        )
    return bool(created)


def get_user(connection: sqlite3.Connection, user_id: str) -> User | None:
    """The user, if known."""
    row = connection.execute("SELECT id, name FROM users WHERE id = ?", (user_id,)).fetchone()
    return User(*row) if row else None


def save_tokens(
    connection: sqlite3.Connection,
    user_id: str,
    access_token: bytes,
    refresh_token: bytes | None,
    expires_at: float | None,
    scopes: tuple[str, ...],
    now: float,
) -> None:
    """Store (replace) a user's token pair; the user must exist."""
    connection.execute(
        "INSERT INTO tokens (user_id, access_token, refresh_token, expires_at, scopes, status, "
        "updated_at) VALUES (?, ?, ?, ?, ?, 'connected', ?) "
        "ON CONFLICT (user_id) DO UPDATE SET access_token = excluded.access_token, "
        "refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, "
        "scopes = excluded.scopes, status = 'connected', updated_at = excluded.updated_at",
        (user_id, access_token, refresh_token, expires_at, " ".join(scopes), now),
    )


def get_tokens(connection: sqlite3.Connection, user_id: str) -> StoredTokens | None:
    """A user's token row, if any."""
    row = connection.execute(
        "SELECT user_id, access_token, refresh_token, expires_at, scopes, status "
        "FROM tokens WHERE user_id = ?",
        (user_id,),
    ).fetchone()
    if row is None:
        return None
    user, access, refresh, expires_at, scopes, status = row
    return StoredTokens(
        user, access, refresh, expires_at, tuple(scopes.split()), status == "connected"
    )


def mark_disconnected(connection: sqlite3.Connection, user_id: str, now: float) -> None:
    """Forget a user's dead tokens, remembering that the user must connect again."""
    connection.execute(
        "UPDATE tokens SET access_token = NULL, refresh_token = NULL, expires_at = NULL, "
        "status = 'disconnected', updated_at = ? WHERE user_id = ?",
        (now, user_id),
    )


def delete_tokens(connection: sqlite3.Connection, user_id: str) -> None:
    """Forget a user's tokens (logout)."""
    connection.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))


def all_ciphertexts(
    connection: sqlite3.Connection,
) -> list[tuple[str, bytes | None, bytes | None]]:
    """Every stored (user id, access token, refresh token), for key rotation."""
    return list(connection.execute("SELECT user_id, access_token, refresh_token FROM tokens"))


def replace_ciphertexts(
    connection: sqlite3.Connection, rows: list[tuple[str, bytes | None, bytes | None]]
) -> None:
    """Store re-encrypted tokens, leaving everything else as it is."""
    connection.executemany(
        "UPDATE tokens SET access_token = ?, refresh_token = ? WHERE user_id = ?",
        [(access, refresh, user) for user, access, refresh in rows],
    )


def save_state(connection: sqlite3.Connection, state: str, stored: OAuthState, now: float) -> None:
    """Remember a login's state; drops states that have expired."""
    connection.execute("DELETE FROM oauth_states WHERE expires_at <= ?", (now,))
    connection.execute(
        "INSERT INTO oauth_states (state, user_id, return_url, expires_at) VALUES (?, ?, ?, ?)",
        (state, stored.user_id, stored.return_url, stored.expires_at),
    )


def take_state(connection: sqlite3.Connection, state: str) -> OAuthState | None:
    """Remove and return a login's state (single use), expired or not."""
    row = connection.execute(
        "DELETE FROM oauth_states WHERE state = ? RETURNING user_id, return_url, expires_at",
        (state,),
    ).fetchone()
    return OAuthState(*row) if row else None
