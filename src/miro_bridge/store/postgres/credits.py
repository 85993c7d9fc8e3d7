"""Users' Miro credit budgets in PostgreSQL: the operations of `store.credits`.

One row per user (`credit_budgets`), locked `FOR UPDATE` by each operation, so that every
instance reserves from the same budget, one reservation at a time. The rules:

- **Limit not known yet** (no answer from Miro has carried its `X-RateLimit-*` headers): one
  call at a time probes it. `ReserveCredits` takes the probe for `PROBE_SECONDS` (reserved: 0.0)
  when nobody holds it, else answers a short wait (`PROBE_POLL_SECONDS`). A probe whose call
  never told the limit (its answer had no headers, or its instance died) lapses after
  `PROBE_SECONDS`, and the next caller probes.
- **Limit known**: reservations count against the current window. A reservation after the
  window has ended opens the next one, full (`limit` credits, ending `window_seconds` later).
  A call costing no more than what is left reserves it (one costing more than the whole
  limit needs a full window); otherwise the answer is the wait until the window ends.
- **What Miro says** (`ObserveCredits`) corrects the row. The limit is Miro's. An answer from
  a window later than ours (its reset more than a second after our window's end), or the first
  answer, starts that window with what Miro says is left. An answer from our window leaves
  the lesser of ours (which counts the calls still in flight) and Miro's (which counts calls
  reserved by a window that ended but charged in this one), and makes the window end no
  earlier than Miro's, so that we never open a window while Miro's still runs. An answer from
  an earlier window (one that arrives late) teaches only the limit.

What is not counted: calls reserved in one window and charged by Miro in the next are known
only from Miro's next answer, so at a window's turn a budget spent to the last credit may be
overrun by the calls in flight (the MiroClient's 429 handling then waits for the window).
"""

from __future__ import annotations

from typing import Any

import psycopg

from miro_bridge.records.credits import BudgetView
from miro_bridge.store.credits import CreditBudgets, ObserveCredits, ReserveCredits
from miro_bridge.store.postgres._registry import PG

Connection = psycopg.Connection[Any]

#: How long a call that probes an unknown limit holds the probe.
PROBE_SECONDS = 5.0
#: How long a caller waits before asking again while another call probes.
PROBE_POLL_SECONDS = 0.05
#: The least wait answered for a spent window.
MIN_WAIT_SECONDS = 0.05
#: An answer's reset this close to our window's end is of our window.
SAME_WINDOW_SECONDS = 1.0


def _locked(connection: Connection, user_id: str, now: float) -> tuple[Any, ...]:
    """The user's row, created if missing, locked until the transaction ends."""
    connection.execute(
        "INSERT INTO credit_budgets (user_id, credit_limit, remaining, window_ends, "
        "probe_until, updated_at) VALUES (%s, NULL, 0, 0, NULL, %s) "
        "ON CONFLICT (user_id) DO NOTHING",
        (user_id, now),
    )
    row = connection.execute(
        "SELECT credit_limit, remaining, window_ends, probe_until FROM credit_budgets "
        "WHERE user_id = %s FOR UPDATE",
        (user_id,),
    ).fetchone()
    assert row is not None  # inserted above, and rows are never deleted
    return tuple(row)


@PG.implements(ReserveCredits)
def reserve(connection: Connection, op: ReserveCredits) -> float:
    now = op.now
    limit, remaining, window_ends, probe_until = _locked(connection, op.user_id, now)
    if limit is None:
        if probe_until is not None and probe_until > now:
            return PROBE_POLL_SECONDS
        connection.execute(
            "UPDATE credit_budgets SET probe_until = %s, updated_at = %s WHERE user_id = %s",
            (now + PROBE_SECONDS, now, op.user_id),
        )
        return 0.0
    if now >= window_ends:
        remaining, window_ends = limit, now + op.window_seconds
    if remaining < min(op.cost, limit):
        connection.execute(
            "UPDATE credit_budgets SET remaining = %s, window_ends = %s, updated_at = %s "
            "WHERE user_id = %s",
            (remaining, window_ends, now, op.user_id),
        )
        return max(float(window_ends) - now, MIN_WAIT_SECONDS)
    connection.execute(
        "UPDATE credit_budgets SET remaining = %s, window_ends = %s, updated_at = %s "
        "WHERE user_id = %s",
        (remaining - op.cost, window_ends, now, op.user_id),
    )
    return 0.0


@PG.implements(ObserveCredits)
def observe(connection: Connection, op: ObserveCredits) -> None:
    known, remaining, window_ends, _ = _locked(connection, op.user_id, op.reset_at)
    if known is None or op.reset_at > window_ends + SAME_WINDOW_SECONDS:
        remaining, window_ends = op.remaining, op.reset_at
    elif op.reset_at >= window_ends - SAME_WINDOW_SECONDS:
        remaining, window_ends = min(remaining, op.remaining), max(window_ends, op.reset_at)
    connection.execute(
        "UPDATE credit_budgets SET credit_limit = %s, remaining = %s, window_ends = %s, "
        "probe_until = NULL WHERE user_id = %s",
        (op.limit, remaining, window_ends, op.user_id),
    )


@PG.implements(CreditBudgets)
def budgets(connection: Connection, op: CreditBudgets) -> dict[str, BudgetView]:
    return {
        user_id: BudgetView(limit, remaining, window_ends)
        for user_id, limit, remaining, window_ends in connection.execute(
            "SELECT user_id, credit_limit, remaining, window_ends FROM credit_budgets "
            "ORDER BY user_id"
        )
    }
