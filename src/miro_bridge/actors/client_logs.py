"""The ClientLogs actor: the owner of the Node client's log entries.

It stores the entries each request posted (within the caller's limits, `store.client_logs`),
then re-emits each as a structured log event tagged `source=client`, with the request's id,
and counts them.

The requests that arrive while a store is in flight are stored together, in the next one:
one Store call, one transaction and one retention sweep for all of them, however many
connections post at once. Each caller's limits are still checked post by post, in the order
they arrived: a post over its caller's limits is refused (`RateLimited`, nothing of it
stored) and the others are stored. Each caller hears only after its entries are stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar, cast

import attrs
import structlog
import trio

from miro_bridge.actors._runtime import Actor, ActorRef, Envelope, Inbox, Message
from miro_bridge.actors.store import Store
from miro_bridge.config import Settings
from miro_bridge.metrics import Metrics
from miro_bridge.records.client_logs import CallerLimits, ClientLogEntry, ClientLogPost
from miro_bridge.store import client_logs

log = structlog.get_logger("miro_bridge.client")

#: The client's levels, as the standard library's.
LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}

#: The name of the bound logger's method for each of the client's levels.
_METHODS = {level: logging.getLevelName(number).lower() for level, number in LEVELS.items()}

#: The most requests stored together.
MAX_GROUP = 256


@attrs.frozen
class Ingest(Message[None, "ClientLogs"]):
    """Store and re-emit entries a caller (`user:<id>` or `addr:<ip>`) posted."""

    entries: tuple[ClientLogEntry, ...]
    user_id: str | None
    caller: str


class ClientLogs(Actor):
    """Stores and re-emits the client's log entries; see the module docstring."""

    name: ClassVar[str] = "client_logs"

    def __init__(
        self,
        settings: Settings,
        store: ActorRef[Store],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._max_group = max_group
        self._keep_seconds = settings.log_retention_days * 86400.0
        self._limits = CallerLimits(settings.log_rate_per_minute, settings.log_quota_bytes)

    async def serve(self, inbox: Inbox) -> None:
        """Take what waits in the mailbox (up to `max_group` requests), store it, answer;
        again. The mailbox fills while a store is in flight: that is the next group."""
        async for envelope in inbox:
            group = [envelope]
            while len(group) < self._max_group:
                try:
                    group.append(inbox.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._ingest(group)

    async def _ingest(self, group: list[Envelope]) -> None:
        """Store the group's posts in one operation, re-emit the stored ones, answer each."""
        messages = [cast(Ingest, envelope.message) for envelope in group]  # all it takes
        posts = [
            ClientLogPost(
                message.entries, envelope.request_id or "", message.user_id, message.caller
            )
            for envelope, message in zip(group, messages, strict=True)
        ]
        try:
            refusals = await self._store.call(
                client_logs.StoreLogs(posts, self._limits, self._clock(), self._keep_seconds)
            )
        except Exception as error:  # nothing of the group is stored: each caller hears why
            for envelope in group:
                envelope.fail(error)
            return
        bound: Any = log.bind()
        methods = {level: getattr(bound, name) for level, name in _METHODS.items()}
        stored = 0
        for envelope, post, refusal in zip(group, posts, refusals, strict=True):
            if refusal is not None:
                continue
            stored += len(post.entries)
            user_id = post.user_id
            with envelope.context():
                for entry in post.entries:
                    methods[entry.level](
                        entry.message,
                        source="client",
                        client_level=entry.level,
                        client_timestamp=entry.timestamp,
                        user_id=user_id,
                        context=entry.context,
                    )
        self._metrics.client_logs_ingested.inc(stored)
        for envelope, refusal in zip(group, refusals, strict=True):
            if refusal is None:
                envelope.reply(None)
            else:
                envelope.fail(refusal)
