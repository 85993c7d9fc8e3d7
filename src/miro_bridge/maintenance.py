"""Operator commands that work on the database while the service may be stopped."""

from __future__ import annotations

import functools

import trio

from miro_bridge.actors import Supervisor
from miro_bridge.actors.store import Store
from miro_bridge.config import Settings
from miro_bridge.store import backend_for, database, users
from miro_bridge.store.crypto import TokenCipher


async def rotate_keys(settings: Settings) -> int:
    """Re-encrypt every stored token with the first key; the number of users touched.

    All or nothing: one transaction, so a token no configured key can decrypt leaves every
    token as it was (`UndecryptableToken`).
    """
    cipher = TokenCipher(settings.encryption_keys)
    supervisor = Supervisor()
    store = supervisor.add("store", lambda: Store(functools.partial(backend_for, settings)))
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        try:
            count = await store.call(users.Reencrypt(cipher.rotate), timeout=300)
            await store.call(database.Checkpoint())
        finally:
            await supervisor.stop()
    return count
