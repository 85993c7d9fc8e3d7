"""The MiroClient actor: every REST call to Miro, paced by each user's credit budget.

Miro gives each user (per app) a budget of credits per minute and charges each call by its
endpoint's level (`miro.endpoints`). The actor keeps a `Budget` per user, learnt from the
`X-RateLimit-*` headers of Miro's answers: a call reserves its cost before it is sent and waits
for the window to reset when the budget cannot pay. Until Miro has told a user's budget, only
one call for that user is in flight, so a small budget is not overspent by the first burst.
With a database several instances share, the budget lives there instead (`SharedBudget`,
`store.credits`): each call reserves its credits atomically in the database, so N instances
never spend N budgets.

Each call runs in its own task (the mailbox never waits on the network), so calls for
different users never wait on each other; a user has at most `PER_USER_CONCURRENCY` calls in
flight, so that one user cannot take every pooled connection.

Failures: a 429 waits for `Retry-After`, else `X-RateLimit-Reset`, else a backoff, and tries
again (a 429 means nothing was done). GET, PATCH and DELETE are retried on transport errors,
timeouts and 5xx, with capped exponential backoff and full jitter; a create is not (it may have
happened). A 401 asks the TokenStore for a new token once. Other errors become `MiroError`s.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, assert_never, cast

import attrs
import httpx
import structlog
import trio

from miro_bridge.actors._runtime import Actor, ActorRef, Envelope, Message
from miro_bridge.actors.store import Store
from miro_bridge.actors.token_store import ForceRefresh, GetAccessToken, TokenStore
from miro_bridge.config import Settings
from miro_bridge.errors import (
    Disconnected,
    RateLimited,
    Unavailable,
    UpstreamError,
    miro_error,
)
from miro_bridge.metrics import Metrics
from miro_bridge.miro.endpoints import Endpoint
from miro_bridge.records.credits import BudgetView
from miro_bridge.store import credits
from miro_bridge.tracing import URL_TEMPLATE, Tracing

log = structlog.get_logger(__name__)

PER_USER_CONCURRENCY = 16
MAX_ATTEMPTS = 5
MAX_RATE_LIMITED = 8
BACKOFF_BASE = 0.25
BACKOFF_CAP = 10.0
#: Miro's window; the budget refills this long after a window opens.
WINDOW_SECONDS = 60.0
#: An answer whose `X-RateLimit-Reset` is this close to our window's end is of our window.
SAME_WINDOW_SECONDS = 1.0

Sleep = Callable[[float], Awaitable[None]]


@attrs.frozen
class MiroReply:
    """A successful answer: status and decoded JSON body (None when empty)."""

    status: int
    body: Any


@attrs.frozen
class Call(Message[MiroReply, "MiroClient"]):
    """Call `endpoint` for `user_id`; `items` is the count for per-item endpoints."""

    user_id: str
    endpoint: Endpoint
    path: Mapping[str, str]
    params: Mapping[str, str] | None = None
    json: Any = None
    items: int = 1


@attrs.frozen
class GetBudgets(Message[dict[str, BudgetView], "MiroClient"]):
    """Every user's budget as known now."""


MiroClientMessage = Call | GetBudgets


