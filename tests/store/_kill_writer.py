"""Writes rows through the Store actor forever, printing each id once its write is acknowledged.

Run by tests/store/test_store.py, which kills this process with SIGKILL mid-way and then
checks that every printed id is in the database.
"""

from __future__ import annotations

import functools
import sqlite3
import sys
from pathlib import Path
from typing import ClassVar

import attrs
import trio

from miro_bridge.actors import Supervisor
from miro_bridge.actors.store import Store
from miro_bridge.store import Operation
from miro_bridge.store._operation import Registry
from miro_bridge.store.sqlite import SqliteBackend

MIGRATIONS = ("CREATE TABLE acked (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);",)
ACKED = Registry()


@attrs.frozen
class Insert(Operation[None]):
    writes: ClassVar[bool] = True
    row_id: int


@ACKED.implements(Insert)
def insert(connection: sqlite3.Connection, op: Insert) -> None:
    connection.execute("INSERT INTO acked (id, payload) VALUES (?, ?)", (op.row_id, "x" * 200))


async def main(path: Path) -> None:
    supervisor = Supervisor()
    backend = functools.partial(SqliteBackend, path, MIGRATIONS, ACKED)
    store = supervisor.add("store", lambda: Store(backend))
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        print("ready", flush=True)

        async def writer(first: int) -> None:
            row_id = first
            while True:
                await store.call(Insert(row_id))
                print(row_id, flush=True)
                row_id += 16

        for first in range(16):
            nursery.start_soon(writer, first)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
