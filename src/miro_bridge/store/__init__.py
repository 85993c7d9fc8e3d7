"""Storage: repositories by domain, and the backends that implement them.

Each domain (`users`, `boards`, `jobs`, `idempotency`, `client_logs`, `credits`) is a set of named
operations on records (`miro_bridge.records`), sent to the Store actor; SQL and connection
objects never leave this package. `backend_for(settings)` gives the database the settings
name: SQLite (embedded, one process: `sqlite`) or PostgreSQL (shared by any number of
instances: `postgres`).
"""

from __future__ import annotations

from miro_bridge.config import Settings
from miro_bridge.store._backend import Backend
from miro_bridge.store._operation import Operation


def backend_for(settings: Settings) -> Backend:
    """The backend of `MIRO_DATABASE_URL` (not opened yet); each is imported when needed."""
    if settings.database_is_shared:
        from miro_bridge.store.postgres import PostgresBackend

        return PostgresBackend(
            settings.database_url,
            pool_size=settings.database_pool_size,
            pool_timeout=settings.database_timeout_seconds,
        )
    from miro_bridge.store.sqlite import SqliteBackend

    return SqliteBackend(settings.database_path)


__all__ = ["Backend", "Operation", "backend_for"]