@attrs.define
class Budget:
    """One user's credits, as Miro's headers tell them; see the module docstring."""

    limit: int | None = None
    remaining: int = 0
    reset_at: float = 0.0
    in_flight: int = 0
    probing: bool = False
    learned: trio.Event = attrs.field(factory=trio.Event)
    limiter: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(PER_USER_CONCURRENCY)
    )

    async def reserve(self, cost: int, clock: Callable[[], float], sleep: Sleep) -> None:
        """Wait until the budget can pay `cost`, then hold it for a call in flight."""
        while True:
            if self.limit is None:
                if not self.probing:
                    self.probing = True
                    break
                await self.learned.wait()
                continue
            now = clock()
            if now >= self.reset_at:
                # Miro opens a new window with the next charge; credits still in flight may
                # land in it, so they are not counted as free.
                self.remaining = self.limit - self.in_flight
                self.reset_at = now + WINDOW_SECONDS
            if self.remaining >= min(cost, self.limit):  # a call over the limit needs a full window
                self.remaining -= cost
                break
            await sleep(max(self.reset_at - now, 0.05))
        self.in_flight += cost

    async def settle(self, cost: int, headers: httpx.Headers | None) -> None:
        """The call is over; learn from Miro's `X-RateLimit-*` headers if it sent them."""
        self.in_flight -= cost
        self.probing = False
        numbers = _rate_limit_headers(headers) if headers is not None else None
        if numbers is None:
            if self.limit is None:  # nothing learnt: wake the waiters, one of them probes
                self.learned.set()
                self.learned = trio.Event()
            return
        limit, remaining, reset_at = numbers
        if self.limit is None or reset_at > self.reset_at + SAME_WINDOW_SECONDS:
            self.reset_at = reset_at  # Miro's window, not the one guessed when ours ran out
            self.remaining = remaining - self.in_flight
        elif reset_at < self.reset_at - SAME_WINDOW_SECONDS:
            # An answer from an earlier window: the call was in flight when ours opened, so
            # its credits were counted against ours, but it landed in the earlier one.
            self.remaining += cost
        else:
            self.reset_at = reset_at
            # Ours counts every reservation (Miro's counts only the calls that have landed,
            # less the credits in flight would count twice those landed but not settled).
            self.remaining = min(self.remaining, remaining)
        self.limit = limit
        self.learned.set()

    def view(self) -> BudgetView:
        """A snapshot for `GetBudgets`."""
        return BudgetView(self.limit, self.remaining, self.reset_at)


@attrs.define
class SharedBudget:
    """One user's credits when several instances share the database: reserved there
    (`store.credits`) before each call, so that they never spend more than one budget."""

    user_id: str
    store: ActorRef[Store]
    clock: Callable[[], float]
    limiter: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(PER_USER_CONCURRENCY)
    )

    async def reserve(self, cost: int, clock: Callable[[], float], sleep: Sleep) -> None:
        """Wait until the shared budget has reserved `cost` for this call."""
        while True:
            asked_at = clock()
            wait = await self.store.call(
                credits.ReserveCredits(self.user_id, cost, asked_at, WINDOW_SECONDS)
            )
            if wait <= 0:
                return
            # The wait counts from when it was asked, not from when the answer came.
            await sleep(max(asked_at + wait - clock(), 0.0))

    async def settle(self, cost: int, headers: httpx.Headers | None) -> None:
        """The call is over: its credits are no longer in flight; tell the shared budget
        what Miro's headers said, if they were there."""
        numbers = _rate_limit_headers(headers) if headers is not None else None
        limit, remaining, reset_at = numbers if numbers is not None else (None, None, None)
        settle = credits.SettleCredits(self.user_id, cost, self.clock(), limit, remaining, reset_at)
        # Not settled (the database or its actor is away), the credits count as in flight
        # until their hold lapses; the next answer tells Miro's numbers again.
        with contextlib.suppress(Unavailable):
            await self.store.call(settle)


def _rate_limit_headers(headers: httpx.Headers) -> tuple[int, int, float] | None:
    try:
        return (
            int(headers["X-RateLimit-Limit"]),
            int(headers["X-RateLimit-Remaining"]),
            float(headers["X-RateLimit-Reset"]),
        )
    except (KeyError, ValueError):
        return None


