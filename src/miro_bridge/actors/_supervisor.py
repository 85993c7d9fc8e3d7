"""The supervisor: starts actors in order and restarts the ones that crash (OTP one-for-one).

Each actor gets a fresh instance on every restart (its `setup` reloads state from the store),
behind the same `ActorRef`, so queued messages and callers' refs survive the crash. A crash
fails the callers whose messages the actor held, at once. More than `max_restarts` crashes
of one actor within `period` seconds raise `Escalation`, which stops the whole service: a
process manager restarting us is better than serving with an actor that cannot stay up. A
`StartupError` (the database cannot be reached, or is newer than the code) is not retried: it
stops the start at once, since another try would meet the same configuration.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
import structlog
import trio
from opentelemetry import trace

from miro_bridge.actors._runtime import Actor, ActorRef, ActorStatistics
from miro_bridge.errors import Escalation, StartupError

log = structlog.get_logger(__name__)
A = TypeVar("A", bound=Actor)


@attrs.define
class _Child:
    ref: ActorRef[Any]
    factory: Callable[[], Actor]
    finished: trio.Event = attrs.field(factory=trio.Event)


def _describe(error: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups, for a readable log line."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


class Supervisor:
    """Runs a fixed list of actors, started in the order they were added."""

    def __init__(
        self,
        *,
        max_restarts: int = 3,
        period: float = 5.0,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.max_restarts = max_restarts
        self.period = period
        self._tracer = tracer
        self._children: list[_Child] = []

    def add(
        self,
        name: str,
        factory: Callable[[], A],
        *,
        capacity: int = 256,
        call_timeout: float = 10.0,
    ) -> ActorRef[A]:
        """Register an actor; `factory` builds a fresh instance for each (re)start."""
        ref: ActorRef[A] = ActorRef(
            name, capacity=capacity, call_timeout=call_timeout, tracer=self._tracer
        )
        self._children.append(_Child(ref, factory))
        return ref

    @property
    def refs(self) -> Sequence[ActorRef[Any]]:
        """Every actor's ref, in start order."""
        return [child.ref for child in self._children]

    def statistics(self) -> list[ActorStatistics]:
        """Each actor's statistics, in start order."""
        return [ref.statistics() for ref in self.refs]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every actor, each after the one before is ready; return when all have stopped.

        Reports ready once every actor is. Raises `Escalation` if one crashes too often.
        """
        async with trio.open_nursery() as nursery:
            for child in self._children:
                await nursery.start(self._supervise, child)
            task_status.started()

    async def stop(self) -> None:
        """Close mailboxes in reverse start order, each actor draining before the next.

        Dependents stop before what they depend on. Bound it with a cancel scope: whatever is
        still running when that expires is cancelled by the caller.
        """
        for child in reversed(self._children):
            child.ref.close()
            await child.finished.wait()

    async def _supervise(self, child: _Child, *, task_status: trio.TaskStatus[None]) -> None:
        ref = child.ref
        crashes: collections.deque[float] = collections.deque()
        ready = False
        try:
            while True:
                try:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(child.factory().run, ref)
                        if not ready:
                            task_status.started()
                            ready = True
                except Exception as error:
                    cause = _describe(error)
                    if not ready and isinstance(cause, StartupError):
                        raise cause from None  # the configuration: another try meets it again
                    ref._abandon_held()
                    now = trio.current_time()
                    crashes.append(now)
                    while crashes[0] < now - self.period:
                        crashes.popleft()
                    if len(crashes) > self.max_restarts:
                        escalation = Escalation(ref.name, len(crashes), self.period)
                        log.critical("actor.escalated", actor=ref.name, error=str(escalation))
                        raise escalation from _describe(error)
                    ref._restarts += 1
                    log.error(
                        "actor.crashed",
                        actor=ref.name,
                        restarts=ref._restarts,
                        exc_info=_describe(error),
                    )
                else:
                    return
        finally:
            ref._stop_for_good()
            child.finished.set()
