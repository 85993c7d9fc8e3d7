"""Users' Miro credit budgets in PostgreSQL: the operations of `store.credits`.

One row per user (`credit_budgets`), locked `FOR UPDATE` by each operation, so that every
instance reserves from the same budget, one reservation at a time; and a hold per call in
flight (`credit_holds`: reserved, not settled yet). These are the in-memory `Budget`'s rules
(`actors.miro_client`), with the database as the memory:

- **Limit not known yet** (no answer from Miro has carried its `X-RateLimit-*` headers): one
  call at a time probes it. `ReserveCredits` takes the probe for `PROBE_SECONDS` (answer 0.0)
  when nobody holds it, else answers a short wait (`PROBE_POLL_SECONDS`). Settling the probe
  ends it, whether or not its answer told the limit (then the next caller probes); a probe
  never settled (its instance died) lapses after `PROBE_SECONDS`.
- **Limit known**: reservations count against the current window. A reservation after the
  window has ended opens the next one, with the limit less the credits still in flight
  (they may land in the new window at Miro), ending `window_seconds` later. A call that costs
  no more than what is left reserves it (one costing more than the whole limit needs a full
  window); otherwise the answer is the wait until the window ends.
- **Settling** (`SettleCredits`) releases the call's hold; if Miro's headers came with the
  answer, they correct the row. The limit is Miro's. An answer from a window later than ours
  (its reset more than `SAME_WINDOW_SECONDS` after our window's end), or the first answer,
  starts that window with what Miro says is left, less the credits still in flight. An
  answer of our window leaves the lesser of ours and Miro's: ours counts every reservation
  of the window, so it is the lower while nothing else spends the budget; Miro's is lower
  when something else did. (Miro's less the credits in flight counted twice the calls that
  had landed but were not settled yet: a drain's last call waited for a third window.)
  An answer from an earlier window (its reset more than `SAME_WINDOW_SECONDS`
  before our window's end) tells nothing of ours; but its call was in flight when ours
  opened, so its credits were counted against ours, and it landed in the earlier one: they
  are given back.
- A hold lapses `HOLD_SECONDS` after its reservation (a call whose instance died before
  settling it): credits are never held back for good.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from miro_bridge.records.credits import BudgetView
from miro_bridge.store.credits import CreditBudgets, ReserveCredits, SettleCredits
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
#: How long a reservation counts as in flight without being settled.
HOLD_SECONDS = 600.0


def _locked(connection: Connection, user_id: str, now: float) -> tuple[Any, ...]:
    """The user's row (limit, remaining, window end, probe), created if missing, locked until
    the transaction ends; holds that have lapsed are dropped."""
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
    connection.execute(
        "DELETE FROM credit_holds WHERE user_id = %s AND until <= %s", (user_id, now)
    )
    return tuple(row)


def _in_flight(connection: Connection, user_id: str) -> int:
    row = connection.execute(
        "SELECT coalesce(sum(cost), 0) FROM credit_holds WHERE user_id = %s", (user_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def _update(connection: Connection, user_id: str, **columns: object) -> None:
    """Set the named columns of the user's row."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in columns
    )
    connection.execute(
        sql.SQL("UPDATE credit_budgets SET {} WHERE user_id = %(user_id)s").format(assignments),
        {**columns, "user_id": user_id},
    )


@PG.implements(ReserveCredits)
def reserve(connection: Connection, op: ReserveCredits) -> float:
    now, user_id = op.now, op.user_id
    limit, remaining, window_ends, probe_until = _locked(connection, user_id, now)
    if limit is None:
        if probe_until is not None and probe_until > now:
            return PROBE_POLL_SECONDS
        _update(connection, user_id, probe_until=now + PROBE_SECONDS, updated_at=now)
    else:
        if now >= window_ends:
            remaining = limit - _in_flight(connection, user_id)
            window_ends = now + op.window_seconds
        if remaining < min(op.cost, limit):
            _update(connection, user_id, remaining=remaining, window_ends=window_ends)
            return max(float(window_ends) - now, MIN_WAIT_SECONDS)
        _update(
            connection,
            user_id,
            remaining=remaining - op.cost,
            window_ends=window_ends,
            updated_at=now,
        )
    connection.execute(
        "INSERT INTO credit_holds (user_id, cost, until) VALUES (%s, %s, %s)",
        (user_id, op.cost, now + HOLD_SECONDS),
    )
    return 0.0


@PG.implements(SettleCredits)
def settle(connection: Connection, op: SettleCredits) -> None:
    user_id = op.user_id
    known, remaining, window_ends, _ = _locked(connection, user_id, op.now)
    connection.execute(
        "DELETE FROM credit_holds WHERE ctid = (SELECT ctid FROM credit_holds "
        "WHERE user_id = %s AND cost = %s ORDER BY until LIMIT 1)",
        (user_id, op.cost),
    )
    if op.limit is None or op.remaining is None or op.reset_at is None:
        if known is None:  # the probe told nothing: the next caller probes
            _update(connection, user_id, probe_until=None, updated_at=op.now)
        return
    in_flight = _in_flight(connection, user_id)
    if known is None or op.reset_at > window_ends + SAME_WINDOW_SECONDS:
        remaining, window_ends = op.remaining - in_flight, op.reset_at
    elif op.reset_at < window_ends - SAME_WINDOW_SECONDS:
        remaining += op.cost
    else:
        remaining = min(remaining, op.remaining)
    _update(
        connection,
        user_id,
        credit_limit=op.limit,
        remaining=remaining,
        window_ends=window_ends,
        probe_until=None,
        updated_at=op.now,
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
