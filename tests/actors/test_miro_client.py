"""The MiroClient actor against the sandbox: retries, 429s, creates, isolation between users."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio
import trio.testing

from miro_bridge.actors.miro_client import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MAX_ATTEMPTS,
    Budget,
    Call,
    GetBudgets,
)
from miro_bridge.errors import MiroFailed, MiroNotFound, UpstreamError
from miro_bridge.miro import endpoints
from miro_bridge.sandbox import Faults
from tests.support import OTHER_USER, USER, Bridge, ManualClock, Miro, StartBridge, connect


def board_call(user: str, board_id: str) -> Call:
    return Call(user, endpoints.GET_BOARD, {"board_id": board_id})


def miro_calls(miro: Miro, method: str, suffix: str) -> int:
    return sum(
        1 for r in miro.sandbox.requests() if r["method"] == method and r["path"].endswith(suffix)
    )


def recorded(clock: ManualClock, waits: list[float]) -> Callable[[float], Awaitable[None]]:
    """The test clock's sleep, noting in `waits` each wait the bridge asks for."""

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await clock.sleep(seconds)

    return sleep


async def test_reads_are_retried_on_5xx_and_give_up(
    start_bridge: StartBridge, miro: Miro, clock: ManualClock
) -> None:
    waits: list[float] = []
    bridge = await start_bridge(sleep=recorded(clock, waits))
    await connect(bridge, miro, USER)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    miro.sandbox.set_faults(Faults(error_rate=1.0, error_statuses=(503,), seed=1))
    with pytest.raises(MiroFailed) as failure:
        await bridge.actors.miro.call(board_call(USER, board_id), timeout=math.inf)
    assert failure.value.miro_status == 503
    assert miro_calls(miro, "GET", board_id) == MAX_ATTEMPTS
    # Between attempts, full jitter: uniform in [0, min(cap, base * 2**failures)].
    ceilings = [min(BACKOFF_CAP, BACKOFF_BASE * 2**n) for n in range(1, MAX_ATTEMPTS)]
    assert len(waits) == len(ceilings)
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(waits, ceilings, strict=True)), waits

    miro.sandbox.set_faults(Faults(error_rate=0.5, seed=4))
    for _ in range(10):
        reply = await bridge.actors.miro.call(board_call(USER, board_id), timeout=math.inf)
        assert reply.body["id"] == board_id


async def test_creates_are_not_retried_blindly(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro, USER)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    bulk = Call(
        USER,
        endpoints.CREATE_ITEMS,
        {"board_id": board_id},
        json=[{"type": "shape", "data": {"shape": "circle"}}],
    )
    miro.sandbox.set_faults(Faults(error_rate=1.0, error_statuses=(500,), seed=1))
    with pytest.raises(MiroFailed):
        await bridge.actors.miro.call(bulk, timeout=math.inf)
    assert miro_calls(miro, "POST", "/items/bulk") == 1

    miro.sandbox.set_faults(Faults(drop_rate=1.0, seed=1))
    with pytest.raises(UpstreamError, match="may or may not"):
        await bridge.actors.miro.call(bulk, timeout=math.inf)
    assert miro_calls(miro, "POST", "/items/bulk") == 2

    with pytest.raises(UpstreamError, match="after 5 attempts"):
        await bridge.actors.miro.call(board_call(USER, board_id), timeout=math.inf)


@pytest.mark.backends
async def test_429s_are_waited_out(
    start_bridge: StartBridge, miro: Miro, clock: ManualClock
) -> None:
    # Miro's 429 names no Retry-After; its X-RateLimit-Reset says when the window ends.
    waits: list[tuple[float, float]] = []  # (slept, seconds until the reset Miro named)
    client_id = miro.sandbox.config.client_id

    async def sleep(seconds: float) -> None:
        # The header of the 429 just answered: the clock has not moved since.
        reset = miro.sandbox.ledger.peek(USER, client_id).headers()["X-RateLimit-Reset"]
        waits.append((seconds, int(reset) - clock.now))
        await clock.sleep(seconds)

    bridge = await start_bridge(sleep=sleep)
    await connect(bridge, miro, USER)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    miro.sandbox.set_faults(Faults(rate_limit_rate=0.5, seed=9))
    for _ in range(10):
        reply = await bridge.actors.miro.call(board_call(USER, board_id), timeout=math.inf)
        assert reply.status == 200
    limited = [r for r in miro.sandbox.requests() if r["status"] == 429]
    assert len(waits) == len(limited) > 0
    assert all(slept == until_reset > 0 for slept, until_reset in waits), waits
    text = (await bridge.client.get("/metrics")).text
    assert f"miro_api_rate_limited_total {float(len(limited))}" in text


