"""The log of the requests the sandbox received on Miro's routes, oldest first."""

from __future__ import annotations

import collections
from typing import Any

import attrs

MAX_ENTRIES = 100_000
"""The log keeps the newest entries past this many, so a long try-out cannot fill memory."""


@attrs.define
class LogEntry:
    """One request: filled in as it is handled.

    `user` is None until a token names one; `status` stays None when no answer was sent
    (a hung or dropped request), and is 499 when the client went away while the call was
    being carried out (it is over: whatever it did is done); `credits` is what the request
    was charged.
    """

    method: str
    path: str
    user: str | None = None
    status: int | None = None
    credits: int = 0

    def as_json(self) -> dict[str, Any]:
        """The entry as `GET /_admin/requests` lists it."""
        return attrs.asdict(self)


class RequestLog:
    """Entries in arrival order."""

    def __init__(self) -> None:
        self._entries: collections.deque[LogEntry] = collections.deque(maxlen=MAX_ENTRIES)

    def open(self, method: str, path: str) -> LogEntry:
        """Log a request that just arrived and answer its entry, to fill in later."""
        entry = LogEntry(method, path)
        self._entries.append(entry)
        return entry

    def as_json(self) -> list[dict[str, Any]]:
        """Every entry, oldest first."""
        return [entry.as_json() for entry in self._entries]
