"""Users, tokens and OAuth states in PostgreSQL: the operations of `store.users`.

`LockTokens` and `UnlockTokens` are not here: they hold a connection between the two calls
(`store.postgres._token_locks`).
"""

from __future__ import annotations

from typing import Any

import psycopg

from miro_bridge.records.users import OAuthState, StoredTokens, User
from miro_bridge.store.postgres._registry import PG
from miro_bridge.store.users import (
    DeleteTokens,
    GetTokens,
    GetUser,
    MarkDisconnected,
    Reencrypt,
    SaveState,
    SaveTokens,
    TakeState,
    UpsertUser,
)

Connection = psycopg.Connection[Any]


@PG.implements(UpsertUser)
def upsert_user(connection: Connection, op: UpsertUser) -> bool:
    created = connection.execute(
        "INSERT INTO users (id, name, created_at, updated_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO NOTHING",
        (op.user_id, op.name, op.now, op.now),
    ).rowcount
    if not created:
        connection.execute(
            "UPDATE users SET name = CASE WHEN %(name)s::text = '' THEN name "
            "ELSE %(name)s::text END, updated_at = %(now)s WHERE id = %(id)s",
            {"name": op.name, "now": op.now, "id": op.user_id},
        )
    return bool(created)


@PG.implements(GetUser)
def get_user(connection: Connection, op: GetUser) -> User | None:
    row = connection.execute("SELECT id, name FROM users WHERE id = %s", (op.user_id,)).fetchone()
    return User(*row) if row else None


@PG.implements(SaveTokens)
def save_tokens(connection: Connection, op: SaveTokens) -> bool:
    created = upsert_user(connection, UpsertUser(op.user_id, op.name, op.now))
    tokens = op.tokens
    connection.execute(
        "INSERT INTO tokens (user_id, access_token, refresh_token, expires_at, scopes, status, "
        "updated_at) VALUES (%s, %s, %s, %s, %s, 'connected', %s) "
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


@PG.implements(GetTokens)
def get_tokens(connection: Connection, op: GetTokens) -> StoredTokens | None:
    row = connection.execute(
        "SELECT user_id, access_token, refresh_token, expires_at, scopes, status "
        "FROM tokens WHERE user_id = %s",
        (op.user_id,),
    ).fetchone()
    if row is None:
        return None
    user, access, refresh, expires_at, scopes, status = row
    return StoredTokens(
        user,
        bytes(access) if access is not None else None,
        bytes(refresh) if refresh is not None else None,
        expires_at,
        tuple(scopes.split()),
        status == "connected",
    )


@PG.implements(MarkDisconnected)
def mark_disconnected(connection: Connection, op: MarkDisconnected) -> None:
    connection.execute(
        "UPDATE tokens SET access_token = NULL, refresh_token = NULL, expires_at = NULL, "
        "status = 'disconnected', updated_at = %s WHERE user_id = %s",
        (op.now, op.user_id),
    )


@PG.implements(DeleteTokens)
def delete_tokens(connection: Connection, op: DeleteTokens) -> None:
    connection.execute("DELETE FROM tokens WHERE user_id = %s", (op.user_id,))


@PG.implements(Reencrypt)
def reencrypt(connection: Connection, op: Reencrypt) -> int:
    rows = connection.execute(
        "SELECT user_id, access_token, refresh_token FROM tokens FOR UPDATE"
    ).fetchall()
    with connection.cursor() as cursor:
        cursor.executemany(
            "UPDATE tokens SET access_token = %s, refresh_token = %s WHERE user_id = %s",
            [
                (
                    op.rotate(bytes(access)) if access is not None else None,
                    op.rotate(bytes(refresh)) if refresh is not None else None,
                    user,
                )
                for user, access, refresh in rows
            ],
        )
    return len(rows)


@PG.implements(SaveState)
def save_state(connection: Connection, op: SaveState) -> None:
    connection.execute("DELETE FROM oauth_states WHERE expires_at <= %s", (op.now,))
    connection.execute(
        "INSERT INTO oauth_states (state, user_id, return_url, expires_at) VALUES (%s, %s, %s, %s)",
        (op.state, op.stored.user_id, op.stored.return_url, op.stored.expires_at),
    )


@PG.implements(TakeState)
def take_state(connection: Connection, op: TakeState) -> OAuthState | None:
    row = connection.execute(
        "DELETE FROM oauth_states WHERE state = %s RETURNING user_id, return_url, expires_at",
        (op.state,),
    ).fetchone()
    return OAuthState(*row) if row else None
