"""A small Miro credit budget is spent, never overspent: reads wait for the window instead."""

from __future__ import annotations

import httpx
import pytest
import trio

from miro_bridge.actors.miro_client import GetBudgets
from miro_bridge.sandbox import SandboxConfig
from tests.support import USER, Bridge, ManualClock, Miro, bearer, connect

pytestmark = pytest.mark.backends

H = {"X-User-Id": USER}
BUDGET = 1_000  # 20 level-1 calls a minute; a cold board read costs 50 + 100 + 50


@pytest.fixture
def sandbox_config(clock: ManualClock) -> SandboxConfig:
    return SandboxConfig(clock=clock, credits_per_minute=BUDGET)


async def test_steady_reads_never_hit_429(bridge: Bridge, miro: Miro, clock: ManualClock) -> None:
    token = await connect(bridge, miro)
    board_ids = [str(miro.sandbox.create_board(USER, f"b{n}")["id"]) for n in range(12)]
    started = clock.now
    statuses: list[int] = []

    async def read(board_id: str) -> None:
        for path in (f"/api/cache/{board_id}", f"/api/boards/{board_id}/tags"):
            statuses.append((await bridge.client.get(path, headers=H)).status_code)

    async with trio.open_nursery() as nursery:
        for board_id in board_ids:
            nursery.start_soon(read, board_id)
    assert statuses == [200] * 24
    answers = [r["status"] for r in miro.sandbox.requests() if r["path"].startswith("/v2/")]
    assert 429 not in answers
    spent = sum(r["credits"] or 0 for r in miro.sandbox.requests())
    assert spent == 12 * 200  # board + one items page + one tags page, per board
    # 2,400 credits on a budget of 1,000 a minute: the reads had to wait two windows.
    assert clock.now - started >= 120
    budgets = await bridge.actors.miro.call(GetBudgets())
    assert budgets[USER].limit == BUDGET
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as c:
        check = await c.get("/v2/boards")
        assert check.status_code == 200