def _json_or_none(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return {"message": response.text[:200]}


class MiroClient(Actor):
    """Owns the HTTP client to Miro and every user's budget; see the module docstring."""

    name: ClassVar[str] = "miro_client"

    def __init__(
        self,
        settings: Settings,
        tokens: ActorRef[TokenStore],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = trio.sleep,
        tracing: Tracing,
        seed: int | None = None,
        store: ActorRef[Store] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store  # with a shared database: budgets live there
        self._tokens = tokens
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._tracing = tracing
        self._random = random.Random(seed)  # noqa: S311 -- jitter, not security
        self._budgets: dict[str, Budget | SharedBudget] = {}
        self._remaining: dict[str, int] = {}  # by user, as Miro's last answer said

    async def setup(self) -> None:
        """Open the pooled HTTP client."""
        self._http = httpx.AsyncClient(
            base_url=self._settings.api_base_url,
            timeout=self._settings.http_timeout_seconds,
            transport=self._tracing.transport(
                httpx.AsyncHTTPTransport(
                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=50)
                )
            ),
        )

    async def teardown(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def handle(self, envelope: Envelope) -> None:
        """Start each call in its own task; answer budget questions at once."""
        message = cast(MiroClientMessage, envelope.message)
        match message:
            case Call():
                self.reply_later(envelope, functools.partial(self._perform, message))
            case GetBudgets():
                self.reply_later(envelope, self._budget_views)
            case _:
                assert_never(message)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return self._random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))

    async def _perform(self, call: Call) -> MiroReply:
        budget = self._budgets.get(call.user_id)
        if budget is None:
            budget = self._budgets[call.user_id] = (
                Budget()
                if self._store is None
                else SharedBudget(call.user_id, self._store, self._clock)
            )
        endpoint = call.endpoint
        cost = endpoint.cost(call.items)
        token: str = await self._tokens.call(GetAccessToken(call.user_id), timeout=math.inf)
        refreshed = False
        failures = 0
        rate_limited = 0
        async with budget.limiter:
            while True:
                await budget.reserve(cost, self._clock, self._sleep)
                started = trio.current_time()
                try:
                    response = await self._http.request(
                        endpoint.method,
                        endpoint.path(**call.path),
                        params=call.params,
                        json=call.json,
                        headers={"Authorization": f"Bearer {token}"},
                        extensions={URL_TEMPLATE: endpoint.template},
                    )
                except httpx.TransportError as error:
                    await budget.settle(cost, None)
                    self._metrics.miro_requests.labels(endpoint.name, "error").inc()
                    failures += 1
                    if not endpoint.retry_safe:
                        raise UpstreamError(
                            f"Miro did not answer {endpoint.name} ({type(error).__name__}); "
                            "it may or may not have been carried out"
                        ) from error
                    if failures >= MAX_ATTEMPTS:
                        raise UpstreamError(
                            f"Miro did not answer {endpoint.name} after {failures} attempts"
                        ) from error
                    await self._sleep(self._backoff(failures))
                    continue
                await budget.settle(cost, response.headers)
                self._observe(call.user_id, endpoint, response, trio.current_time() - started)
                status = response.status_code
                if status == 429:
                    rate_limited += 1
                    wait = self._retry_after(response, rate_limited)
                    if rate_limited > MAX_RATE_LIMITED:
                        raise RateLimited("Miro keeps rate-limiting this user", wait)
                    log.info("miro.rate_limited", endpoint=endpoint.name, wait=round(wait, 2))
                    await self._sleep(wait)
                    continue
                if status == 401:
                    if refreshed:
                        raise Disconnected(call.user_id)
                    token = await self._tokens.call(
                        ForceRefresh(call.user_id, token), timeout=math.inf
                    )
                    refreshed = True
                    continue
                if status >= 500 and endpoint.retry_safe and failures + 1 < MAX_ATTEMPTS:
                    failures += 1
                    await self._sleep(self._backoff(failures))
                    continue
                if status >= 400:
                    raise miro_error(status, _json_or_none(response))
                return MiroReply(status, _json_or_none(response))

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        """How long a 429 asks us to wait: Retry-After, else the window reset, else backoff."""
        header = response.headers.get("Retry-After")
        if header is not None:
            try:
                return max(float(header), 0.0)
            except ValueError:
                pass
        numbers = _rate_limit_headers(response.headers)
        if numbers is not None:
            return max(numbers[2] - self._clock(), 0.05)
        return self._backoff(attempt)

    async def _budget_views(self) -> dict[str, BudgetView]:
        if self._store is not None:
            return await self._store.call(credits.CreditBudgets())
        return {
            user: budget.view()
            for user, budget in self._budgets.items()
            if isinstance(budget, Budget)
        }

    def _observe(
        self, user_id: str, endpoint: Endpoint, response: httpx.Response, elapsed: float
    ) -> None:
        self._metrics.miro_requests.labels(endpoint.name, str(response.status_code)).inc()
        self._metrics.miro_request_duration.labels(endpoint.name).observe(elapsed)
        if response.status_code == 429:
            self._metrics.miro_rate_limited.inc()
        numbers = _rate_limit_headers(response.headers)
        if numbers is not None:  # Miro's word on this user's credits; the gauge shows the lowest
            self._remaining[user_id] = numbers[1]
            self._metrics.miro_credits_remaining.set(max(min(self._remaining.values()), 0))
