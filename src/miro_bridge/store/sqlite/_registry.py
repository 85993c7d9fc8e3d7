"""The SQLite backend's implementations, by operation type."""

from __future__ import annotations

from typing import Any

from miro_bridge.store._operation import Operation, Registry

SQL = Registry()
"""`SQL[type(op)](connection, op)` runs `op` on a `sqlite3.Connection`."""

ON_WRITER: set[type[Operation[Any]]] = set()
"""Operations that are not writes but must run on the writer's connection: a setting of
that connection (a test's fault), a checkpoint. Every other read runs on the reader."""
