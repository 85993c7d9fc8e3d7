"""Users' Miro credit budgets, as the service knows them."""

from __future__ import annotations

import attrs


@attrs.frozen
class BudgetView:
    """What is known of one user's budget now: Miro's limit per window (None until Miro has
    said), the credits left in the window, and when the window ends (epoch seconds)."""

    limit: int | None
    remaining: int
    reset_at: float
