"""Operator commands that work on the database while the service may be stopped."""

from __future__ import annotations

import functools
import sqlite3

import trio

from miro_bridge.actors import Supervisor
from miro_bridge.actors.store import Read, Store, Write
from miro_bridge.config import Settings
from miro_bridge.store import users
from miro_bridge.store.crypto import TokenCipher


def _rotate_all(connection: sqlite3.Connection, cipher: TokenCipher) -> int:
    rows = users.all_ciphertexts(connection)
    rotated = [
        (
            user,
            cipher.rotate(access) if access is not None else None,
            cipher.rotate(refresh) if refresh is not None else None,
        )
        for user, access, refresh in rows
    ]
    users.replace_ciphertexts(connection, rotated)
    return len(rotated)


async def rotate_keys(settings: Settings) -> int:
    """Re-encrypt every stored token with the first key; the number of users touched.

    All or nothing: one transaction, so a token no configured key can decrypt leaves every
    token as it was (`UndecryptableToken`).
    """
    cipher = TokenCipher(settings.encryption_keys)
    supervisor = Supervisor()
    store = supervisor.add("store", lambda: Store(settings.database_path))
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        try:
            count: int = await store.call(
                Write(functools.partial(_rotate_all, cipher=cipher)), timeout=300
            )
            await store.call(
                Read(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
            )
        finally:
            await supervisor.stop()
    return count
