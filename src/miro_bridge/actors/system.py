"""The service's actors, wired together under one supervisor."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable

import attrs
import trio

from miro_bridge.actors._runtime import ActorRef
from miro_bridge.actors._supervisor import Supervisor
from miro_bridge.actors.board_cache import BoardCache, BoardViews
from miro_bridge.actors.client_logs import ClientLogs
from miro_bridge.actors.idempotency import Idempotency
from miro_bridge.actors.job_queue import JobQueue
from miro_bridge.actors.legacy_proxy import LegacyProxy
from miro_bridge.actors.miro_client import MiroClient
from miro_bridge.actors.store import Store
from miro_bridge.actors.token_store import TokenStore
from miro_bridge.config import Settings
from miro_bridge.metrics import Metrics
from miro_bridge.store import backend_for
from miro_bridge.tracing import Tracing


@attrs.frozen
class ActorSystem:
    """The supervisor, a ref to each actor the service runs, and what they publish.

    `clock` and `wait` are the ones the actors use (a test's own): a route that gives up
    waiting for work after a while waits with `wait`.

    `legacy` is None when no `MIRO_LEGACY_BASE_URL` is set (nothing is proxied then).
    """

    supervisor: Supervisor
    metrics: Metrics
    tracing: Tracing
    clock: Callable[[], float]
    wait: Callable[[float], Awaitable[None]]
    store: ActorRef[Store]
    tokens: ActorRef[TokenStore]
    miro: ActorRef[MiroClient]
    boards: ActorRef[BoardCache]
    idempotency: ActorRef[Idempotency]
    jobs: ActorRef[JobQueue]
    client_logs: ActorRef[ClientLogs]
    board_views: BoardViews
    legacy: ActorRef[LegacyProxy] | None


def build_actor_system(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = trio.sleep,
    wait: Callable[[float], Awaitable[None]] = trio.sleep,
) -> ActorSystem:
    """Create (not start) every actor for `settings`; start with `supervisor.run`.

    `clock` (epoch seconds), `sleep` (pauses the work itself takes: Miro's rate limits,
    retries) and `wait` (time that has to pass on its own: between periodic syncs, before a
    request gives up waiting for its work) are for tests. The owner of the system shuts
    `tracing` down after the supervisor stops.
    """
    tracing = Tracing(settings)
    supervisor = Supervisor(max_restarts=3, period=5.0, tracer=tracing.tracer)
    metrics = Metrics()
    metrics.watch_actors(supervisor.statistics)
    views = BoardViews()
    shared = settings.database_is_shared
    store = supervisor.add(
        "store",
        lambda: Store(functools.partial(backend_for, settings), metrics=metrics),
        capacity=1024,
    )
    tokens = supervisor.add(
        "token_store",
        lambda: TokenStore(settings, store, clock=clock, tracing=tracing, metrics=metrics),
        capacity=1024,
    )
    miro = supervisor.add(
        "miro_client",
        lambda: MiroClient(
            settings,
            tokens,
            metrics,
            clock=clock,
            sleep=sleep,
            tracing=tracing,
            store=store if shared else None,  # shared budgets live in the shared database
        ),
        capacity=1024,
    )
    board_cache = supervisor.add(
        "board_cache",
        lambda: BoardCache(
            settings, store, miro, views, metrics, clock=clock, wait=wait, follow_others=shared
        ),
        capacity=1024,
    )
    idempotency = supervisor.add(
        "idempotency",
        lambda: Idempotency(
            store, clock=clock, sleep=sleep, max_keys=settings.idempotency_max_keys
        ),
        capacity=1024,
    )
    job_queue = supervisor.add(
        "job_queue",
        lambda: JobQueue(
            store,
            board_cache,
            miro,
            metrics,
            tracing.tracer,
            clock=clock,
            sleep=sleep,
            release_orphans=not shared,  # one process: what the dead run held is free now
            lease_seconds=settings.job_lease_seconds,
        ),
        capacity=1024,
    )
    client_logs = supervisor.add(
        "client_logs", lambda: ClientLogs(settings, store, metrics, clock=clock), capacity=1024
    )
    legacy = None
    legacy_base_url = settings.legacy_base_url
    if legacy_base_url is not None:
        legacy = supervisor.add(
            "legacy_proxy",
            lambda: LegacyProxy(legacy_base_url, settings.http_timeout_seconds, metrics, tracing),
            capacity=1024,
            # The actor answers within the upstream timeout; the rest is the usual allowance
            # for a busy mailbox, so that its own 504 arrives before the caller gives up.
            call_timeout=settings.http_timeout_seconds + 10.0,
        )
    return ActorSystem(
        supervisor=supervisor,
        metrics=metrics,
        tracing=tracing,
        clock=clock,
        wait=wait,
        store=store,
        tokens=tokens,
        miro=miro,
        boards=board_cache,
        idempotency=idempotency,
        jobs=job_queue,
        client_logs=client_logs,
        board_views=views,
        legacy=legacy,
    )
