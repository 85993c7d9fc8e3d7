"""The actor runtime: mailboxes, request/reply, and what an actor is.

An actor is a task that owns some state and receives `Envelope`s from a bounded mailbox (a
trio memory channel). Callers hold an `ActorRef`, which outlives any one run of the actor: the
supervisor restarts a crashed actor behind the same ref, and messages already in the mailbox
wait for the new run.

`ActorRef.call` sends a message with the send end of a one-shot reply channel and waits for
the reply. The reply channel is what makes failure prompt: when the actor dies, every envelope
it had taken but not answered is closed, so their callers get `ActorCrashed` at once instead of
waiting for a timeout. A caller that gives up (cancelled, or timed out) closes its end, and the
actor's reply is dropped quietly.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar, cast

import attrs
import outcome
import structlog
import trio
from opentelemetry import context as otel_context
from opentelemetry import trace

from miro_bridge.context import request_id_var
from miro_bridge.errors import ActorCrashed, ActorStopped, ActorTimeout
from miro_bridge.tracing import REQUEST_ID

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
A = TypeVar("A", bound="Actor")


class Message(Generic[R_co, A]):
    """Base of every message: `R_co` is the type of its reply, `A` the actor that takes it.

    Subclasses are `@attrs.frozen` value classes. `ActorRef[A].call` takes only messages for
    an `A` and returns an `R`, so a type checker follows a call to its handler, and flags a
    message sent to the wrong actor.
    """


@attrs.define(eq=False)
class Envelope:
    """A message in transit: where to send the reply, and the sender's request and trace."""

    message: Message[Any, Any]
    reply_to: trio.MemorySendChannel[outcome.Outcome[Any]] | None
    request_id: str | None
    trace_context: otel_context.Context = attrs.field(factory=otel_context.get_current)
    _held: set[Envelope] | None = None

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Run the enclosed code as part of the sender's request: its id, its trace."""
        request_token = request_id_var.set(self.request_id)
        trace_token = otel_context.attach(self.trace_context)
        try:
            yield
        finally:
            otel_context.detach(trace_token)
            request_id_var.reset(request_token)

    def reply(self, value: object) -> bool:
        """Answer the caller; False if the caller has gone away (the answer is dropped)."""
        return self._send(outcome.Value(value))

    def fail(self, error: BaseException) -> bool:
        """Answer the caller with an exception, raised in the caller's task."""
        return self._send(outcome.Error(error))

    def _send(self, result: outcome.Outcome[Any]) -> bool:
        if self._held is not None:
            self._held.discard(self)
            self._held = None
        if self.reply_to is None:
            return False
        # The reply channel has room for exactly one answer, so this never blocks. If the
        # caller was cancelled its end is closed: drop the answer, never crash the actor.
        delivered = False
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            self.reply_to.send_nowait(result)
            delivered = True
        self.reply_to.close()
        return delivered

    def abandon(self) -> None:
        """Close the reply channel unanswered: the caller gets `ActorCrashed`."""
        self._held = None
        if self.reply_to is not None:
            self.reply_to.close()


@attrs.frozen
class ActorStatistics:
    """What an actor's ref knows about it; see `ActorRef.statistics`."""

    name: str
    running: bool
    mailbox_depth: int
    mailbox_capacity: int
    in_flight: int
    restarts: int


class Inbox:
    """The receiving side of a mailbox, as an actor sees it.

    Iterating yields envelopes; each one is "held" until it is replied to, so that the
    supervisor can fail its caller if the actor dies first.
    """

    def __init__(self, ref: ActorRef[Any]) -> None:
        self._ref = ref

    def __aiter__(self) -> AsyncIterator[Envelope]:
        return self

    async def __anext__(self) -> Envelope:
        try:
            envelope = await self._ref._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        return self._ref._hold(envelope)

    def receive_nowait(self) -> Envelope:
        """The next envelope if one is waiting; raises `trio.WouldBlock` otherwise."""
        try:
            envelope = self._ref._receive.receive_nowait()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.WouldBlock from None
        return self._ref._hold(envelope)


