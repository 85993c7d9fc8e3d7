"""Board snapshots in SQLite: plain SQL over the tables of migration 2.

Functions of a `sqlite3.Connection`, run by the Store actor for the BoardCache actor. Bodies
are Miro's JSON, stored as text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
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


def load(connection: sqlite3.Connection, board_id: str) -> Snapshot | None:
    """The stored snapshot of a board, if any."""
    row = connection.execute(
        "SELECT body, version, fetched_at, sync_user, history_from FROM boards WHERE id = ?",
        (board_id,),
    ).fetchone()
    if row is None:
        return None
    body, version, fetched_at, sync_user, history_from = row
    items = {
        item_id: CachedItem(json.loads(item_body), modified_at, item_version)
        for item_id, item_body, modified_at, item_version in connection.execute(
            "SELECT id, body, modified_at, version FROM board_items WHERE board_id = ? "
            "ORDER BY rowid",
            (board_id,),
        )
    }
    tags = tuple(
        json.loads(tag)
        for (tag,) in connection.execute(
            "SELECT body FROM board_tags WHERE board_id = ? ORDER BY id", (board_id,)
        )
    )
    tombstones = {
        item_id: Tombstone(item_version, deleted_at)
        for item_id, item_version, deleted_at in connection.execute(
            "SELECT id, version, deleted_at FROM board_tombstones WHERE board_id = ?", (board_id,)
        )
    }
    return Snapshot(
        board_id,
        json.loads(body),
        items,
        tags,
        version,
        fetched_at,
        sync_user,
        tombstones,
        history_from,
    )


def save(connection: sqlite3.Connection, snapshot: Snapshot) -> None:
    """Store a whole snapshot, replacing what was stored for the board."""
    connection.execute(
        "INSERT INTO boards (id, body, version, fetched_at, sync_user, history_from) "
        "VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET body = excluded.body, version = excluded.version, "
        "fetched_at = excluded.fetched_at, sync_user = excluded.sync_user, "
        "history_from = excluded.history_from",
        (
            snapshot.board_id,
            json.dumps(snapshot.board),
            snapshot.version,
            snapshot.fetched_at,
            snapshot.sync_user,
            snapshot.history_from,
        ),
    )
    connection.execute("DELETE FROM board_items WHERE board_id = ?", (snapshot.board_id,))
    _insert_items(connection, snapshot.board_id, snapshot.items.items())
    connection.execute("DELETE FROM board_tags WHERE board_id = ?", (snapshot.board_id,))
    connection.executemany(
        "INSERT INTO board_tags (board_id, id, body) VALUES (?, ?, ?)",
        [(snapshot.board_id, str(tag["id"]), json.dumps(tag)) for tag in snapshot.tags],
    )
    connection.execute("DELETE FROM board_tombstones WHERE board_id = ?", (snapshot.board_id,))
    _insert_tombstones(connection, snapshot.board_id, snapshot.tombstones.items())


def save_changes(
    connection: sqlite3.Connection,
    board_id: str,
    version: int,
    changed: Mapping[str, CachedItem],
    removed: Mapping[str, Tombstone],
) -> None:
    """Store a write made through us: changed and removed items, and the new version."""
    connection.execute("UPDATE boards SET version = ? WHERE id = ?", (version, board_id))
    connection.executemany(
        "DELETE FROM board_items WHERE board_id = ? AND id = ?",
        [(board_id, item_id) for item_id in (*changed, *removed)],
    )
    _insert_items(connection, board_id, changed.items())
    _insert_tombstones(connection, board_id, removed.items())


def _insert_tombstones(
    connection: sqlite3.Connection, board_id: str, tombstones: Iterable[tuple[str, Tombstone]]
) -> None:
    connection.executemany(
        "INSERT OR REPLACE INTO board_tombstones (board_id, id, version, deleted_at) "
        "VALUES (?, ?, ?, ?)",
        [(board_id, item_id, t.version, t.deleted_at) for item_id, t in tombstones],
    )


def _insert_items(
    connection: sqlite3.Connection, board_id: str, items: Iterable[tuple[str, CachedItem]]
) -> None:
    connection.executemany(
        "INSERT INTO board_items (board_id, id, body, modified_at, version) VALUES (?, ?, ?, ?, ?)",
        [
            (board_id, item_id, json.dumps(item.body), item.modified_at, item.version)
            for item_id, item in items
        ],
    )