async def test_miro_errors_become_project_errors(bridge: Bridge, miro: Miro) -> None:
    await connect(bridge, miro, USER)
    with pytest.raises(MiroNotFound) as missing:
        await bridge.actors.miro.call(board_call(USER, "uXjVNoSuchBoard="), timeout=math.inf)
    assert missing.value.status == 404
    assert missing.value.miro_body["type"] == "error"


@pytest.mark.backends
async def test_one_users_wait_does_not_hold_up_another(
    start_bridge: StartBridge, miro: Miro
) -> None:
    waiting = trio.Event()

    async def slow_sleep(seconds: float) -> None:
        waiting.set()
        await trio.sleep_forever()  # stands for a long wait on user A's window

    bridge = await start_bridge(sleep=slow_sleep)
    await connect(bridge, miro, USER)
    await connect(bridge, miro, OTHER_USER)
    board_a = str(miro.sandbox.create_board(USER)["id"])
    board_b = str(miro.sandbox.create_board(OTHER_USER)["id"])
    miro.sandbox.set_faults(Faults(error_rate=1.0, error_statuses=(503,), seed=1))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: bridge.actors.miro.call(board_call(USER, board_a), timeout=math.inf)
        )
        await waiting.wait()  # user A is now sleeping before a retry
        miro.sandbox.set_faults(Faults())
        with trio.fail_after(5):
            reply = await bridge.actors.miro.call(board_call(OTHER_USER, board_b))
        assert reply.body["id"] == board_b
        nursery.cancel_scope.cancel()
    budgets = await bridge.actors.miro.call(GetBudgets())
    assert budgets[OTHER_USER].limit == 100_000


async def test_a_call_of_the_last_window_settled_in_the_next_gives_its_credits_back() -> None:
    now = [1.0]
    budget = Budget()

    def headers(remaining: int, reset: int) -> httpx.Headers:
        return httpx.Headers(
            {
                "X-RateLimit-Limit": "1000",
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset),
            }
        )

    async def never(seconds: float) -> None:
        raise AssertionError(f"waited {seconds} s with credits left")

    await budget.reserve(100, lambda: now[0], never)
    await budget.settle(100, headers(900, 61))
    now[0] = 60.9
    await budget.reserve(100, lambda: now[0], never)  # in flight when the next window opens
    now[0] = 61.2
    await budget.reserve(100, lambda: now[0], never)
    assert budget.remaining == 1000 - 100 - 100
    await budget.settle(100, headers(800, 61))  # it landed in the window that reset at 61
    assert (budget.remaining, budget.reset_at) == (1000 - 100, 121.2)
    await budget.settle(100, headers(850, 121))  # ours corrects it down, never up
    assert (budget.remaining, budget.reset_at) == (850, 121)


async def test_calls_landed_but_not_settled_are_counted_once() -> None:
    budget = Budget()

    async def never(seconds: float) -> None:
        raise AssertionError(f"waited {seconds} s with credits left")

    def headers(remaining: int) -> httpx.Headers:
        return httpx.Headers(
            {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": str(remaining)}
            | {"X-RateLimit-Reset": "61"}
        )

    await budget.reserve(100, lambda: 1.0, never)
    await budget.settle(100, headers(900))
    for _ in range(3):
        await budget.reserve(100, lambda: 2.0, never)
    for _ in range(3):  # all three had landed when Miro answered the first
        await budget.settle(100, headers(600))
    assert budget.remaining == 600
    await budget.reserve(100, lambda: 3.0, never)
    await budget.settle(100, headers(400))  # something else spent 100
    assert budget.remaining == 400
