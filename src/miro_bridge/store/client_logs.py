"""The client logs repository: entries the Node client posted, and what each caller sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs

from miro_bridge.records.client_logs import CallerLimits, ClientLogEntry
from miro_bridge.store._operation import Operation


@attrs.frozen
class StoreLogs(Operation[None]):
    """Store entries within the caller's limits (else `RateLimited`, nothing stored), and
    drop entries older than `keep_seconds`."""

    writes: ClassVar[bool] = True
    durable: ClassVar[bool] = False
    entries: Sequence[ClientLogEntry]
    request_id: str
    user_id: str | None
    caller: str
    limits: CallerLimits
    now: float
    keep_seconds: float


@attrs.frozen
class CountLogs(Operation[int]):
    """How many entries are stored."""
