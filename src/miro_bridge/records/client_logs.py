"""Log entries the Node client posts."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

import attrs


@attrs.frozen
class ClientLogEntry:
    """One cleaned entry, as stored."""

    timestamp: str
    level: str
    message: str
    context: Mapping[str, str]

    @functools.cached_property
    def context_json(self) -> str:
        """The context as stored: its JSON text (worked out once: the quota counts it, and
        the store writes it)."""
        return json.dumps(self.context)

    @property
    def size(self) -> int:
        """The bytes it costs its caller's quota: its text, as stored."""
        text = self.timestamp + self.level + self.message + self.context_json
        return len(text.encode())


@attrs.frozen
class ClientLogPost:
    """The entries of one request, and who sent them: `caller` is `user:<id>` or
    `addr:<ip>`, whose limits they count against."""

    entries: tuple[ClientLogEntry, ...]
    request_id: str
    user_id: str | None
    caller: str


@attrs.frozen
class CallerLimits:
    """What one caller may send: entries per minute, and bytes per day (both fixed windows)."""

    entries_per_minute: int
    bytes_per_day: int
