"""The PostgreSQL schema, as numbered migrations applied at start-up under an advisory lock.

The steps are SQLite's (`store.sqlite.migrations`), one for one: schema version N means the
same tables on both backends. What differs is PostgreSQL's own: `double precision` epoch
seconds, `bytea`, `jsonb` for what SQL reads inside (operation payloads and histories), an
identity column where SQLite has its implicit rowid (operations, board items), text collated
"C" where order matters, and two tables SQLite has no use for (`credit_budgets` and
`credit_holds`, step 9: one process keeps budgets in memory).

The applied versions are rows of `schema_version`. `migrate` holds `pg_advisory_lock` while it
reads and applies them, so that instances starting together migrate once; each migration and
its version row commit together. Never edit a migration that has shipped: add the next one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from miro_bridge.errors import SchemaTooNew
from miro_bridge.store.postgres._registry import MIGRATIONS_LOCK

_IDENTITY = """
CREATE TABLE users (
    id          text PRIMARY KEY,                 -- Miro user id (a numeric string)
    name        text NOT NULL DEFAULT '',
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL
);

-- One Miro token pair per user, encrypted (store/crypto.py). A user whose refresh token
-- Miro rejected keeps the row with status 'disconnected' and no tokens.
CREATE TABLE tokens (
    user_id        text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    access_token   bytea,
    refresh_token  bytea,
    expires_at     double precision,              -- epoch seconds; NULL: does not expire
    scopes         text NOT NULL DEFAULT '',      -- space-separated, as Miro sends them
    status         text NOT NULL CHECK (status IN ('connected', 'disconnected')),
    updated_at     double precision NOT NULL
);

-- OAuth `state` values handed out by /oauth/login: single-use, short-lived.
CREATE TABLE oauth_states (
    state       text PRIMARY KEY,
    user_id     text,                             -- NULL: whoever Miro's token response names
    return_url  text NOT NULL,
    expires_at  double precision NOT NULL
);
"""

_BOARDS = """
-- Board snapshots: Miro's JSON as fetched (text: replayed as it was), with the cache's own
-- versions; each item remembers the version it last changed in.
CREATE TABLE boards (
    id          text PRIMARY KEY,                 -- Miro board id (may contain '=')
    body        text NOT NULL,                    -- Miro's board JSON
    version     bigint NOT NULL,
    fetched_at  double precision NOT NULL,        -- epoch seconds of the last full read
    sync_user   text NOT NULL                     -- whose token reads it in periodic syncs
);

CREATE TABLE board_items (
    board_id     text NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    id           text NOT NULL,
    body         text NOT NULL,                   -- Miro's item JSON
    modified_at  text NOT NULL,                   -- Miro's modifiedAt, what syncs compare
    version      bigint NOT NULL,
    seq          bigint GENERATED ALWAYS AS IDENTITY,  -- the order items were stored (rowid)
    PRIMARY KEY (board_id, id)
);
CREATE INDEX board_items_in_order ON board_items (board_id, seq);

CREATE TABLE board_tags (
    board_id  text NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    id        text COLLATE "C" NOT NULL,
    body      text NOT NULL,                      -- Miro's tag JSON
    PRIMARY KEY (board_id, id)
);

