"""The SQLite schema, as numbered migrations applied at start-up.

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

_BOARDS = """
-- Board snapshots: Miro's JSON as fetched, with the cache's own versions. Each change that the
-- cache sees (a sync that found differences, a write made through us) bumps the board's
-- version; each item remembers the version it last changed in.
CREATE TABLE boards (
    id          TEXT PRIMARY KEY,             -- Miro board id (may contain '=')
    body        TEXT NOT NULL,                -- Miro's board JSON
    version     INTEGER NOT NULL,
    fetched_at  REAL NOT NULL,                -- epoch seconds of the last full read from Miro
    sync_user   TEXT NOT NULL                 -- whose token reads it in periodic syncs
) STRICT;

CREATE TABLE board_items (
    board_id     TEXT NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    body         TEXT NOT NULL,               -- Miro's item JSON
    modified_at  TEXT NOT NULL,               -- Miro's modifiedAt, what syncs compare
    version      INTEGER NOT NULL,
    PRIMARY KEY (board_id, id)
) STRICT;                                     -- rowid order: the order items were stored

CREATE TABLE board_tags (
    board_id  TEXT NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    id        TEXT NOT NULL,
    body      TEXT NOT NULL,                  -- Miro's tag JSON
    PRIMARY KEY (board_id, id)
) STRICT, WITHOUT ROWID;

-- Responses stored under an Idempotency-Key, replayed byte for byte for 48 hours.
CREATE TABLE idempotency (
    user_id       TEXT NOT NULL,
    route         TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,              -- SHA-256 of the request body
    status        INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    body          BLOB NOT NULL,
    created_at    REAL NOT NULL,
    PRIMARY KEY (user_id, route, key)
) STRICT;
CREATE INDEX idempotency_by_age ON idempotency (created_at);
"""

_JOBS = """
-- Durable jobs (store/jobs.py). A job's status is derived from its operations'.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,                -- batch, cards, ops, sync, webhook
    request_id  TEXT,                         -- the request that enqueued it
    created_at  REAL NOT NULL
) STRICT;

