"""The service's actors, wired together under one supervisor."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import httpx

from miro_bridge.actors._runtime import ActorRef
from miro_bridge.actors._supervisor import Supervisor
from miro_bridge.actors.store import Store
from miro_bridge.actors.token_store import TokenStore
from miro_bridge.config import Settings
from miro_bridge.metrics import Metrics


@attrs.frozen
class ActorSystem:
    """The supervisor, and a ref to each actor the service runs."""

    supervisor: Supervisor
    metrics: Metrics
    store: ActorRef
    tokens: ActorRef


def build_actor_system(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ActorSystem:
    """Create (not start) every actor for `settings`; start with `supervisor.run`.

    `clock` (epoch seconds) and `transport` (for Miro calls) are for tests.
    """
    supervisor = Supervisor(max_restarts=3, period=5.0)
    metrics = Metrics()
    metrics.watch_actors(supervisor.statistics)
    store = supervisor.add("store", lambda: Store(settings.database_path), capacity=1024)
    tokens = supervisor.add(
        "token_store",
        lambda: TokenStore(settings, store, clock=clock, transport=transport),
        capacity=1024,
    )
    return ActorSystem(supervisor=supervisor, metrics=metrics, store=store, tokens=tokens)
