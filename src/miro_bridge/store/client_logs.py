"""The client logs repository: entries the Node client posted, and what each caller sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import attrs

from miro_bridge.errors import RateLimited
from miro_bridge.records.client_logs import CallerLimits, ClientLogEntry, ClientLogPost
from miro_bridge.store._operation import Operation


@attrs.frozen
class StoreLogs(Operation[tuple[RateLimited | None, ...]]):
    """Store each post that fits its caller's limits, counted in order, and drop entries
    older than `keep_seconds`; answer, for each post, None (stored) or the `RateLimited`
    it is refused with (nothing of it stored, nothing counted).

    Several requests' posts in one operation: one transaction, one retention sweep and one
    insert for all of them.
    """

    writes: ClassVar[bool] = True
    durable: ClassVar[bool] = False
    posts: Sequence[ClientLogPost]
    limits: CallerLimits
    now: float
    keep_seconds: float


@attrs.frozen
class CountLogs(Operation[int]):
    """How many entries are stored."""


Usage = tuple[float, int, float, int]
"""A caller's usage row: minute_start, minute_entries, day_start, day_bytes."""


def charged(
    usage: Usage | None, entries: Sequence[ClientLogEntry], limits: CallerLimits, now: float
) -> Usage:
    """The caller's usage with `entries` counted (fixed windows, started again when over), or
    `RateLimited` if they do not fit: the rule both backends apply to their usage row."""
    minute_start, minute_entries, day_start, day_bytes = usage or (now, 0, now, 0)
    if now - minute_start >= 60.0:
        minute_start, minute_entries = now, 0
    if now - day_start >= 86400.0:
        day_start, day_bytes = now, 0
    minute_entries += len(entries)
    day_bytes += sum(entry.size for entry in entries)
    if minute_entries > limits.entries_per_minute:
        raise RateLimited(
            f"over {limits.entries_per_minute} log entries a minute", minute_start + 60.0 - now
        )
    if day_bytes > limits.bytes_per_day:
        raise RateLimited(
            f"over {limits.bytes_per_day} bytes of log entries a day", day_start + 86400.0 - now
        )
    return minute_start, minute_entries, day_start, day_bytes


def charged_in_order(
    usage: Mapping[str, Usage | None],
    posts: Sequence[ClientLogPost],
    limits: CallerLimits,
    now: float,
) -> tuple[tuple[RateLimited | None, ...], dict[str, Usage]]:
    """Each post charged to its caller in turn (`charged`), from the callers' stored `usage`:
    each post's refusal (None: it fits, and counts), and the usage rows that changed."""
    changed: dict[str, Usage] = {}
    refusals: list[RateLimited | None] = []
    for post in posts:
        caller = post.caller
        before = changed[caller] if caller in changed else usage.get(caller)
        try:
            changed[caller] = charged(before, post.entries, limits, now)
        except RateLimited as refusal:
            refusals.append(refusal)
        else:
            refusals.append(None)
    return tuple(refusals), changed
