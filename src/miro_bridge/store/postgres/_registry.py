"""The PostgreSQL backend's implementations, by operation type, and what they share.

An implementation is `PG[type(op)](connection, op)`: it runs on a `psycopg.Connection` from
the pool, inside the transaction the backend opened for it (committed when it returns,
rolled back when it raises). Every value is a bound parameter; SQL strings are assembled
from constants only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import IsolationLevel

from miro_bridge.store._operation import Registry

PG = Registry()
"""`PG[type(op)](connection, op)` runs `op` on a `psycopg.Connection`."""

#: The first key of each kind of advisory lock (`pg_advisory_lock(kind, key)`): the second
#: names what is locked (a user, a board), hashed to 32 bits by `lock_key`.
MIGRATIONS_LOCK = 7_301_001
CLAIMS_LOCK = 7_301_002
TOKENS_LOCK = 7_301_003
KEYS_LOCK = 7_301_004
WEBHOOKS_LOCK = 7_301_005
RESULTS_LOCK = 7_301_006

#: The channel of `NOTIFY` for board changes; the payload is `<instance> <board id>`.
BOARD_CHANNEL = "board_changed"


def lock_key(name: str) -> int:
    """A stable 32-bit key for `name` (a user or board id); a collision only serialises more."""
    digest = hashlib.blake2b(name.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def to_json(value: Mapping[str, Any]) -> str:
    """JSON text for a `jsonb` column: no NaN or Infinity ever stored (as with SQLite)."""
    return json.dumps(value, allow_nan=False)


def prepare(connection: psycopg.Connection[Any], *, writes: bool) -> None:
    """Set up a pooled connection (idle) for its next transaction: READ COMMITTED for a
    write (it locks what it must), REPEATABLE READ READ ONLY for a read (one snapshot)."""
    if writes:
        connection.isolation_level = IsolationLevel.READ_COMMITTED
        connection.read_only = False
    else:
        connection.isolation_level = IsolationLevel.REPEATABLE_READ
        connection.read_only = True
