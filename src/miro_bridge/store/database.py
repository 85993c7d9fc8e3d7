"""Operations on the database as a whole (maintenance)."""

from __future__ import annotations

import attrs

from miro_bridge.store._operation import Operation


@attrs.frozen
class Checkpoint(Operation[None]):
    """Make everything committed part of the main database file (SQLite's WAL checkpoint);
    nothing to do on PostgreSQL."""