CREATE TABLE operations (
    job_id        TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,           -- order within the job
    user_id       TEXT NOT NULL,              -- whose token and budget it uses
    board_id      TEXT NOT NULL,
    kind          TEXT NOT NULL,              -- create_shape, update_shape, delete_item, ...
    payload       TEXT NOT NULL,              -- JSON: the Miro body, item id, tag titles
    status        TEXT NOT NULL CHECK (status IN ('pending', 'working', 'done', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    available_at  REAL NOT NULL,              -- not claimed before (retry backoff)
    lease_until   REAL,                       -- while working: claimable again after
    result        TEXT,                       -- the Miro item id it created or changed
    last_error    TEXT,
    history       TEXT NOT NULL DEFAULT '[]', -- JSON list of every failed attempt's error
    updated_at    REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
) STRICT;
CREATE INDEX operations_ready ON operations (status, available_at);
CREATE INDEX operations_ready_by_user ON operations (status, user_id, available_at);
CREATE INDEX operations_by_user ON operations (user_id, status);  -- then rowid: claim order

CREATE TABLE dead_letters (
    job_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    user_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT,
    history     TEXT NOT NULL,
    dead_at     REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
) STRICT;
"""

_CLIENT_LOGS = """
-- Log entries the Node client posts (/api/logs), kept for MIRO_LOG_RETENTION_DAYS.
CREATE TABLE client_logs (
    id           INTEGER PRIMARY KEY,
    received_at  REAL NOT NULL,
    request_id   TEXT NOT NULL,
    user_id      TEXT,
    timestamp    TEXT NOT NULL,               -- as the client sent it
    level        TEXT NOT NULL,               -- lower-case: trace ... fatal
    message      TEXT NOT NULL,               -- control characters removed
    context      TEXT NOT NULL DEFAULT '{}'   -- JSON object, control characters removed
) STRICT;
CREATE INDEX client_logs_by_age ON client_logs (received_at);
"""

_WEBHOOKS = """
-- Webhook events already accepted (by event id, or a hash of the body): redeliveries within
-- a day are recognised and not processed again.
CREATE TABLE webhook_events (
    key          TEXT PRIMARY KEY,
    received_at  REAL NOT NULL
) STRICT;
CREATE INDEX webhook_events_by_age ON webhook_events (received_at);
"""

_JOB_TRACES = """
-- The W3C traceparent of the span that enqueued a job: its work is traced as linked to it.
ALTER TABLE jobs ADD COLUMN traceparent TEXT;
"""

_BOARD_HISTORY = """
-- Items deleted from a board (through us, or found gone by a sync), kept for a week so that
-- `/changes?since=` can name them; `history_from` is the oldest `since` whose delta is still
-- complete (older ones get `reset`: the caller rebuilds).
ALTER TABLE boards ADD COLUMN history_from INTEGER NOT NULL DEFAULT 1;
CREATE TABLE board_tombstones (
    board_id    TEXT NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    version     INTEGER NOT NULL,             -- the board version the deletion made
    deleted_at  REAL NOT NULL,                -- epoch seconds
    PRIMARY KEY (board_id, id)
) STRICT, WITHOUT ROWID;

-- The client's diagram nodes (`/ops` NodeDefinition creates): node id -> the Miro item drawn
-- for it, per user and board, so that a later update or delete may name the node.
CREATE TABLE board_nodes (
    user_id     TEXT NOT NULL,
    board_id    TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (user_id, board_id, node_id)
) STRICT, WITHOUT ROWID;
"""

_LIMITS = """
-- Where readiness checks that the database can grow again after writes failed (disk full).
CREATE TABLE store_probe (
    id   INTEGER PRIMARY KEY,
    pad  BLOB NOT NULL
) STRICT;

-- Webhook events per board per minute are bounded: recorded events name their board.
ALTER TABLE webhook_events ADD COLUMN board_id TEXT;
CREATE INDEX webhook_events_by_board ON webhook_events (board_id, received_at);
-- Events for a board whose sync has not started yet ride on that sync.
CREATE INDEX operations_pending_syncs ON operations (board_id)
    WHERE kind = 'sync_board' AND status = 'pending';

-- What each caller of /api/logs sent lately (by user, or by address): a rate per minute and
-- a quota of bytes per day, both fixed windows.
CREATE TABLE client_log_usage (
    caller          TEXT PRIMARY KEY,         -- 'user:<id>' or 'addr:<ip>'
    minute_start    REAL NOT NULL,
    minute_entries  INTEGER NOT NULL,
    day_start       REAL NOT NULL,
    day_bytes       INTEGER NOT NULL
) STRICT;
"""

_SHARED_WORK = """
-- A claimed unit of work is named (the fencing token of its lease): only its holder settles
-- it, and a lease renewed while the work runs expires only when its holder has died.
ALTER TABLE operations ADD COLUMN unit TEXT;
CREATE INDEX operations_by_unit ON operations (unit) WHERE unit IS NOT NULL;
CREATE INDEX operations_leased ON operations (status, lease_until);

-- An Idempotency-Key is claimed by a row: 'running' under a token and a lease, then 'done'
-- with the response.
ALTER TABLE idempotency ADD COLUMN state TEXT NOT NULL DEFAULT 'done'
    CHECK (state IN ('running', 'done'));
ALTER TABLE idempotency ADD COLUMN token TEXT;
ALTER TABLE idempotency ADD COLUMN claimed_until REAL;
"""

_EXACTLY_ONCE = """
-- A create's open attempt: when it was claimed for a bulk create whose outcome is not known
-- yet (NULL once it is). Claimed again while open, it may have been created already: the
-- board's items are matched against it before anything is sent again.
ALTER TABLE operations ADD COLUMN attempt_started REAL;
-- What Miro answered for an operation of a job that answers a request itself (a keyed
-- synchronous create): {"status": ..., "body": ...}.
ALTER TABLE operations ADD COLUMN response TEXT;
-- Which operation an item was recorded for (an item is adopted by one operation only).
CREATE INDEX operations_by_result ON operations (board_id, result) WHERE result IS NOT NULL;

-- A key whose work is a job: its claimants answer from the job, however the first one ended.
ALTER TABLE idempotency ADD COLUMN job_id TEXT;
"""

_CONSOLE = """
-- What operators did in the console (/_console): a dead letter retried or discarded, by whom
-- (the console's operator name), from which address, when.
CREATE TABLE console_audit (
    id        INTEGER PRIMARY KEY,
    at        REAL NOT NULL,
    operator  TEXT NOT NULL,
    action    TEXT NOT NULL CHECK (action IN ('retry', 'discard')),
    job_id    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    address   TEXT
) STRICT;
-- The console lists jobs newest first, and counts them per minute.
CREATE INDEX jobs_by_age ON jobs (created_at);
"""

MIGRATIONS: tuple[str, ...] = (
    _IDENTITY,
    _BOARDS,
    _JOBS,
    _CLIENT_LOGS,
    _WEBHOOKS,
    _JOB_TRACES,
    _BOARD_HISTORY,
    _LIMITS,
    _SHARED_WORK,
    _EXACTLY_ONCE,
    _CONSOLE,
)
