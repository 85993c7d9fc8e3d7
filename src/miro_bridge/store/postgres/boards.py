"""Board snapshots in PostgreSQL: the operations of `store.boards` but `BoardChanges`.

Bodies are Miro's JSON as text (replayed as they were). Every write announces the board with
`NOTIFY board_changed` in its own transaction, so that other instances hear of it when, and
only if, it commits; the payload names the sending instance (a setting of each pooled
connection, `miro_bridge.instance`), so that its own listener passes it by.
`BoardChanges`, which waits for those notices, is the listener's (`_listener.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import attrs
import psycopg

from miro_bridge.records.boards import CachedItem, Snapshot, Tombstone
from miro_bridge.store._operation import Operation
from miro_bridge.store.boards import LoadBoard, SaveBoard, SaveChanges
from miro_bridge.store.postgres._registry import BOARD_CHANNEL, PG

Connection = psycopg.Connection[Any]

#: The instance's name comes from the connection (set when the pool opened it).
_NOTIFY = (
    "SELECT pg_notify(%s, coalesce(current_setting('miro_bridge.instance', true), '') || ' ' || %s)"
)


@attrs.frozen
class EveryBoard(Operation[tuple[str, ...]]):
    """Every stored board's id (what the listener names when it cannot say which changed)."""


@PG.implements(EveryBoard)
def every_board(connection: Connection, op: EveryBoard) -> tuple[str, ...]:
    return tuple(board_id for (board_id,) in connection.execute("SELECT id FROM boards"))


@PG.implements(LoadBoard)
def load(connection: Connection, op: LoadBoard) -> Snapshot | None:
    board_id = op.board_id
    row = connection.execute(
        "SELECT body, version, fetched_at, sync_user, history_from FROM boards WHERE id = %s",
        (board_id,),
    ).fetchone()
    if row is None:
        return None
    body, version, fetched_at, sync_user, history_from = row
    items = {
        item_id: CachedItem(json.loads(item_body), modified_at, item_version)
        for item_id, item_body, modified_at, item_version in connection.execute(
            "SELECT id, body, modified_at, version FROM board_items WHERE board_id = %s "
            "ORDER BY seq",
            (board_id,),
        )
    }
    tags = tuple(
        json.loads(tag)
        for (tag,) in connection.execute(
            "SELECT body FROM board_tags WHERE board_id = %s ORDER BY id", (board_id,)
        )
    )
    tombstones = {
        item_id: Tombstone(item_version, deleted_at)
        for item_id, item_version, deleted_at in connection.execute(
            "SELECT id, version, deleted_at FROM board_tombstones WHERE board_id = %s",
            (board_id,),
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


@PG.implements(SaveBoard)
def save(connection: Connection, op: SaveBoard) -> None:
    snapshot = op.snapshot
    board_id = snapshot.board_id
    connection.execute(
        "INSERT INTO boards (id, body, version, fetched_at, sync_user, history_from) "
        "VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET body = excluded.body, version = excluded.version, "
        "fetched_at = excluded.fetched_at, sync_user = excluded.sync_user, "
        "history_from = excluded.history_from",
        (
            board_id,
            json.dumps(snapshot.board),
            snapshot.version,
            snapshot.fetched_at,
            snapshot.sync_user,
            snapshot.history_from,
        ),
    )
    connection.execute("DELETE FROM board_items WHERE board_id = %s", (board_id,))
    _insert_items(connection, board_id, snapshot.items.items())
    connection.execute("DELETE FROM board_tags WHERE board_id = %s", (board_id,))
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO board_tags (board_id, id, body) VALUES (%s, %s, %s)",
            [(board_id, str(tag["id"]), json.dumps(tag)) for tag in snapshot.tags],
        )
    connection.execute("DELETE FROM board_tombstones WHERE board_id = %s", (board_id,))
    _insert_tombstones(connection, board_id, snapshot.tombstones.items())
    connection.execute(_NOTIFY, (BOARD_CHANNEL, board_id))


@PG.implements(SaveChanges)
def save_changes(connection: Connection, op: SaveChanges) -> None:
    board_id = op.board_id
    connection.execute("UPDATE boards SET version = %s WHERE id = %s", (op.version, board_id))
    connection.execute(
        "DELETE FROM board_items WHERE board_id = %s AND id = ANY(%s)",
        (board_id, [*op.changed, *op.removed]),
    )
    _insert_items(connection, board_id, op.changed.items())
    _insert_tombstones(connection, board_id, op.removed.items())
    connection.execute(_NOTIFY, (BOARD_CHANNEL, board_id))


def _insert_items(
    connection: Connection, board_id: str, items: Iterable[tuple[str, CachedItem]]
) -> None:
    """Store items in the order given (their `seq`), in one COPY."""
    with connection.cursor().copy(
        "COPY board_items (board_id, id, body, modified_at, version) FROM STDIN"
    ) as copy:
        for item_id, item in items:
            copy.write_row(
                (board_id, item_id, json.dumps(item.body), item.modified_at, item.version)
            )


def _insert_tombstones(
    connection: Connection, board_id: str, tombstones: Iterable[tuple[str, Tombstone]]
) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO board_tombstones (board_id, id, version, deleted_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (board_id, id) DO UPDATE "
            "SET version = excluded.version, deleted_at = excluded.deleted_at",
            [(board_id, item_id, t.version, t.deleted_at) for item_id, t in tombstones],
        )
