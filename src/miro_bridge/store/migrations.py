"""The schema, as numbered migrations applied at start-up.

Migration N is `MIGRATIONS[N - 1]`; the database records the last one applied in
`PRAGMA user_version`. Never edit a migration that has shipped: add the next one.
"""

from __future__ import annotations

_IDENTITY = """
CREATE TABLE users (
    id          TEXT PRIMARY KEY,            -- Miro user id (a numeric string)
    name        TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
) STRICT;

-- One Miro token pair per user, encrypted (store/crypto.py). A user whose refresh token
-- Miro rejected keeps the row with status 'disconnected' and no tokens.
CREATE TABLE tokens (
    user_id        TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    access_token   BLOB,
    refresh_token  BLOB,
    expires_at     REAL,                      -- epoch seconds; NULL: the token does not expire
    scopes         TEXT NOT NULL DEFAULT '',  -- space-separated, as Miro sends them
    status         TEXT NOT NULL CHECK (status IN ('connected', 'disconnected')),
    updated_at     REAL NOT NULL
) STRICT;

-- OAuth `state` values handed out by /oauth/login: single-use, short-lived.
CREATE TABLE oauth_states (
    state       TEXT PRIMARY KEY,
    user_id     TEXT,                         -- NULL: whoever Miro's token response names
    return_url  TEXT NOT NULL,
    expires_at  REAL NOT NULL
) STRICT;
"""

MIGRATIONS: tuple[str, ...] = (_IDENTITY,)
