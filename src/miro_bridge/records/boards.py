"""Board snapshots as the cache holds them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class CachedItem:
    """An item as the cache holds it: Miro's JSON and the board version it last changed in."""

    body: Mapping[str, Any]
    modified_at: str
    version: int


@attrs.frozen
class Tombstone:
    """An item the board lost: the board version that removed it, and when (epoch seconds)."""

    version: int
    deleted_at: float


@attrs.frozen
class Snapshot:
    """A board as the cache holds it. Immutable: a change makes a new snapshot.

    `tombstones` name the items deleted since `history_from`, the oldest board version from
    which the changes are still complete.
    """

    board_id: str
    board: Mapping[str, Any]
    items: Mapping[str, CachedItem]
    tags: tuple[Mapping[str, Any], ...]
    version: int
    fetched_at: float
    sync_user: str
    tombstones: Mapping[str, Tombstone] = attrs.field(factory=dict)
    history_from: int = 1
