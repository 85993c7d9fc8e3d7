"""The SQLite backend's implementations, by operation type."""

from __future__ import annotations

from miro_bridge.store._operation import Registry

SQL = Registry()
"""`SQL[type(op)](connection, op)` runs `op` on a `sqlite3.Connection`."""
