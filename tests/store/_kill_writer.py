"""Writes rows through the Store actor forever, printing each id once its write is acknowledged.

Run by tests/store/test_store.py, which kills this process with SIGKILL mid-way and then
checks that every printed id is in the database.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import trio

from miro_bridge.actors import Supervisor
from miro_bridge.actors.store import Store, Write

MIGRATIONS = ("CREATE TABLE acked (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);",)


def insert(row_id: int, connection: sqlite3.Connection) -> None:
    connection.execute("INSERT INTO acked (id, payload) VALUES (?, ?)", (row_id, "x" * 200))


async def main(path: Path) -> None:
    supervisor = Supervisor()
    store = supervisor.add("store", lambda: Store(path, MIGRATIONS))
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        print("ready", flush=True)

        async def writer(first: int) -> None:
            row_id = first
            while True:
                await store.call(Write(lambda c, i=row_id: insert(i, c)))
                print(row_id, flush=True)
                row_id += 16

        for first in range(16):
            nursery.start_soon(writer, first)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