-- Responses stored under an Idempotency-Key, replayed byte for byte for 48 hours.
CREATE TABLE idempotency (
    user_id       text NOT NULL,
    route         text NOT NULL,
    key           text NOT NULL,
    fingerprint   text NOT NULL,                  -- SHA-256 of the request body
    status        integer NOT NULL,
    content_type  text NOT NULL,
    body          bytea NOT NULL,
    created_at    double precision NOT NULL,
    PRIMARY KEY (user_id, route, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);
"""

_JOBS = """
-- Durable jobs (store/jobs.py). A job's status is derived from its operations'.
CREATE TABLE jobs (
    id          text PRIMARY KEY,
    user_id     text NOT NULL,
    kind        text NOT NULL,                    -- batch, cards, ops, sync, webhook
    request_id  text,                             -- the request that enqueued it
    created_at  double precision NOT NULL
);

-- `id` is what SQLite's rowid is: the claim order, and how a held operation is named.
CREATE TABLE operations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq           integer NOT NULL,               -- order within the job
    user_id       text COLLATE "C" NOT NULL,      -- whose token and budget it uses
    board_id      text NOT NULL,
    kind          text NOT NULL,                  -- create_shape, update_shape, delete_item, ...
    payload       jsonb NOT NULL,                 -- the Miro body, item id, tag titles
    status        text NOT NULL CHECK (status IN ('pending', 'working', 'done', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    available_at  double precision NOT NULL,      -- not claimed before (retry backoff)
    lease_until   double precision,               -- while working: claimable again after
    result        text,                           -- the Miro item id it created or changed
    last_error    text,
    history       jsonb NOT NULL DEFAULT '[]',    -- every failed attempt's error
    updated_at    double precision NOT NULL,
    UNIQUE (job_id, seq)
);
CREATE INDEX operations_ready ON operations (status, available_at);
CREATE INDEX operations_ready_by_user ON operations (status, user_id, available_at);
CREATE INDEX operations_by_user ON operations (user_id, id)
    WHERE status IN ('pending', 'working');       -- claim order among the unfinished

CREATE TABLE dead_letters (
    job_id      text NOT NULL,
    seq         integer NOT NULL,
    user_id     text NOT NULL,
    kind        text NOT NULL,
    payload     jsonb NOT NULL,
    attempts    integer NOT NULL,
    last_error  text,
    history     jsonb NOT NULL,
    dead_at     double precision NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"""

_CLIENT_LOGS = """
-- Log entries the Node client posts (/api/logs), kept for MIRO_LOG_RETENTION_DAYS.
CREATE TABLE client_logs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  double precision NOT NULL,
    request_id   text NOT NULL,
    user_id      text,
    timestamp    text NOT NULL,                   -- as the client sent it
    level        text NOT NULL,                   -- lower-case: trace ... fatal
    message      text NOT NULL,                   -- control characters removed
    context      text NOT NULL DEFAULT '{}'       -- JSON object, control characters removed
);
CREATE INDEX client_logs_by_age ON client_logs (received_at);
"""

_WEBHOOKS = """
-- Webhook events already accepted (by event id, or a hash of the body): redeliveries within
-- a day are recognised and not processed again, by any instance (a unique key).
CREATE TABLE webhook_events (
    key          text PRIMARY KEY,
    received_at  double precision NOT NULL
);
CREATE INDEX webhook_events_by_age ON webhook_events (received_at);
"""

_JOB_TRACES = """
-- The W3C traceparent of the span that enqueued a job: its work is traced as linked to it.
ALTER TABLE jobs ADD COLUMN traceparent text;
"""

_BOARD_HISTORY = """
-- Items deleted from a board, kept for a week so that `/changes?since=` can name them;
-- `history_from` is the oldest `since` whose delta is still complete.
ALTER TABLE boards ADD COLUMN history_from bigint NOT NULL DEFAULT 1;
CREATE TABLE board_tombstones (
    board_id    text NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    id          text NOT NULL,
    version     bigint NOT NULL,                  -- the board version the deletion made
    deleted_at  double precision NOT NULL,        -- epoch seconds
    PRIMARY KEY (board_id, id)
);

-- The client's diagram nodes (`/ops` NodeDefinition creates): node id -> the Miro item drawn
-- for it, per user and board.
CREATE TABLE board_nodes (
    user_id     text NOT NULL,
    board_id    text NOT NULL,
    node_id     text NOT NULL,
    item_id     text NOT NULL,
    updated_at  double precision NOT NULL,
    PRIMARY KEY (user_id, board_id, node_id)
);
"""

_LIMITS = """
-- Where readiness checks that the database takes writes again after they failed.
CREATE TABLE store_probe (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pad  bytea NOT NULL
);

-- Webhook events per board per minute are bounded: recorded events name their board.
ALTER TABLE webhook_events ADD COLUMN board_id text;
CREATE INDEX webhook_events_by_board ON webhook_events (board_id, received_at);
-- Events for a board whose sync has not started yet ride on that sync.
CREATE INDEX operations_pending_syncs ON operations (board_id)
    WHERE kind = 'sync_board' AND status = 'pending';

-- What each caller of /api/logs sent lately (by user, or by address): a rate per minute and
-- a quota of bytes per day, both fixed windows.
CREATE TABLE client_log_usage (
    caller          text PRIMARY KEY,             -- 'user:<id>' or 'addr:<ip>'
    minute_start    double precision NOT NULL,
    minute_entries  integer NOT NULL,
    day_start       double precision NOT NULL,
    day_bytes       bigint NOT NULL
);
"""

_SHARED_WORK = """
-- A claimed unit of work is named (the fencing token of its lease): only its holder settles
-- it, and a lease renewed while the work runs expires only when its holder has died.
ALTER TABLE operations ADD COLUMN unit text;
CREATE INDEX operations_by_unit ON operations (unit) WHERE unit IS NOT NULL;
CREATE INDEX operations_leased ON operations (status, lease_until);

-- An Idempotency-Key is claimed by a row: 'running' under a token and a lease, then 'done'
-- with the response.
ALTER TABLE idempotency ADD COLUMN state text NOT NULL DEFAULT 'done'
    CHECK (state IN ('running', 'done'));
ALTER TABLE idempotency ADD COLUMN token text;
ALTER TABLE idempotency ADD COLUMN claimed_until double precision;

-- Each user's Miro credit budget, shared by every instance (store/postgres/credits.py);
-- SQLite has no such tables: one process keeps budgets in memory.
CREATE TABLE credit_budgets (
    user_id       text PRIMARY KEY,
    credit_limit  integer,                        -- Miro's limit per window; NULL: not told yet
    remaining     bigint NOT NULL,                -- credits not reserved in the window
    window_ends   double precision NOT NULL,      -- epoch seconds
    probe_until   double precision,               -- a call learning the limit holds this
    updated_at    double precision NOT NULL
);
-- Credits reserved by calls still in flight (settled: deleted; never settled: lapsed).
CREATE TABLE credit_holds (
    user_id  text NOT NULL,
    cost     integer NOT NULL,
    until    double precision NOT NULL            -- epoch seconds
);
CREATE INDEX credit_holds_by_user ON credit_holds (user_id, until);
"""

_EXACTLY_ONCE = """
-- A create's open attempt: when it was claimed for a bulk create whose outcome is not known
-- yet (NULL once it is). Claimed again while open, it may have been created already: the
-- board's items are matched against it before anything is sent again.
ALTER TABLE operations ADD COLUMN attempt_started double precision;
-- What Miro answered for an operation of a job that answers a request itself (a keyed
-- synchronous create): {"status": ..., "body": ...}, as text.
ALTER TABLE operations ADD COLUMN response text;
-- Which operation an item was recorded for (an item is adopted by one operation only).
CREATE INDEX operations_by_result ON operations (board_id, result) WHERE result IS NOT NULL;

-- A key whose work is a job: its claimants answer from the job, however the first one ended.
ALTER TABLE idempotency ADD COLUMN job_id text;
"""

_CONSOLE = """
-- What operators did in the console (/_console): a dead letter retried or discarded, by whom
-- (the console's operator name), from which address, when.
CREATE TABLE console_audit (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        double precision NOT NULL,
    operator  text NOT NULL,
    action    text NOT NULL CHECK (action IN ('retry', 'discard')),
    job_id    text NOT NULL,
    seq       integer NOT NULL,
    address   text
);
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


def schema_version(connection: psycopg.Connection[Any]) -> int:
    """The last migration applied (0 before the first); `schema_version` must exist."""
    row = connection.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(connection: psycopg.Connection[Any], migrations: Sequence[str]) -> int:
    """Apply the migrations the database has not seen, under the migrations' advisory lock.

    `connection` is in autocommit mode. Migration N (1-based) is `migrations[N - 1]`; it and
    its row in `schema_version` commit together. Raises `SchemaTooNew` when the database is
    ahead of `migrations`.
    """
    connection.execute("SELECT pg_advisory_lock(%s, 0)", (MIGRATIONS_LOCK,))
    try:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version = schema_version(connection)
        if version > len(migrations):
            raise SchemaTooNew(
                f"database schema version {version} is newer than this code knows "
                f"({len(migrations)}); upgrade miro-bridge"
            )
        for number, script in enumerate(migrations[version:], start=version + 1):
            with connection.transaction():
                connection.execute(script.encode())
                connection.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
    finally:
        connection.execute("SELECT pg_advisory_unlock(%s, 0)", (MIGRATIONS_LOCK,))
    return len(migrations)