class ActorRef(Generic[A]):
    """The stable address of an actor of class `A`: send it messages, ask it questions."""

    def __init__(
        self,
        name: str,
        *,
        capacity: int = 256,
        call_timeout: float = 10.0,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.name = name
        self.call_timeout = call_timeout
        self._tracer = tracer or trace.NoOpTracer()
        self._capacity = capacity
        self._send, self._receive = trio.open_memory_channel[Envelope](capacity)
        self._held: set[Envelope] = set()
        self._running = False
        self._restarts = 0

    # The contract of `call` is a per-call timeout (ASYNC109 prefers cancel scopes): the
    # caller names how long the actor may take, and a timeout becomes a 503, not a hang.
    async def call(self, message: Message[R, A], *, timeout: float | None = None) -> R:  # noqa: ASYNC109
        """Send `message` and wait for the reply.

        Raises `ActorTimeout` when the mailbox stays full or the reply does not come within
        `timeout` seconds (default: the ref's `call_timeout`; `math.inf` waits forever),
        `ActorCrashed` at once if the actor dies holding the message, `ActorStopped` if it is
        not running, and whatever exception the actor answered with.

        Within a recorded trace the call is a span (`{actor} {message type}`), and what the
        actor does for the message belongs to it; outside one (loops started at boot) no trace
        is started.
        """
        if not trace.get_current_span().is_recording():
            return await self._call(message, timeout)
        name = f"{self.name} {type(message).__name__}"
        attributes = {"actor": self.name, REQUEST_ID: request_id_var.get() or ""}
        with self._tracer.start_as_current_span(name, attributes=attributes):
            return await self._call(message, timeout)

    async def _call(self, message: Message[R, A], timeout: float | None) -> R:  # noqa: ASYNC109
        reply_send, reply_receive = trio.open_memory_channel[outcome.Outcome[Any]](1)
        envelope = Envelope(message, reply_send, request_id_var.get())
        limit = self.call_timeout if timeout is None else timeout
        with reply_receive, trio.move_on_after(limit):
            try:
                await self._send.send(envelope)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise ActorStopped(self.name, "not running") from None
            try:
                result = await reply_receive.receive()
            except trio.EndOfChannel:
                raise ActorCrashed(self.name, "crashed while handling the message") from None
            return cast(R, result.unwrap())
        raise ActorTimeout(self.name, f"no reply within {limit:g}s")

    def cast(self, message: Message[Any, A]) -> None:
        """Send `message` without waiting for anything.

        Raises `ActorTimeout` if the mailbox is full right now (a cast never blocks, so the
        sender decides what to do) and `ActorStopped` if the actor is not running.
        """
        try:
            self._send.send_nowait(Envelope(message, None, request_id_var.get()))
        except trio.WouldBlock:
            raise ActorTimeout(self.name, "mailbox full") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorStopped(self.name, "not running") from None

    def statistics(self) -> ActorStatistics:
        """Mailbox depth, messages held, restarts, and whether the actor runs now."""
        return ActorStatistics(
            name=self.name,
            running=self._running,
            mailbox_depth=self._receive.statistics().current_buffer_used,
            mailbox_capacity=self._capacity,
            in_flight=len(self._held),
            restarts=self._restarts,
        )

    def close(self) -> None:
        """Stop accepting messages; the actor finishes what is queued, then returns."""
        self._send.close()

    def _hold(self, envelope: Envelope) -> Envelope:
        if envelope.reply_to is not None:
            envelope._held = self._held
            self._held.add(envelope)
        return envelope

    def _abandon_held(self) -> None:
        """Fail every caller whose message the dead actor had taken."""
        held, self._held = self._held, set()
        for envelope in held:
            envelope.abandon()

    def _stop_for_good(self) -> None:
        """Fail every queued and held caller, and refuse new messages."""
        self._running = False
        self._abandon_held()
        self._receive.close()
        while True:
            try:
                self._receive.receive_nowait().abandon()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break


class Actor:
    """Owns state and answers messages, one at a time, in the order they arrive.

    Subclasses implement `handle`. An actor that must wait on the network starts that work
    in `self.nursery` and answers the envelope from there, so its mailbox keeps moving; when
    the mailbox closes, that work is finished before the actor stops. Loops that run for the
    actor's whole life (periodic syncs) go in `self.background`, cancelled at the close. An
    actor with a special receive loop (the store's group commit) overrides `serve`.
    """

    name: ClassVar[str]
    nursery: trio.Nursery
    background: trio.Nursery

    async def setup(self) -> None:
        """Load state before the first message; runs again on every restart."""

    async def teardown(self) -> None:
        """Release resources; runs after the mailbox closes or the actor fails."""

    async def handle(self, envelope: Envelope) -> None:
        """Answer one envelope: `envelope.reply(value)` or `envelope.fail(error)`.

        An exception raised here, rather than passed to `fail`, crashes the actor.
        """
        raise NotImplementedError

    def reply_later(self, envelope: Envelope, work: Callable[[], Awaitable[object]]) -> None:
        """Answer `envelope` with the result of `work()`, run in a task of `self.nursery`.

        For work that waits on the network: the mailbox keeps moving meanwhile. The work runs
        as part of the sender's request; an exception it raises goes to the caller.
        """

        async def answer() -> None:
            with envelope.context():
                try:
                    result = await work()
                except Exception as error:
                    envelope.fail(error)
                else:
                    envelope.reply(result)

        self.nursery.start_soon(answer)

    async def serve(self, inbox: Inbox) -> None:
        """Receive until the mailbox is closed and empty."""
        async for envelope in inbox:
            with envelope.context():
                await self.handle(envelope)

    async def run(self, ref: ActorRef[Any], *, task_status: trio.TaskStatus[None]) -> None:
        """Set up, report ready, serve; called by the supervisor for each run."""
        log = structlog.get_logger(actor=self.name)
        try:
            await self.setup()
            async with trio.open_nursery() as nursery, trio.open_nursery() as background:
                self.nursery = nursery
                self.background = background
                ref._running = True
                task_status.started()
                await self.serve(Inbox(ref))
                log.debug("actor.mailbox_closed")
                # Work for callers (in `nursery`) finishes; loops (in `background`) stop.
                background.cancel_scope.cancel()
        finally:
            ref._running = False
            with trio.CancelScope(shield=True):
                await self.teardown()
