"""The ClientLogs actor: the owner of the Node client's log entries.

It stores the entries a request posted (within the caller's limits, `store.client_logs`),
then re-emits each as a structured log event tagged `source=client`, with the request's id,
and counts them. A request's entries are rendered one by one and written together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ClassVar, cast

import attrs
import structlog

from miro_bridge.actors._runtime import Actor, ActorRef, Envelope, Message
from miro_bridge.actors.store import Store
from miro_bridge.config import Settings
from miro_bridge.logs import one_write
from miro_bridge.metrics import Metrics
from miro_bridge.records.client_logs import CallerLimits, ClientLogEntry
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
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._keep_seconds = settings.log_retention_days * 86400.0
        self._limits = CallerLimits(settings.log_rate_per_minute, settings.log_quota_bytes)

    async def handle(self, envelope: Envelope) -> None:
        """Store in a task (the store may take a moment), then re-emit."""
        message = cast(Ingest, envelope.message)  # the only message it takes
        self.reply_later(envelope, lambda: self._ingest(message, envelope.request_id or ""))

    async def _ingest(self, message: Ingest, request_id: str) -> None:
        await self._store.call(
            client_logs.StoreLogs(
                message.entries,
                request_id,
                message.user_id,
                message.caller,
                self._limits,
                self._clock(),
                self._keep_seconds,
            )
        )
        emit = log.log
        with one_write():
            for entry in message.entries:
                emit(
                    LEVELS[entry.level],
                    entry.message,
                    source="client",
                    client_level=entry.level,
                    client_timestamp=entry.timestamp,
                    user_id=message.user_id,
                    context=entry.context,
                )
        self._metrics.client_logs_ingested.inc(len(message.entries))
