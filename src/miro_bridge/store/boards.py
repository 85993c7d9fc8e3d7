"""The boards repository: snapshots of boards, their items, tags and tombstones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs

from miro_bridge.records.boards import CachedItem, Snapshot, Tombstone
from miro_bridge.store._operation import Operation


@attrs.frozen
class LoadBoard(Operation[Snapshot | None]):
    """The stored snapshot of a board, if any."""

    board_id: str


@attrs.frozen
class SaveBoard(Operation[None]):
    """Store a whole snapshot, replacing what was stored for the board."""

    writes: ClassVar[bool] = True
    durable: ClassVar[bool] = False  # a cache: Miro has the truth
    snapshot: Snapshot


@attrs.frozen
class SaveChanges(Operation[None]):
    """Store a write made through us: changed and removed items, and the new version."""

    writes: ClassVar[bool] = True
    durable: ClassVar[bool] = False
    board_id: str
    version: int
    changed: Mapping[str, CachedItem]
    removed: Mapping[str, Tombstone]


@attrs.frozen
class BoardChanges(Operation[tuple[int, tuple[str, ...]]]):
    """Wait for boards that other instances changed after notice `after`; the last notice's
    number and the boards. Only a backend shared by several instances has any (PostgreSQL's
    `NOTIFY board_changed`); with SQLite it never answers."""

    waits: ClassVar[bool] = True
    after: int
