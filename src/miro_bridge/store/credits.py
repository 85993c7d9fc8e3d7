"""The credits repository: each user's Miro credit budget, shared by every instance.

Only a database shared by several instances needs it (PostgreSQL): there, a call to Miro
first reserves its credits here, atomically, so that N instances never spend N budgets. One
process (SQLite) keeps the budgets in memory (`actors.miro_client.Budget`).

A budget is a window of Miro's limit: reservations count against it until it ends, and are
in flight until their call is settled; Miro's `X-RateLimit-*` headers correct it (its limit,
what is left, when its window resets). Until Miro has told the limit, one call at a time
probes it. The exact rules are the backend's (`store.postgres.credits`).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from miro_bridge.records.credits import BudgetView
from miro_bridge.store._operation import Operation


@attrs.frozen
class ReserveCredits(Operation[float]):
    """Reserve `cost` credits of the user's budget now: 0.0 when reserved, else how many
    seconds to wait before asking again (the window is spent, or the limit is not known yet
    and another call is probing it)."""

    writes: ClassVar[bool] = True
    durable: ClassVar[bool] = False
    user_id: str
    cost: int
    now: float
    window_seconds: float


@attrs.frozen
class SettleCredits(Operation[None]):
    """A call that reserved `cost` credits at `ReserveCredits` is over: they are no longer in
    flight. If its answer carried Miro's headers: Miro's `limit`, the credits `remaining` in
    its window, and when that window resets (`reset_at`, epoch seconds)."""

    writes: ClassVar[bool] = True
    durable: ClassVar[bool] = False
    user_id: str
    cost: int
    now: float
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None


@attrs.frozen
class CreditBudgets(Operation[dict[str, BudgetView]]):
    """Every user's budget as known now."""
