"""Which PostgreSQL failures may pass, as `StoreUnavailable`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import psycopg.errors
import psycopg_pool

from miro_bridge.errors import StoreUnavailable

#: Failures of a transaction that another try may not meet (it lost a race): tried again.
RETRY = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)

#: Failures that may pass: the connection (refused, reset, timed out), the server (shutting
#: down, out of resources, a statement or lock timeout), the pool (no connection in time), a
#: server that only reads now (a standby after a failover), a race lost too often.
_TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.ReadOnlySqlTransaction,
    psycopg_pool.PoolTimeout,
    psycopg_pool.PoolClosed,
    *RETRY,
)


def unavailable(error: BaseException) -> BaseException:
    """`StoreUnavailable` for a failure that may pass; any other error as it is."""
    if not isinstance(error, _TRANSIENT):
        return error
    state = getattr(error, "sqlstate", None)
    reason = f"{type(error).__name__} {state}" if state else type(error).__name__
    failure = StoreUnavailable(f"the database cannot do this now ({reason})")
    failure.__cause__ = error
    return failure


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise PostgreSQL's failures that may pass as `StoreUnavailable`, others unchanged."""
    try:
        yield
    except psycopg.Error as error:
        failure = unavailable(error)
        if failure is error:
            raise
        raise failure from error
