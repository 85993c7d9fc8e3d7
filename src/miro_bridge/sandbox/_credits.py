"""Miro's credit-based rate limit: a per-minute budget for each user of each app.

Every REST operation costs the credits of its rate-limit level (bulk creation: level 2 per
item). The first charge opens a window (60 s, as Miro's; shorter in tests that drain several
budgets); the budget refills when the window ends, at the epoch second reported in
`X-RateLimit-Reset`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

LEVEL_COSTS = {1: 50, 2: 100, 3: 500, 4: 2000}
"""Credits per call at each rate-limit level (developers.miro.com/reference/rate-limiting)."""

WINDOW_SECONDS = 60.0


@attrs.frozen
class Budget:
    """What is left of one user-and-app budget, as the `X-RateLimit-*` headers report it."""

    limit: int
    remaining: int
    reset_at: float

    def headers(self) -> dict[str, str]:
        """The `X-RateLimit-Limit`, `-Remaining` and `-Reset` (epoch seconds) headers."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }


class OutOfCredits(Exception):
    """The charge does not fit in what is left of the budget; nothing was charged."""

    def __init__(self, budget: Budget) -> None:
        super().__init__("credit budget spent for this minute")
        self.budget = budget


@attrs.define
class _Window:
    start: float
    used: int = 0


class CreditLedger:
    """The credit windows of every (user, app) pair."""

    def __init__(
        self, per_minute: int, clock: Callable[[], float], window: float = WINDOW_SECONDS
    ) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._window_seconds = window
        self._windows: dict[tuple[str, str], _Window] = {}

    def _window(self, user_id: str, client_id: str) -> _Window:
        now = self._clock()
        window = self._windows.get((user_id, client_id))
        if window is None or now >= window.start + self._window_seconds:
            window = self._windows[user_id, client_id] = _Window(start=now)
        return window

    def _budget(self, window: _Window) -> Budget:
        return Budget(
            limit=self._per_minute,
            remaining=self._per_minute - window.used,
            reset_at=window.start + self._window_seconds,
        )

    def charge(self, user_id: str, client_id: str, cost: int) -> Budget:
        """Take `cost` credits, or raise OutOfCredits when they are not left."""
        window = self._window(user_id, client_id)
        if window.used + cost > self._per_minute:
            raise OutOfCredits(self._budget(window))
        window.used += cost
        return self._budget(window)

    def peek(self, user_id: str, client_id: str) -> Budget:
        """The budget as it stands, charging nothing."""
        return self._budget(self._window(user_id, client_id))
