"""The actor runtime and supervisor: request/reply, crashes, restarts, escalation, timeouts."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest
import trio
import trio.testing

from miro_bridge.actors import Actor, Envelope, Message, Supervisor
from miro_bridge.context import request_id_var
from miro_bridge.errors import ActorCrashed, ActorStopped, ActorTimeout, Escalation


@attrs.frozen
class Echo(Message[str, "Worker"]):
    text: str


@attrs.frozen
class Crash(Message[None, "Worker"]):
    pass


@attrs.frozen
class Sleep(Message[None, "Worker"]):
    seconds: float


@attrs.frozen
class SleepInBackground(Message[str, "Worker"]):
    seconds: float


@attrs.frozen
class Fail(Message[None, "Worker"]):
    pass


@attrs.frozen
class WhoAsked(Message[str | None, "Worker"]):
    pass


class Worker(Actor):
    name: ClassVar[str] = "worker"
    starts: ClassVar[list[float]] = []

    async def setup(self) -> None:
        Worker.starts.append(trio.current_time())

    async def handle(self, envelope: Envelope) -> None:
        message = envelope.message
        if isinstance(message, Echo):
            envelope.reply(message.text)
        elif isinstance(message, Crash):
            raise RuntimeError("boom")
        elif isinstance(message, Fail):
            envelope.fail(ValueError("bad message"))
        elif isinstance(message, Sleep):
            await trio.sleep(message.seconds)
            envelope.reply(None)
        elif isinstance(message, SleepInBackground):
            self.nursery.start_soon(self._later, envelope, message.seconds)
        elif isinstance(message, WhoAsked):
            envelope.reply(request_id_var.get())

    async def _later(self, envelope: Envelope, seconds: float) -> None:
        await trio.sleep(seconds)
        envelope.reply("late")


@pytest.fixture(autouse=True)
def _reset_starts() -> None:
    Worker.starts.clear()


async def test_call_returns_the_reply(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor()
    worker = supervisor.add("worker", Worker)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        assert await worker.call(Echo("hi")) == "hi"
        with pytest.raises(ValueError, match="bad message"):
            await worker.call(Fail())
        # An answered error is not a crash: the same run keeps serving.
        assert await worker.call(Echo("again")) == "again"
        assert worker.statistics().restarts == 0
        await supervisor.stop()


async def test_crashed_actor_is_restarted_and_serves_the_next_call(
    autojump_clock: trio.abc.Clock,
) -> None:
    supervisor = Supervisor()
    worker = supervisor.add("worker", Worker)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        with pytest.raises(ActorCrashed):
            await worker.call(Crash())
        assert await worker.call(Echo("after")) == "after"
        assert worker.statistics().restarts == 1
        assert len(Worker.starts) == 2
        await supervisor.stop()


async def test_caller_of_a_dying_actor_fails_at_once(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor()
    worker = supervisor.add("worker", Worker, call_timeout=60)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        failed_at: list[float] = []

        async def waiting_caller() -> None:
            with pytest.raises(ActorCrashed):
                await worker.call(SleepInBackground(30))
            failed_at.append(trio.current_time())

        nursery.start_soon(waiting_caller)
        await trio.testing.wait_all_tasks_blocked()
        assert worker.statistics().in_flight == 1
        crashed_at = trio.current_time()
        with pytest.raises(ActorCrashed):
            await worker.call(Crash())
        await trio.testing.wait_all_tasks_blocked()
        # Neither the 30 s of work nor the 60 s timeout was waited for.
        assert failed_at == [crashed_at]
        await supervisor.stop()


async def test_cancelled_caller_does_not_crash_the_actor(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor()
    worker = supervisor.add("worker", Worker)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        # The caller gives up while the actor works; the actor's reply then has nowhere to go.
        with trio.move_on_after(1):
            await worker.call(Sleep(2))
        with trio.move_on_after(1):
            await worker.call(SleepInBackground(2))
        await trio.sleep(5)
        assert await worker.call(Echo("still here")) == "still here"
        assert worker.statistics().restarts == 0
        await supervisor.stop()


async def test_too_many_restarts_stop_the_service(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor(max_restarts=2, period=10)
    worker = supervisor.add("worker", Worker)
    with pytest.RaisesGroup(
        pytest.RaisesExc(Escalation, match="'worker' crashed 3 times"), flatten_subgroups=True
    ):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            for _ in range(3):
                with pytest.raises(ActorCrashed):
                    await worker.call(Crash())
            await trio.sleep_forever()  # the escalation ends this
    assert worker.statistics().running is False
    with pytest.raises(ActorStopped):
        await worker.call(Echo("anyone?"))


async def test_crashes_spread_over_time_are_forgiven(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor(max_restarts=2, period=10)
    worker = supervisor.add("worker", Worker)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        for _ in range(5):
            with pytest.raises(ActorCrashed):
                await worker.call(Crash())
            await trio.sleep(6)  # never three crashes within 10 s
        assert worker.statistics().restarts == 5
        assert await worker.call(Echo("ok")) == "ok"
        await supervisor.stop()


async def test_slow_actor_times_out(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor()
    worker = supervisor.add("worker", Worker, call_timeout=5)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        start = trio.current_time()
        with pytest.raises(ActorTimeout):
            await worker.call(Sleep(60))
        assert trio.current_time() - start == pytest.approx(5)
        await supervisor.stop()


async def test_full_mailbox_times_out(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor()
    worker = supervisor.add("worker", Worker, capacity=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        nursery.start_soon(worker.call, Sleep(60))  # the actor is busy with this one
        await trio.testing.wait_all_tasks_blocked()
        worker.cast(Echo("one"))
        worker.cast(Echo("two"))
        assert worker.statistics().mailbox_depth == 2
        with pytest.raises(ActorTimeout, match="mailbox full"):
            worker.cast(Echo("three"))
        start = trio.current_time()
        with pytest.raises(ActorTimeout):
            await worker.call(Echo("four"), timeout=1)
        assert trio.current_time() - start == pytest.approx(1)
        nursery.cancel_scope.cancel()


async def test_actors_start_in_order_and_each_waits_for_the_one_before(
    autojump_clock: trio.abc.Clock,
) -> None:
    events: list[str] = []

    class Slow(Actor):
        name: ClassVar[str] = "slow"

        async def setup(self) -> None:
            await trio.sleep(3)
            events.append("slow ready")

        async def handle(self, envelope: Envelope) -> None:
            envelope.reply(None)

    class Dependent(Actor):
        name: ClassVar[str] = "dependent"

        async def setup(self) -> None:
            events.append("dependent setup")

        async def handle(self, envelope: Envelope) -> None:
            envelope.reply(None)

    supervisor = Supervisor()
    supervisor.add("slow", Slow)
    supervisor.add("dependent", Dependent)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        events.append("supervisor ready")
        assert all(s.running for s in supervisor.statistics())
        await supervisor.stop()
    assert events == ["slow ready", "dependent setup", "supervisor ready"]


async def test_stop_drains_queued_messages(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor()
    worker = supervisor.add("worker", Worker)
    answers: list[str] = []

    async def ask(text: str) -> None:
        answers.append(await worker.call(Echo(text)))

    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        nursery.start_soon(worker.call, Sleep(1))
        await trio.testing.wait_all_tasks_blocked()
        for text in "abc":
            nursery.start_soon(ask, text)
        await trio.testing.wait_all_tasks_blocked()
        await supervisor.stop()
    assert sorted(answers) == ["a", "b", "c"]
    with pytest.raises(ActorStopped):
        worker.cast(Echo("late"))


async def test_messages_carry_the_senders_request_id(autojump_clock: trio.abc.Clock) -> None:
    supervisor = Supervisor()
    worker = supervisor.add("worker", Worker)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        token = request_id_var.set("req-42")
        try:
            assert await worker.call(WhoAsked()) == "req-42"
        finally:
            request_id_var.reset(token)
        assert await worker.call(WhoAsked()) is None
        await supervisor.stop()
