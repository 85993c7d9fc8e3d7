"""Board snapshots in SQLite: the operations of `store.boards`. Bodies are Miro's JSON."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from miro_bridge.records.boards import CachedItem, Snapshot, Tombstone
from miro_bridge.store.boards import LoadBoard, SaveBoard, SaveChanges
from miro_bridge.store.sqlite._registry import SQL


@SQL.implements(LoadBoard)
def load(connection: sqlite3.Connection, op: LoadBoard) -> Snapshot | None:
    board_id = op.board_id
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


@SQL.implements(SaveBoard)
def save(connection: sqlite3.Connection, op: SaveBoard) -> None:
    snapshot = op.snapshot
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


@SQL.implements(SaveChanges)
def save_changes(connection: sqlite3.Connection, op: SaveChanges) -> None:
    board_id = op.board_id
    connection.execute("UPDATE boards SET version = ? WHERE id = ?", (op.version, board_id))
    connection.executemany(
        "DELETE FROM board_items WHERE board_id = ? AND id = ?",
        [(board_id, item_id) for item_id in (*op.changed, *op.removed)],
    )
    _insert_items(connection, board_id, op.changed.items())
    _insert_tombstones(connection, board_id, op.removed.items())


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


def _insert_tombstones(
    connection: sqlite3.Connection, board_id: str, tombstones: Iterable[tuple[str, Tombstone]]
) -> None:
    connection.executemany(
        "INSERT OR REPLACE INTO board_tombstones (board_id, id, version, deleted_at) "
        "VALUES (?, ?, ?, ?)",
        [(board_id, item_id, t.version, t.deleted_at) for item_id, t in tombstones],
    )
