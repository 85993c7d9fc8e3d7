"""The JobQueue actor: durable jobs carried out against Miro, fairly across users.

`Enqueue` stores a job and its operations in one durable write (with the response of the
request's `Idempotency-Key`, if any); the reply (and the route's 202) comes after the commit.
A dispatcher loop claims work (`store.jobs.Claim`): for each user in turn, least recently
served first, the next unit of work, which is up to 20 creates for one board (one bulk call)
or a single update, delete or sync. At most `WORKERS` units run at once in this instance, and
at most `PER_USER` of them for one user over every instance sharing the database, so that one
user's huge or failing job never holds up another user's. An enqueue wakes the dispatcher
into a round only if its user may start another unit: a stream of enqueues from users who
run all they may costs it no queries.

A unit runs through the BoardCache actor (so the cache sees the writes) and the MiroClient
actor (which paces each user's calls by their credit budget). Each operation then ends:

- `done`, with the Miro item id (card tags are resolved by title, created when missing, and
  attached after the card; the card's id is recorded first, so a retry never creates it twice,
  and a retry attaches only the tags the card lacks);
- `failed` at once on a permanent error (Miro's 400, 403, 404, or a disconnected user), with
  a readable message;
- back to `pending` after a backoff (exponential, full jitter, capped; a 429's wait when Miro
  gave one) on anything that may pass, until `MAX_ATTEMPTS`, after which it is `failed` and
  filed in `dead_letters` with the history of its errors.

Exactly once at Miro: claiming creates opens their attempt, durably, before anything is
sent. A create that fails without saying whether Miro carried it out (a dropped connection,
a timeout, a 5xx, a killed process) keeps its attempt open; claimed again, it is reconciled
before anything is sent: the board is listed (a sync of the cache) and the items that user
created since the attempt began, not recorded for any other operation, are matched against
the creates' bodies (`miro.fingerprints`, as a multiset); a match is adopted (recorded,
counted in `job_reconciled_items_total`) and only the rest is created. Identical items the
user asked for are all created: each operation adopts at most one item, and each item is
adopted by one operation. Updates and deletes are idempotent already.

A job can answer a request itself (a keyed synchronous create): its operations keep what
Miro answered for each item (`ItemResponse`), and `WaitJob` replies once it has finished.

Leases: a unit is claimed under a unit id with a lease (`MIRO_JOB_LEASE_SECONDS`), renewed
four times in that time while it runs. A unit whose holder died (a killed process, another
instance) is claimed again once its lease expires; a late outcome from a holder whose lease
was taken over is dropped (`store.jobs.Settle` checks the unit). With SQLite, which one process
uses, the work a dead run held is released at once when the next run starts.

A database that cannot write (a full disk) pauses the dispatcher, which tries again with a
backoff, and holds the outcome of work done at Miro until it is recorded: never a crash loop,
never an outcome lost. Enqueueing then fails with `StoreUnavailable` (503) until it can write.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar, assert_never, cast

import attrs
import structlog
import trio
from opentelemetry import trace

from miro_bridge.actors._runtime import Actor, ActorRef, Envelope, Inbox, Message
from miro_bridge.actors.board_cache import (
    BoardCache,
    CreateItems,
    DeleteItem,
    ReadItem,
    SyncBoard,
    UpdateItem,
    error_body,
    miro_time,
)
from miro_bridge.actors.miro_client import Call, MiroClient
from miro_bridge.actors.store import Store
from miro_bridge.context import request_id_var
from miro_bridge.errors import (
    ActorError,
    BridgeError,
    Disconnected,
    MiroBadRequest,
    MiroConflict,
    MiroError,
    MiroForbidden,
    MiroNotFound,
    NotFound,
    RateLimited,
    StoreUnavailable,
    ValidationFailed,
)
from miro_bridge.metrics import Metrics
from miro_bridge.miro import endpoints
from miro_bridge.miro.fingerprints import fingerprint, pair
from miro_bridge.records.console import (
    AuditEntry,
    DeadLetter,
    JobDetail,
    JobFilter,
    JobSummary,
    QueueCounts,
)
from miro_bridge.records.idempotency import Completion, KeyClaim
from miro_bridge.records.jobs import (
    CREATES,
    ClaimedOperation,
    Decision,
    ItemResponse,
    JobView,
    NewJob,
    NewOperation,
    Origin,
    Target,
    WebhookEvent,
)
from miro_bridge.store import Operation, jobs
from miro_bridge.store import console as console_store
from miro_bridge.tracing import REQUEST_ID, current_traceparent, span_context_of

log = structlog.get_logger(__name__)
T = TypeVar("T")

WORKERS = 8
PER_USER = 2
MAX_ATTEMPTS = 8
#: How long a claim holds without being renewed (`MIRO_JOB_LEASE_SECONDS`); renewed four
#: times in that time.
LEASE_SECONDS = 60.0
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
#: How long an update or delete naming a node waits, untried, for the node's create to end.
DEFER_SECONDS = 0.5
#: How far Miro's clock (an item's `createdAt`) may lag ours when reconciling an attempt.
CLOCK_SKEW_SECONDS = 10.0
#: How often an idle dispatcher asks a shared database for work (other instances enqueue).
SHARED_POLL_SECONDS = 1.0
#: How often a waiter for a job asks the database again (the job may run in another instance).
WAIT_POLL_SECONDS = 1.0
#: While the database cannot write, the dispatcher and the recording of outcomes wait.
STORE_BACKOFF_BASE = 0.5
STORE_BACKOFF_CAP = 30.0

Sleep = Callable[[float], Awaitable[None]]
_PERMANENT = (
    MiroBadRequest,
    MiroForbidden,
    MiroNotFound,
    MiroConflict,
    Disconnected,
    ValidationFailed,
)


@attrs.frozen
class Enqueue(Message[None, "JobQueue"]):
    """Store a job of `operations` for the user under `job_id` (`records.jobs.new_job_id`);
    reply once it is on disk, with `completes` (the request's key response) if given, or
    naming the job as the work of the claimed key `binds` (`store.jobs.Enqueue`)."""

    job_id: str
    user_id: str
    kind: str
    operations: tuple[NewOperation, ...]
    completes: Completion | None = None
    binds: KeyClaim | None = None


@attrs.frozen
class GetJob(Message[JobView, "JobQueue"]):
    """The job, if it is the user's; `NotFound` otherwise."""

    user_id: str
    job_id: str


@attrs.frozen
class WaitJob(Message[JobView, "JobQueue"]):
    """The job once it has finished (done, failed or partial), if it is the user's;
    `NotFound` otherwise. It may finish in another instance sharing the database."""

    user_id: str
    job_id: str


@attrs.frozen
class QueueLength(Message[int, "JobQueue"]):
    """Operations not finished yet, over all users."""


@attrs.frozen
class AcceptWebhookEvents(Message[list[str], "JobQueue"]):
    """Record webhook events and enqueue board syncs for them; their outcomes.

    At most `per_board_per_minute` events of a board are taken in a minute
    (`store.jobs.AcceptWebhookEvents`).
    """

    events: tuple[WebhookEvent, ...]
    per_board_per_minute: int


# What the operator's console asks and does (http/console.py) -----------------------------


@attrs.frozen
class ListJobs(Message[list[JobSummary], "JobQueue"]):
    """The newest jobs of any user that `filter` lets through."""

    filter: JobFilter


@attrs.frozen
class GetJobDetail(Message[JobDetail, "JobQueue"]):
    """A job of any user with every operation's attempts and errors; `NotFound` otherwise."""

    job_id: str


@attrs.frozen
class ListDeadLetters(Message[list[DeadLetter], "JobQueue"]):
    """The newest dead letters with their error history."""

    limit: int = 100


@attrs.frozen
class CountQueue(Message[QueueCounts, "JobQueue"]):
    """Operations by status, dead letters, and jobs enqueued per minute in the last hour."""


@attrs.frozen
class RetryDeadLetter(Message[None, "JobQueue"]):
    """Put a dead letter's operation back to pending (its attempts at zero, an open create
    attempt kept: it is reconciled before it is sent again), recorded in the audit log under
    `operator`; `NotFound` when it is not a dead letter (any more)."""

    job_id: str
    seq: int
    operator: str
    address: str | None


@attrs.frozen
class DiscardDeadLetter(Message[None, "JobQueue"]):
    """Drop a dead letter (its operation stays failed), recorded in the audit log;
    `NotFound` when it is not a dead letter (any more)."""

    job_id: str
    seq: int
    operator: str
    address: str | None


@attrs.frozen
class ListAudit(Message[list[AuditEntry], "JobQueue"]):
    """What operators did to dead letters, newest first."""

    limit: int = 50


ConsoleMessage = (
    ListJobs
    | GetJobDetail
    | ListDeadLetters
    | CountQueue
    | RetryDeadLetter
    | DiscardDeadLetter
    | ListAudit
)
JobQueueMessage = Enqueue | GetJob | WaitJob | QueueLength | AcceptWebhookEvents | ConsoleMessage


@attrs.frozen
class _Outcome:
    """What an attempt says of one operation, before its attempts are counted.

    `in_doubt`: a create that failed may have been carried out; `response`: what Miro
    answered for the item (kept for a job that answers a request).
    """

    action: str  # "done", "retry", "fail", "defer" (put back untried)
    item_id: str | None = None
    error: str | None = None
    delay: float | None = None
    in_doubt: bool = False
    response: ItemResponse | None = None


def origin_of(envelope: Envelope) -> Origin:
    """Where a job enqueued now comes from: the sender's request and the current span."""
    return Origin(envelope.request_id, current_traceparent())


def _describe(error: BaseException) -> str:
    if isinstance(error, MiroError):
        return error.message
    if isinstance(error, BridgeError):
        return f"{error.code}: {error.message}"
    return f"{type(error).__name__}: {error}"


def _classify(error: Exception, *, creating: bool = False) -> _Outcome:
    """A permanent failure, or one worth another attempt; `creating`: whether a create may
    have been carried out all the same (anything but Miro's refusal or rate limit).

    An error that is not the service's own (a bug) is logged with its traceback.
    """
    if not isinstance(error, BridgeError | ActorError):
        log.error("job.unexpected_error", exc_info=error)
    if isinstance(error, BridgeError):
        response = ItemResponse(*error_body(error))
    else:
        response = ItemResponse(500, {"type": "error", "status": 500, "message": str(error)})
    if isinstance(error, _PERMANENT):
        return _Outcome("fail", error=_describe(error), response=response)
    if isinstance(error, RateLimited):
        return _Outcome("retry", error=_describe(error), delay=error.retry_after, response=response)
    return _Outcome("retry", error=_describe(error), in_doubt=creating, response=response)


def _outcome_for_status(status: int, body: Mapping[str, Any]) -> _Outcome:
    message = f"Miro answered {status}: {body.get('message') or 'no message'}"
    response = ItemResponse(status, body)
    if status in (400, 403, 404, 409):
        return _Outcome("fail", error=message, response=response)
    return _Outcome("retry", error=message, response=response)


def _created_by(item: Mapping[str, Any], user_id: str, since: float) -> bool:
    """Whether Miro says `user_id` created `item` at `since` or later."""
    creator = item.get("createdBy")
    if not isinstance(creator, Mapping) or str(creator.get("id")) != user_id:
        return False
    created = miro_time(str(item.get("createdAt", "")))
    return created is not None and created.timestamp() >= since


class JobQueue(Actor):
    """Owns the dispatcher and its workers; see the module docstring."""

    name: ClassVar[str] = "job_queue"

    def __init__(
        self,
        store: ActorRef[Store],
        boards: ActorRef[BoardCache],
        miro: ActorRef[MiroClient],
        metrics: Metrics,
        tracer: trace.Tracer,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = trio.sleep,
        seed: int | None = None,
        release_orphans: bool = True,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self._store = store
        self._boards = boards
        self._miro = miro
        self._metrics = metrics
        self._tracer = tracer
        self._clock = clock
        self._sleep = sleep
        self._random = random.Random(seed)  # noqa: S311 -- jitter, not security
        self._release_orphans = release_orphans
        self._lease = lease_seconds
        self._wake = trio.Event()
        # Why the dispatcher was woken since its last round: users who enqueued, or anything
        # else (a unit ended, webhook syncs, a start). Enqueues alone, by users who already run
        # all the units they may, make nothing claimable: no round, no queries (`_wait_for_work`).
        self._woken_by: set[str] = set()
        self._woken_otherwise = False
        self._running_per_user: dict[str, int] = {}
        self._units: set[str] = set()  # claimed here, not settled yet: their leases are renewed
        self._served = itertools.count()
        self._last_served: dict[str, int] = {}
        self._started = False  # orphans released, depth counted
        self._finished: dict[str, trio.Event] = {}  # jobs waited for, set when they finish

    async def setup(self) -> None:
        """Release work a dead run had taken (or let the dispatcher, if the disk is full)."""
        with contextlib.suppress(StoreUnavailable):
            await self._start()

    async def _start(self) -> None:
        if self._release_orphans:
            released = await self._store.call(jobs.ReleaseOrphans())
            if released:
                log.warning("jobs.released_orphans", operations=released)
        self._metrics.job_queue_depth.set(await self._store.call(jobs.QueueLength()))
        self._started = True

    async def serve(self, inbox: Inbox) -> None:
        """The dispatcher and the lease heartbeat run beside the mailbox until it closes."""
        self.background.start_soon(self._dispatch)
        self.background.start_soon(self._heartbeat)
        await super().serve(inbox)

    async def handle(self, envelope: Envelope) -> None:
        """Enqueue, look up a job, count the queue, accept webhook events."""
        message = cast(JobQueueMessage, envelope.message)
        # Each waits on the database in a task of its own: one slow commit (a database that
        # does not answer) holds up its own caller, never the mailbox.
        match message:
            case Enqueue():
                self.reply_later(
                    envelope, functools.partial(self._enqueue, message, origin_of(envelope))
                )
            case GetJob(user_id=user_id, job_id=job_id):
                self.reply_later(envelope, functools.partial(self._get_job, user_id, job_id))
            case WaitJob():
                self.reply_later(envelope, functools.partial(self._wait_job, message))
            case AcceptWebhookEvents():
                self.reply_later(
                    envelope, functools.partial(self._accept_events, message, origin_of(envelope))
                )
            case QueueLength():
                self.reply_later(envelope, functools.partial(self._store.call, jobs.QueueLength()))
            case (
                ListJobs()
                | GetJobDetail()
                | ListDeadLetters()
                | CountQueue()
                | RetryDeadLetter()
                | DiscardDeadLetter()
                | ListAudit()
            ):
                self.reply_later(envelope, functools.partial(self._console, message))
            case _:
                assert_never(message)

    async def _get_job(self, user_id: str, job_id: str) -> JobView:
        view = await self._store.call(jobs.GetJob(job_id, user_id))
        if view is None:
            raise NotFound(f"no job {job_id}")
        return view

    async def _enqueue(self, message: Enqueue, origin: Origin) -> None:
        job = NewJob(message.job_id, message.user_id, message.kind, message.operations, origin)
        await self._store.call(
            jobs.Enqueue(job, self._clock(), message.completes, binds=message.binds)
        )
        self._metrics.jobs_enqueued.labels(job.kind).inc()
        self._metrics.job_queue_depth.inc(len(job.operations))
        log.info("job.enqueued", job_id=job.id, kind=job.kind, ops=len(job.operations))
        self._woken_by.add(job.user_id)
        self._wake.set()

    async def _wait_job(self, message: WaitJob) -> JobView:
        """Until the job has finished here, or is seen finished in the database."""
        try:
            while True:
                finished = self._finished.setdefault(message.job_id, trio.Event())
                view = await self._store.call(jobs.GetJob(message.job_id, message.user_id))
                if view is None:
                    raise NotFound(f"no job {message.job_id}")
                if view.status in ("done", "failed", "partial"):
                    return view
                with trio.move_on_after(WAIT_POLL_SECONDS):
                    await finished.wait()
        finally:
            self._finished.pop(message.job_id, None)

    async def _accept_events(self, message: AcceptWebhookEvents, origin: Origin) -> list[str]:
        job_ids = tuple(secrets.token_hex(12) for _ in message.events)
        outcomes: list[str] = await self._store.call(
            jobs.AcceptWebhookEvents(
                message.events, job_ids, origin, self._clock(), message.per_board_per_minute
            )
        )
        enqueued = outcomes.count("enqueued")
        if enqueued:
            self._metrics.jobs_enqueued.labels("webhook").inc(enqueued)
            self._metrics.job_queue_depth.inc(enqueued)
            self._wake_up()
        return outcomes

    # Dispatching --------------------------------------------------------------------------

    def _store_backoff(self, failures: int) -> float:
        return float(min(STORE_BACKOFF_CAP, STORE_BACKOFF_BASE * 2.0 ** min(failures - 1, 16)))

    async def _dispatch(self) -> None:
        """Claim and start work until the mailbox closes; a failing database only pauses it."""
        failures = 0
        while True:
            try:
                if not self._started:
                    await self._start()
                self._wake = trio.Event()
                self._woken_by.clear()
                self._woken_otherwise = False
                while await self._claim_round():
                    pass
                await self._wait_for_work()
                failures = 0
            except StoreUnavailable as error:
                failures += 1
                if failures == 1:
                    log.warning("jobs.paused", reason=error.message)
                await self._sleep(self._store_backoff(failures))

    def _wake_up(self) -> None:
        """Wake the dispatcher for something else than an enqueue: it runs a round."""
        self._woken_otherwise = True
        self._wake.set()

    def _worth_a_round(self) -> bool:
        """Whether what woke the dispatcher may have made work claimable here."""
        if self._woken_otherwise:
            return True
        if sum(self._running_per_user.values()) >= WORKERS:
            return False
        return any(self._running_per_user.get(user, 0) < PER_USER for user in self._woken_by)

    async def _claim_round(self) -> bool:
        """Give each ready user, least recently served first, one unit; False if none."""
        if sum(self._running_per_user.values()) >= WORKERS:
            return False
        now = self._clock()
        users = await self._store.call(jobs.ReadyUsers(now))
        users = [u for u in users if self._running_per_user.get(u, 0) < PER_USER]
        users.sort(key=lambda user: self._last_served.get(user, -1))
        progressed = False
        for user in users:
            if sum(self._running_per_user.values()) >= WORKERS:
                break
            unit = secrets.token_hex(8)
            held = tuple(self._units)
            batch = await self._store.call(
                jobs.Claim(user, unit, now, now + self._lease, PER_USER, held)
            )
            if not batch:
                continue
            progressed = True
            self._units.add(unit)
            self._last_served[user] = next(self._served)
            self._running_per_user[user] = self._running_per_user.get(user, 0) + 1
            self.nursery.start_soon(self._work, batch)
        return progressed

    async def _wait_for_work(self) -> None:
        """Until something is enqueued, a worker finishes, or a retry or a lease falls due;
        with a shared database, at most `SHARED_POLL_SECONDS` (real time): work enqueued,
        or left by a dead holder, in another instance wakes nothing here."""
        due = await self._store.call(jobs.NextDue())
        async with trio.open_nursery() as nursery:
            if not self._release_orphans:  # shared

                async def poll() -> None:
                    await trio.sleep(SHARED_POLL_SECONDS)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(poll)
            # Work available now but not claimed waits for its user's running units to end
            # (a wake); only work that is not yet due needs a timer.
            if due is not None and due > self._clock():

                async def timer() -> None:
                    await self._sleep(max(due - self._clock(), 0.0))
                    nursery.cancel_scope.cancel()

                nursery.start_soon(timer)
            await self._wake.wait()
            # Work enqueued by users who run all the units they may waits for those to end
            # (which wakes this again): under a stream of enqueues, no queries for each.
            while not self._worth_a_round():
                self._wake = trio.Event()
                self._woken_by.clear()
                await self._wake.wait()
            nursery.cancel_scope.cancel()

    async def _heartbeat(self) -> None:
        """Renew the leases of the units running here (real time: a lease is real time)."""
        while True:
            await trio.sleep(self._lease / 4)
            if self._units:
                lease_until = self._clock() + self._lease
                with contextlib.suppress(StoreUnavailable):  # the next beat tries again
                    await self._store.call(jobs.RenewLeases(tuple(self._units), lease_until))

    # Working ------------------------------------------------------------------------------

    async def _work(self, batch: list[ClaimedOperation]) -> None:
        """Carry out one unit as part of the request that enqueued it: its id, a linked span."""
        first = batch[0]
        token = request_id_var.set(first.origin.request_id)
        # A unit of creates may hold operations of several jobs: link each enqueuing span.
        enqueued_by = [span_context_of(t) for t in {op.origin.traceparent for op in batch}]
        job_span = self._tracer.start_as_current_span(
            f"job {first.job_kind}",
            links=[trace.Link(context) for context in enqueued_by if context is not None],
            attributes={
                REQUEST_ID: first.origin.request_id or "",
                "job.id": first.job_id,
                "job.kind": first.job_kind,
                "job.operations": len(batch),
                "job.attempt": first.attempts,
            },
        )
        try:
            with job_span as span, structlog.contextvars.bound_contextvars(job_id=first.job_id):
                started = trio.current_time()
                outcomes = await self._attempt(batch)
                span.set_attribute("job.outcomes", [outcome.action for outcome in outcomes])
                tried = sum(outcome.action != "defer" for outcome in outcomes)
                self._metrics.job_attempts.labels(first.job_kind).inc(tried)
                await self._settle(batch, outcomes)
                log.debug(
                    "job.unit_done",
                    ops=len(batch),
                    seconds=round(trio.current_time() - started, 3),
                )
        finally:
            request_id_var.reset(token)
            self._units.discard(first.unit)
            self._running_per_user[first.user_id] -= 1
            self._wake_up()

    async def _attempt(self, batch: list[ClaimedOperation]) -> list[_Outcome]:
        """Carry out a unit; one outcome per operation, in order. Never raises for Miro."""
        first = batch[0]
        try:
            if first.kind in CREATES:
                return await self._create(batch)
            return [await self._single(first)]
        except Exception as error:
            return [_classify(error, creating=first.kind in CREATES)] * len(batch)

    async def _target(self, op: ClaimedOperation) -> Target:
        """The item an update or delete acts on: its `item_id`, or what its `target` names."""
        if "target" not in op.payload:
            return Target(op.payload["item_id"])
        return await self._store.call(
            jobs.ResolveTarget(op.user_id, op.board_id, op.payload["target"])
        )

    async def _single(self, op: ClaimedOperation) -> _Outcome:
        payload = op.payload
        try:
            if op.kind in ("update_shape", "update_card", "delete_item"):
                target = await self._target(op)
                if target.waiting:  # the node it names is still being drawn
                    return _Outcome("defer", delay=DEFER_SECONDS)
            if op.kind in ("update_shape", "update_card"):
                endpoint = (
                    endpoints.UPDATE_SHAPE if op.kind == "update_shape" else endpoints.UPDATE_CARD
                )
                item = await self._boards.call(
                    UpdateItem(op.user_id, op.board_id, target.item_id, endpoint, payload["body"]),
                    timeout=math.inf,
                )
                return _Outcome("done", item_id=str(item["id"]))
            if op.kind == "delete_item":
                await self._boards.call(
                    DeleteItem(op.user_id, op.board_id, target.item_id), timeout=math.inf
                )
                return _Outcome("done", item_id=target.item_id)
            if op.kind == "sync_board":
                await self._boards.call(SyncBoard(op.user_id, op.board_id), timeout=math.inf)
                return _Outcome("done")
        except Exception as error:
            return _classify(error)
        return _Outcome("fail", error=f"unknown operation kind {op.kind!r}")

    async def _create(self, batch: list[ClaimedOperation]) -> list[_Outcome]:
        """Create what was not created yet in one bulk call, then attach card tags.

        Creates whose earlier attempt is in doubt are looked for on the board first
        (`_reconcile`); those found are adopted, not created again.
        """
        first = batch[0]
        item_ids = {op.rowid: op.result for op in batch if op.result is not None}
        bodies: dict[int, Mapping[str, Any]] = {}
        outcomes: dict[int, _Outcome] = {}
        in_doubt = [op for op in batch if op.result is None and op.attempt is not None]
        if in_doubt:
            try:
                bodies, contested = await self._reconcile(in_doubt)
            except Exception as error:  # still in doubt: the next attempt reconciles again
                outcome = _classify(error)
                doubt = attrs.evolve(outcome, in_doubt=True)
                return [doubt if op.attempt is not None else outcome for op in batch]
            # Its item went to another operation meanwhile: still in doubt, never created now.
            again = _Outcome("retry", error="its item was adopted elsewhere", in_doubt=True)
            outcomes |= dict.fromkeys(contested, again)
        resumed = set(item_ids) | set(bodies)  # created by an earlier attempt
        item_ids |= {rowid: str(body["id"]) for rowid, body in bodies.items()}
        to_create = [op for op in batch if op.rowid not in item_ids and op.rowid not in outcomes]
        if to_create:
            try:
                results = await self._boards.call(
                    CreateItems(
                        first.user_id, first.board_id, tuple(op.payload["item"] for op in to_create)
                    ),
                    timeout=math.inf,
                )
            except Exception as error:
                outcome = _classify(error, creating=True)
                outcomes |= {op.rowid: outcome for op in to_create}
            else:
                for op, result in zip(to_create, results, strict=True):
                    if result.status == 201:
                        item_ids[op.rowid] = str(result.body["id"])
                        bodies[op.rowid] = result.body
                    else:
                        outcomes[op.rowid] = _outcome_for_status(result.status, result.body)
        tagged = [op for op in batch if op.rowid in item_ids and op.payload.get("tags")]
        if tagged:
            fresh = tuple((op, item_ids[op.rowid]) for op in tagged if op.rowid not in resumed)
            if fresh:
                await self._write(jobs.RecordResults(fresh, self._clock()))
            await self._tag(tagged, item_ids, resumed, outcomes)
        for op in batch:
            if op.rowid not in outcomes:
                response = None
                if op.payload.get("respond"):
                    body = bodies.get(op.rowid)
                    if body is None:  # created by an earlier attempt, whose answer is gone
                        body = await self._boards.call(
                            ReadItem(op.user_id, op.board_id, item_ids[op.rowid]),
                            timeout=math.inf,
                        )
                    response = ItemResponse(201, body)
                outcomes[op.rowid] = _Outcome("done", item_id=item_ids[op.rowid], response=response)
        return [outcomes[op.rowid] for op in batch]

    async def _reconcile(
        self, in_doubt: list[ClaimedOperation]
    ) -> tuple[dict[int, Mapping[str, Any]], set[int]]:
        """Find the creates of an attempt in doubt on the board; adopt them. Their items, and
        the operations whose match another operation recorded first (contested).

        The board is synced (the cache sees it all); the items the user created since the
        earliest attempt began (less `CLOCK_SKEW_SECONDS`) and that no other operation
        recorded are matched against the creates' bodies; matches are recorded as created.
        """
        first = in_doubt[0]
        since = min(op.attempt or 0.0 for op in in_doubt) - CLOCK_SKEW_SECONDS
        snapshot = await self._boards.call(
            SyncBoard(first.user_id, first.board_id), timeout=math.inf
        )
        found = sorted(
            (item.body for item in snapshot.items.values()),
            key=lambda body: (str(body.get("createdAt")), str(body["id"])),
        )
        found = [body for body in found if _created_by(body, first.user_id, since)]
        taken = await self._store.call(
            jobs.RecordedItems(first.board_id, tuple(str(body["id"]) for body in found))
        )
        found = [body for body in found if str(body["id"]) not in taken]
        matched = pair([fingerprint(op.payload["item"]) for op in in_doubt], found)
        adopted = tuple(
            (op, found[index])
            for op, index in zip(in_doubt, matched, strict=True)
            if index is not None
        )
        if not adopted:
            return {}, set()
        results = tuple((op, str(body["id"])) for op, body in adopted)
        recorded: list[int] = await self._write(jobs.RecordResults(results, self._clock()))
        self._metrics.job_reconciled_items.labels(first.job_kind).inc(len(recorded))
        log.info(
            "job.reconciled", board_id=first.board_id, in_doubt=len(in_doubt), adopted=len(recorded)
        )
        found_here = {op.rowid: body for op, body in adopted if op.rowid in recorded}
        return found_here, {op.rowid for op, _ in adopted} - set(recorded)

    async def _tag(
        self,
        tagged: list[ClaimedOperation],
        item_ids: Mapping[int, str],
        resumed: set[int],
        outcomes: dict[int, _Outcome],
    ) -> None:
        """Attach each card's tags; a card created earlier gets only those it lacks."""
        first = tagged[0]
        try:
            tag_ids = await self._tag_ids(first.user_id, first.board_id, tagged)
        except Exception as error:
            outcome = _classify(error)
            outcomes |= {op.rowid: outcome for op in tagged}
            return
        for op in tagged:
            path = {"board_id": op.board_id, "item_id": item_ids[op.rowid]}
            try:
                attached: set[str] = set()
                if op.rowid in resumed:
                    reply = await self._miro.call(
                        Call(op.user_id, endpoints.ITEM_TAGS, path), timeout=math.inf
                    )
                    attached = {str(tag["id"]) for tag in reply.body.get("tags") or []}
                for title in op.payload["tags"]:
                    if tag_ids[title] not in attached:
                        await self._miro.call(
                            Call(
                                op.user_id,
                                endpoints.ATTACH_TAG,
                                path,
                                params={"tag_id": tag_ids[title]},
                            ),
                            timeout=math.inf,
                        )
            except Exception as error:
                outcomes[op.rowid] = _classify(error)

    async def _tag_ids(
        self, user_id: str, board_id: str, ops: Sequence[ClaimedOperation]
    ) -> dict[str, str]:
        """The board's tag id for every title the operations name; missing tags are created."""
        path = {"board_id": board_id}
        known: dict[str, str] = {}
        offset = 0
        while True:
            page = await self._miro.call(
                Call(
                    user_id,
                    endpoints.LIST_TAGS,
                    path,
                    params={"limit": "50", "offset": str(offset)},
                ),
                timeout=math.inf,
            )
            data = page.body.get("data") or []
            known.update({str(tag["title"]): str(tag["id"]) for tag in data})
            offset += len(data)
            if not data or offset >= int(page.body.get("total", 0)):
                break
        for title in dict.fromkeys(t for op in ops for t in op.payload["tags"]):
            if title not in known:
                tag = await self._miro.call(
                    Call(user_id, endpoints.CREATE_TAG, path, json={"title": title}),
                    timeout=math.inf,
                )
                known[title] = str(tag.body["id"])
        return known

    # Recording outcomes -------------------------------------------------------------------

    async def _write(self, write: Operation[T]) -> T:
        """Commit `write`, however long the database cannot (a full disk): it must not be lost.

        Work done at Miro is recorded here; giving up would do it again later.
        """
        failures = 0
        while True:
            try:
                return await self._store.call(write)
            except StoreUnavailable:
                failures += 1
                await self._sleep(self._store_backoff(failures))

    def _backoff(self, attempts: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempts)]."""
        return self._random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempts))

    def _decide(self, op: ClaimedOperation, outcome: _Outcome, now: float) -> Decision:
        # What Miro answered is kept for a job that answers a request, once it is final.
        final = outcome.action in ("done", "fail") or op.attempts >= MAX_ATTEMPTS
        response = outcome.response if final and op.payload.get("respond") else None
        if outcome.action == "retry" and op.attempts >= MAX_ATTEMPTS:
            error = f"gave up after {op.attempts} attempts: {outcome.error}"
            return Decision(op, "dead", error=error, response=response)
        if outcome.action == "retry":
            delay = outcome.delay if outcome.delay is not None else self._backoff(op.attempts)
            return Decision(
                op,
                "retry",
                error=outcome.error,
                available_at=now + delay,
                in_doubt=outcome.in_doubt,
            )
        if outcome.action == "defer":
            return Decision(op, "defer", available_at=now + (outcome.delay or 0.0))
        if outcome.action == "fail":
            return Decision(op, "fail", error=outcome.error, response=response)
        return Decision(op, "done", item_id=outcome.item_id, response=response)

    async def _settle(self, batch: list[ClaimedOperation], outcomes: list[_Outcome]) -> None:
        now = self._clock()
        decisions = tuple(
            self._decide(op, outcome, now) for op, outcome in zip(batch, outcomes, strict=True)
        )
        finished = await self._write(jobs.Settle(decisions, now))
        for decision in decisions:
            op = decision.operation
            if decision.action in ("done", "fail", "dead"):
                self._metrics.job_queue_depth.dec()
            if decision.action == "dead":
                self._metrics.jobs_dead_lettered.labels(op.job_kind).inc()
                log.error("job.dead_lettered", job_id=op.job_id, seq=op.seq, error=decision.error)
            elif decision.action in ("fail", "retry"):
                log.info(
                    f"job.operation_{decision.action}",
                    job_id=op.job_id,
                    seq=op.seq,
                    attempts=op.attempts,
                    error=decision.error,
                )
        for job in finished:
            if (waited := self._finished.pop(job.id, None)) is not None:
                waited.set()
            self._metrics.jobs_completed.labels(job.kind, job.status).inc()
            self._metrics.job_duration.labels(job.kind).observe(max(now - job.created_at, 0.0))

    # The operator's console ----------------------------------------------------------------

    async def _console(self, message: ConsoleMessage) -> Any:
        """Answer the console: reads from the store; dead-letter actions, audited."""
        match message:
            case ListJobs(filter=wanted):
                return await self._store.call(console_store.ListJobs(wanted))
            case GetJobDetail(job_id=job_id):
                detail = await self._store.call(console_store.GetJobDetail(job_id))
                if detail is None:
                    raise NotFound(f"no job {job_id}")
                return detail
            case ListDeadLetters(limit=limit):
                return await self._store.call(console_store.ListDeadLetters(limit))
            case CountQueue():
                return await self._store.call(console_store.CountQueue(self._clock()))
            case ListAudit(limit=limit):
                return await self._store.call(console_store.ListAudit(limit))
            case RetryDeadLetter() | DiscardDeadLetter():
                return await self._act_on_dead_letter(message)
            case _:
                assert_never(message)

    async def _act_on_dead_letter(self, message: RetryDeadLetter | DiscardDeadLetter) -> None:
        retry = isinstance(message, RetryDeadLetter)
        kind = console_store.RetryDeadLetter if retry else console_store.DiscardDeadLetter
        done = await self._store.call(
            kind(message.job_id, message.seq, message.operator, message.address, self._clock())
        )
        if not done:
            raise NotFound(f"no dead letter {message.job_id}/{message.seq}")
        log.warning(
            "job.dead_letter_retried" if retry else "job.dead_letter_discarded",
            job_id=message.job_id,
            seq=message.seq,
            operator=message.operator,
        )
        if retry:
            self._metrics.job_queue_depth.inc()
            self._wake_up()
