"""Users, tokens and OAuth states in SQLite: the operations of `store.users`."""

from __future__ import annotations

import secrets
import sqlite3

from miro_bridge.records.users import OAuthState, StoredTokens, User
from miro_bridge.store.sqlite._registry import SQL
from miro_bridge.store.users import (
    DeleteTokens,
    GetTokens,
    GetUser,
    LockTokens,
    MarkDisconnected,
    Reencrypt,
    SaveState,
    SaveTokens,
    TakeState,
    TokenLock,
    UnlockTokens,
    UpsertUser,
)


@SQL.implements(UpsertUser)
def upsert_user(connection: sqlite3.Connection, op: UpsertUser) -> bool:
    created = connection.execute(
        "INSERT INTO users (id, name, created_at, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (op.user_id, op.name, op.now, op.now),
    ).rowcount
    if not created:
        connection.execute(
            "UPDATE users SET name = CASE WHEN ? = '' THEN name ELSE ? END, updated_at = ? "
            "WHERE id = ?",
            (op.name, op.name, op.now, op.user_id),
        )
    return bool(created)


@SQL.implements(GetUser)
def get_user(connection: sqlite3.Connection, op: GetUser) -> User | None:
    row = connection.execute("SELECT id, name FROM users WHERE id = ?", (op.user_id,)).fetchone()
    return User(*row) if row else None


@SQL.implements(SaveTokens)
def save_tokens(connection: sqlite3.Connection, op: SaveTokens) -> bool:
    created = upsert_user(connection, UpsertUser(op.user_id, op.name, op.now))
    tokens = op.tokens
    connection.execute(
        "INSERT INTO tokens (user_id, access_token, refresh_token, expires_at, scopes, status, "
        "updated_at) VALUES (?, ?, ?, ?, ?, 'connected', ?) "
        "ON CONFLICT (user_id) DO UPDATE SET access_token = excluded.access_token, "
        "refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, "
        "scopes = excluded.scopes, status = 'connected', updated_at = excluded.updated_at",
        (
            op.user_id,
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at,
            " ".join(tokens.scopes),
            op.now,
        ),
    )
    return created


@SQL.implements(GetTokens)
def get_tokens(connection: sqlite3.Connection, op: GetTokens) -> StoredTokens | None:
    row = connection.execute(
        "SELECT user_id, access_token, refresh_token, expires_at, scopes, status "
        "FROM tokens WHERE user_id = ?",
        (op.user_id,),
    ).fetchone()
    if row is None:
        return None
    user, access, refresh, expires_at, scopes, status = row
    return StoredTokens(
        user, access, refresh, expires_at, tuple(scopes.split()), status == "connected"
    )


@SQL.implements(MarkDisconnected)
def mark_disconnected(connection: sqlite3.Connection, op: MarkDisconnected) -> None:
    connection.execute(
        "UPDATE tokens SET access_token = NULL, refresh_token = NULL, expires_at = NULL, "
        "status = 'disconnected', updated_at = ? WHERE user_id = ?",
        (op.now, op.user_id),
    )


@SQL.implements(DeleteTokens)
def delete_tokens(connection: sqlite3.Connection, op: DeleteTokens) -> None:
    connection.execute("DELETE FROM tokens WHERE user_id = ?", (op.user_id,))


@SQL.implements(LockTokens)
def lock_tokens(connection: sqlite3.Connection, op: LockTokens) -> TokenLock:
    # One process uses the file: the TokenStore's single flight is the lock.
    return TokenLock(
        secrets.token_hex(8), op.user_id, get_tokens(connection, GetTokens(op.user_id))
    )


@SQL.implements(UnlockTokens)
def unlock_tokens(connection: sqlite3.Connection, op: UnlockTokens) -> None:
    user_id = op.lock.user_id
    if op.save is not None:
        save_tokens(connection, SaveTokens(user_id, "", op.save, op.now))
    elif op.disconnect:
        mark_disconnected(connection, MarkDisconnected(user_id, op.now))


@SQL.implements(Reencrypt)
def reencrypt(connection: sqlite3.Connection, op: Reencrypt) -> int:
    rows = list(connection.execute("SELECT user_id, access_token, refresh_token FROM tokens"))
    connection.executemany(
        "UPDATE tokens SET access_token = ?, refresh_token = ? WHERE user_id = ?",
        [
            (
                op.rotate(access) if access is not None else None,
                op.rotate(refresh) if refresh is not None else None,
                user,
            )
            for user, access, refresh in rows
        ],
    )
    return len(rows)


@SQL.implements(SaveState)
def save_state(connection: sqlite3.Connection, op: SaveState) -> None:
    connection.execute("DELETE FROM oauth_states WHERE expires_at <= ?", (op.now,))
    connection.execute(
        "INSERT INTO oauth_states (state, user_id, return_url, expires_at) VALUES (?, ?, ?, ?)",
        (op.state, op.stored.user_id, op.stored.return_url, op.stored.expires_at),
    )


@SQL.implements(TakeState)
def take_state(connection: sqlite3.Connection, op: TakeState) -> OAuthState | None:
    row = connection.execute(
        "DELETE FROM oauth_states WHERE state = ? RETURNING user_id, return_url, expires_at",
        (op.state,),
    ).fetchone()
    return OAuthState(*row) if row else None
