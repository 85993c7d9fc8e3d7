"""Fault injection for tests: a PRAGMA run on the Store's own SQLite connection.

`PRAGMA query_only = ON` makes every write fail (`SQLITE_READONLY`), `PRAGMA max_page_count`
makes the file unable to grow (`SQLITE_FULL`, what a full disk gives): both are settings of
one connection, so they must run on the Store's. Importing this module registers the
operation; the service itself never does.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import attrs

from miro_bridge.store._operation import Operation
from miro_bridge.store.sqlite._registry import ON_WRITER, SQL


@attrs.frozen
class Pragma(Operation[Any]):
    """Run `PRAGMA <setting>` on the Store's connection; the first row of its answer."""

    setting: str


ON_WRITER.add(Pragma)


@SQL.implements(Pragma)
def _pragma(connection: sqlite3.Connection, op: Pragma) -> Any:
    return connection.execute(f"PRAGMA {op.setting}").fetchone()
