"""Timestamps as the service writes them: ISO-8601 UTC with `Z`, like Miro."""

from __future__ import annotations

import datetime


def iso8601(epoch: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC to the second, e.g. `2026-11-27T10:00:00Z`."""
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
