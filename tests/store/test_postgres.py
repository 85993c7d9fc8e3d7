"""The PostgreSQL backend: migrations under a lock, and what it coordinates between instances.

Two backends on one database are two instances: claims, the per-user cap, token locks, board
notices, credit budgets, key claims and webhook dedupe must hold across them.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import trio

from miro_bridge.actors import Supervisor
from miro_bridge.actors.store import GetStatistics, Store
from miro_bridge.errors import Conflict, DatabaseUnreachable, SchemaTooNew, StoreUnavailable
from miro_bridge.records.boards import CachedItem, Snapshot
from miro_bridge.records.idempotency import KeyClaim
from miro_bridge.records.jobs import Decision, NewJob, NewOperation, Origin, WebhookEvent
from miro_bridge.records.users import NewTokens
from miro_bridge.store import (
    Operation,
    boards,
    client_logs,
    credits,
    database,
    idempotency,
    jobs,
    users,
)
from miro_bridge.store.postgres import MIGRATIONS, PG, PostgresBackend
from tests.support import StartBridge, create_database, drop_database

NOTES = (
    "CREATE TABLE notes (id integer PRIMARY KEY); SELECT pg_sleep(0.2);",
    "ALTER TABLE notes ADD COLUMN body text;",
)


@pytest.fixture
def empty_database(postgres_server: str) -> Iterator[str]:
    """A database miro-bridge has never seen."""
    url = create_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


@contextlib.asynccontextmanager
async def instances(
    url: str, count: int = 2, **options: Any
) -> AsyncIterator[list[PostgresBackend]]:
    """`count` backends open on one database, as `count` instances would hold them."""
    opened = [PostgresBackend(url, **options) for _ in range(count)]
    try:
        for backend in opened:
            await backend.open()
        yield opened
    finally:
        for backend in opened:
            await backend.close()


def cards(user: str, board: str, count: int) -> tuple[NewOperation, ...]:
    return tuple(NewOperation("create_card", board, {"item": {"n": n}}) for n in range(count))


async def enqueue(backend: PostgresBackend, job_id: str, user: str, count: int, now: float) -> None:
    job = NewJob(job_id, user, "cards", cards(user, "b1", count), Origin())
    await backend.run(jobs.Enqueue(job, now))


def snapshot(board_id: str, version: int) -> Snapshot:
    item = CachedItem({"id": "i1", "data": {"content": "x"}}, "2026-01-01T00:00:00Z", version)
    return Snapshot(board_id, {"id": board_id}, {"i1": item}, (), version, 1.0, "u1")


# Migrations and start-up ---------------------------------------------------------------------


def test_every_repository_operation_has_a_postgresql_implementation() -> None:
    modules = (users, boards, jobs, idempotency, client_logs, credits, database)
    operations = {
        kind
        for module in modules
        for _, kind in inspect.getmembers(module, inspect.isclass)
        if issubclass(kind, Operation) and kind.__module__ == module.__name__
    }
    # These three hold a connection between calls or wait for notices: the backend's own.
    special = {users.LockTokens, users.UnlockTokens, boards.BoardChanges}
    assert len(operations) > 30
    assert operations - special <= PG.kinds()


async def test_instances_starting_together_migrate_once(empty_database: str) -> None:
    # Without the advisory lock the four would each create `notes`, and all but one fail.
    async with trio.open_nursery() as nursery:
        backends = [PostgresBackend(empty_database, migrations=NOTES) for _ in range(4)]
        for backend in backends:
            nursery.start_soon(backend.open)
    for backend in backends:
        await backend.close()
    with psycopg.connect(empty_database) as connection:
        versions = [row[0] for row in connection.execute("SELECT version FROM schema_version")]
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'notes' "
            "ORDER BY ordinal_position"
        ).fetchall()
    assert sorted(versions) == [1, 2]
    assert [c[0] for c in columns] == ["id", "body"]


async def test_the_full_schema_applies_and_a_newer_database_refuses_to_start(
    empty_database: str,
) -> None:
    async with instances(empty_database, 1):
        pass
    with psycopg.connect(empty_database) as connection:
        (version,) = connection.execute("SELECT max(version) FROM schema_version").fetchone() or (
            0,
        )
    assert version == len(MIGRATIONS) == 11
    older = PostgresBackend(empty_database, migrations=MIGRATIONS[:8])
    with pytest.raises(SchemaTooNew, match="version 11 is newer than this code knows \\(8\\)"):
        await older.open()


async def test_a_failed_migration_leaves_the_previous_version(empty_database: str) -> None:
    broken = (*NOTES, "CREATE TABLE extra (x integer); SELECT * FROM no_such_table;")
    with pytest.raises(psycopg.errors.UndefinedTable):
        await PostgresBackend(empty_database, migrations=broken).open()
    with psycopg.connect(empty_database) as connection:
        (version,) = connection.execute("SELECT max(version) FROM schema_version").fetchone() or (
            0,
        )
        extra = connection.execute("SELECT to_regclass('extra')").fetchone()
    assert version == 2
    assert extra == (None,)


async def test_an_unreachable_server_is_one_clear_error_without_the_password() -> None:
    backend = PostgresBackend("postgresql://bridge:hunter2@127.0.0.1:1/bridge")
    with pytest.raises(DatabaseUnreachable) as caught:
        await backend.open()
    message = str(caught.value)
    assert message.startswith("cannot reach the PostgreSQL database at 127.0.0.1:1/bridge: ")
    assert "hunter2" not in message
    assert "\n" not in message


async def test_the_store_runs_many_operations_at_once_on_a_small_pool(
    postgres_database: str,
) -> None:
    supervisor = Supervisor()
    store = supervisor.add(
        "store", lambda: Store(functools.partial(PostgresBackend, postgres_database, pool_size=3))
    )
    created: list[bool] = []

    async def writer(n: int) -> None:
        created.append(await store.call(users.UpsertUser(f"u{n}", f"user {n}", 1.0)))

    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        async with trio.open_nursery() as writers:
            for n in range(200):
                writers.start_soon(writer, n)
        statistics = await store.call(GetStatistics())
        found = await store.call(users.GetUser("u199"))
        await supervisor.stop()
    assert created == [True] * 200
    assert (statistics.backend, statistics.writes, statistics.transactions) == (
        "postgresql",
        200,
        200,
    )
    assert found is not None
    assert found.name == "user 199"


# Jobs --------------------------------------------------------------------------------------


async def test_enqueues_sent_at_once_share_transactions_and_a_failing_one_fails_alone(
    postgres_database: str,
) -> None:
    async with instances(postgres_database, 1) as (backend,):
        transactions: list[int] = []  # the writes each one committed
        backend.observe_commits(transactions.append)
        failed: list[str] = []

        async def send(n: int, binds: KeyClaim | None = None) -> None:
            job = NewJob(f"j{n}", "u1", "batch", cards("u1", "b1", 3), Origin())
            try:
                await backend.run(jobs.Enqueue(job, 1.0, binds=binds))
            except Conflict:
                failed.append(job.id)

        async with trio.open_nursery() as nursery:
            for n in range(100):
                nursery.start_soon(send, n)
        grouped = list(transactions)
        # With one that names a key claim nobody holds: its caller alone hears Conflict.
        async with trio.open_nursery() as nursery:
            for n in range(100, 110):
                claim = KeyClaim("u1", "/api/batch", "k", "f", "not-the-token")
                nursery.start_soon(send, n, claim if n == 105 else None)
        stored = [await backend.run(jobs.GetJob(f"j{n}", "u1")) for n in range(110)]
    assert sum(grouped) == 100  # every job stored, once
    assert len(grouped) < 20  # 100 enqueues at once: a few transactions, not one each
    assert failed == ["j105"]
    assert [view is not None for view in stored] == [n != 105 for n in range(110)]
    assert all(len(view.operations) == 3 for view in stored if view is not None)
    assert sum(transactions) == 109


async def test_claims_skip_rows_another_transaction_holds(postgres_database: str) -> None:
    async with instances(postgres_database, 1) as (backend,):
        await enqueue(backend, "j1", "u1", 25, 1.0)
        with psycopg.connect(postgres_database) as other:
            (first,) = other.execute(
                "SELECT id FROM operations ORDER BY id LIMIT 1 FOR UPDATE"
            ).fetchone() or (0,)
            with trio.fail_after(2):  # passed over, not waited for
                claimed = await backend.run(jobs.Claim("u1", "unit-a", 2.0, 62.0, 2))
            other.rollback()
    assert [op.rowid for op in claimed] == list(range(first + 1, first + 21))


async def test_two_instances_claim_disjoint_work_within_the_per_user_cap(
    postgres_database: str,
) -> None:
    async with instances(postgres_database) as (a, b):
        await enqueue(a, "j1", "u1", 100, 1.0)
        taken: list[list[int]] = []

        async def claim(backend: PostgresBackend, unit: str) -> None:
            batch = await backend.run(jobs.Claim("u1", unit, 2.0, 62.0, 2))
            taken.append([op.rowid for op in batch])

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(claim, (a, b)[n % 2], f"unit-{n}")
        held = [batch for batch in taken if batch]
        assert len(held) == 2  # the cap, over both instances
        assert len(set(held[0]) | set(held[1])) == 40
        assert await b.run(jobs.ReleaseOrphans()) == 0  # shared: never released by a start
        assert await a.run(jobs.ReadyUsers(3.0)) == ["u1"]
        # A lease that expired (its holder died) is taken again by the other instance.
        assert await a.run(jobs.Claim("u1", "unit-x", 30.0, 90.0, 2)) == []
        again = await b.run(jobs.Claim("u1", "unit-y", 63.0, 123.0, 2))
        assert [op.rowid for op in again] == sorted(held, key=min)[0]


async def test_a_late_outcome_of_a_lease_taken_over_is_dropped(postgres_database: str) -> None:
    async with instances(postgres_database) as (a, b):
        await enqueue(a, "j1", "u1", 1, 1.0)
        (first,) = await a.run(jobs.Claim("u1", "dead", 2.0, 62.0, 2))
        (second,) = await b.run(jobs.Claim("u1", "alive", 70.0, 130.0, 2))
        assert second.attempts == 2
        late = await a.run(jobs.Settle((Decision(first, "done", item_id="late"),), 71.0))
        done = await b.run(jobs.Settle((Decision(second, "done", item_id="item-1"),), 72.0))
        view = await a.run(jobs.GetJob("j1", "u1"))
    assert late == []
    assert [job.status for job in done] == ["done"]
    assert view is not None
    assert [op.item_id for op in view.operations] == ["item-1"]


async def test_no_nan_is_ever_stored_in_a_payload(postgres_database: str) -> None:
    async with instances(postgres_database, 1) as (backend,):
        job = NewJob(
            "j1", "u1", "ops", (NewOperation("update_shape", "b", {"x": math.nan}),), Origin()
        )
        with pytest.raises(ValueError, match="not JSON compliant"):
            await backend.run(jobs.Enqueue(job, 1.0))
        assert await backend.run(jobs.QueueLength()) == 0


async def test_a_webhook_event_posted_to_both_instances_is_taken_once(
    postgres_database: str,
) -> None:
    async with instances(postgres_database) as (a, b):
        await a.run(boards.SaveBoard(snapshot("b1", 1)))
        outcomes: list[str] = []

        async def accept(backend: PostgresBackend, job_id: str) -> None:
            accepted = await backend.run(
                jobs.AcceptWebhookEvents((WebhookEvent("e1", "b1"),), (job_id,), Origin(), 5.0, 50)
            )
            outcomes.extend(accepted)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept, a, "job-a")
            nursery.start_soon(accept, b, "job-b")
    assert sorted(outcomes) == ["duplicate", "enqueued"]


# Idempotency keys ----------------------------------------------------------------------------


async def test_a_key_claimed_on_both_instances_at_once_is_one_claim(postgres_database: str) -> None:
    async with instances(postgres_database) as (a, b):
        answers: list[object] = []

        async def claim(backend: PostgresBackend, token: str) -> None:
            key = KeyClaim("u1", "/api/batch", "k1", "f1", token)
            answers.append(await backend.run(idempotency.ClaimKey(key, 1.0, 61.0, 100)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(claim, a, "ta")
            nursery.start_soon(claim, b, "tb")
    assert sorted(type(answer).__name__ for answer in answers) == ["Busy", "Claimed"]


# Token locks ---------------------------------------------------------------------------------


async def test_a_token_lock_excludes_another_instance_until_released(
    postgres_database: str,
) -> None:
    old = NewTokens(b"access-1", b"refresh-1", 100.0, ())
    new = NewTokens(b"access-2", b"refresh-2", 200.0, ())
    async with instances(postgres_database) as (a, b):
        await a.run(users.SaveTokens("u1", "Ann", old, 1.0))
        held = await a.run(users.LockTokens("u1", 1.0))
        assert held.tokens is not None
        assert held.tokens.refresh_token == b"refresh-1"
        started = trio.current_time()
        with pytest.raises(StoreUnavailable, match="token lock"):
            await b.run(users.LockTokens("u1", 0.3))
        assert 0.25 <= trio.current_time() - started < 2.0
        other_user = await b.run(users.LockTokens("u2", 0.3))  # only the user is locked
        await b.run(users.UnlockTokens(other_user, None, False, 2.0))

        async def refresh_elsewhere() -> None:
            second = await b.run(users.LockTokens("u1", 5.0))
            assert second.tokens is not None  # read again under the lock: the new pair
            assert second.tokens.refresh_token == b"refresh-2"
            await b.run(users.UnlockTokens(second, None, False, 3.0))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(refresh_elsewhere)
            await trio.sleep(0.1)
            await a.run(users.UnlockTokens(held, new, False, 2.0))
        assert a.statistics()["token_locks_held"] == 0
        assert b.statistics()["token_locks_held"] == 0


async def test_a_token_lock_never_released_lapses(postgres_database: str) -> None:
    async with instances(postgres_database, token_lock_hold=0.3) as (a, b):
        forgotten = await a.run(users.LockTokens("u1", 1.0))
        with trio.fail_after(3):
            taken = await b.run(users.LockTokens("u1", 2.0))  # once a's lock lapsed
        assert a.statistics()["token_locks_held"] == 0
        # The forgotten holder's late unlock still stores what it carries; harmless else.
        saved = NewTokens(b"access-9", b"refresh-9", 9.0, ())
        await a.run(users.UnlockTokens(forgotten, saved, False, 4.0))
        await b.run(users.UnlockTokens(taken, None, False, 4.0))
        stored = await b.run(users.GetTokens("u1"))
    assert stored is not None
    assert stored.access_token == b"access-9"


# Board notices -----------------------------------------------------------------------------


async def test_board_changes_hear_other_instances_only(postgres_database: str) -> None:
    async with instances(postgres_database) as (a, b):
        start, nothing = await a.run(boards.BoardChanges(0))
        assert nothing == ()
        heard: list[tuple[int, tuple[str, ...]]] = []
        answered = trio.Event()

        async def listen() -> None:
            heard.append(await a.run(boards.BoardChanges(start)))
            answered.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            await a.run(boards.SaveBoard(snapshot("own", 1)))  # its own: not heard
            await trio.sleep(0.3)
            assert heard == []
            with trio.fail_after(1):
                await b.run(boards.SaveBoard(snapshot("b=1", 1)))
                await b.run(boards.SaveChanges("b=1", 2, {}, {}))
                await answered.wait()
        ((last, changed),) = heard
        assert changed == ("b=1",)
        later, changed = await a.run(boards.BoardChanges(start))
        assert later >= last
        assert changed == ("b=1",)


async def test_notices_missed_while_the_listener_was_away_name_every_board(
    postgres_database: str,
) -> None:
    async with instances(postgres_database) as (a, b):
        start, _ = await a.run(boards.BoardChanges(0))
        await b.run(boards.SaveBoard(snapshot("b1", 1)))
        await b.run(boards.SaveBoard(snapshot("b2", 1)))
        heard: set[str] = set()
        with trio.fail_after(2):
            while heard != {"b1", "b2"}:  # both heard: what follows is the reconnection's
                start, changed = await a.run(boards.BoardChanges(start))
                heard.update(changed)
        with psycopg.connect(postgres_database, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            )
        with trio.fail_after(5):
            _, changed = await a.run(boards.BoardChanges(start))
    assert sorted(changed) == ["b1", "b2"]


# Credits -----------------------------------------------------------------------------------


async def test_two_instances_never_reserve_more_than_one_budget(postgres_database: str) -> None:
    async with instances(postgres_database) as (a, b):
        probes = [await x.run(credits.ReserveCredits("u1", 50, 1.0, 60.0)) for x in (a, b)]
        assert probes[0] == 0.0  # one call probes the unknown limit
        assert probes[1] > 0.0  # the other waits for it
        await a.run(credits.SettleCredits("u1", 50, 1.1, 1000, 950, 61.0))
        answers: list[float] = []

        async def reserve(backend: PostgresBackend) -> None:
            answers.append(await backend.run(credits.ReserveCredits("u1", 50, 2.0, 60.0)))

        async with trio.open_nursery() as nursery:
            for n in range(40):
                nursery.start_soon(reserve, (a, b)[n % 2])
        budgets = await b.run(credits.CreditBudgets())
    assert answers.count(0.0) == 19  # 950 credits left: 19 calls of 50
    assert all(wait == pytest.approx(59.0, abs=0.5) for wait in answers if wait)
    assert budgets["u1"].limit == 1000
    assert budgets["u1"].remaining == 0


async def test_a_new_window_counts_the_calls_still_in_flight(postgres_database: str) -> None:
    async with instances(postgres_database) as (a, b):
        assert await a.run(credits.ReserveCredits("u1", 100, 1.0, 60.0)) == 0.0
        await a.run(credits.SettleCredits("u1", 100, 1.5, 1000, 900, 61.0))
        for _ in range(9):
            assert await a.run(credits.ReserveCredits("u1", 100, 2.0, 60.0)) == 0.0
        for n in range(7):  # 700 settled; 200 still in flight when the next window opens
            await b.run(credits.SettleCredits("u1", 100, 3.0 + n))
        assert await b.run(credits.ReserveCredits("u1", 100, 62.0, 60.0)) == 0.0
        budgets = await a.run(credits.CreditBudgets())
    assert budgets["u1"].remaining == 1000 - 200 - 100


async def test_a_call_of_the_last_window_settled_in_the_next_gives_its_credits_back(
    postgres_database: str,
) -> None:
    async with instances(postgres_database) as (a, b):
        assert await a.run(credits.ReserveCredits("u1", 100, 1.0, 60.0)) == 0.0
        await a.run(credits.SettleCredits("u1", 100, 1.5, 1000, 900, 61.0))
        assert await a.run(credits.ReserveCredits("u1", 100, 60.9, 60.0)) == 0.0  # in flight
        # The next window opens while it is in flight: it may land there, so it counts.
        assert await b.run(credits.ReserveCredits("u1", 100, 61.2, 60.0)) == 0.0
        assert (await b.run(credits.CreditBudgets()))["u1"].remaining == 1000 - 100 - 100
        # Miro answers it from the window that reset at 61: it landed there, not in ours.
        await a.run(credits.SettleCredits("u1", 100, 61.3, 1000, 800, 61.0))
        after_old = (await b.run(credits.CreditBudgets()))["u1"]
        # An answer of our window (reset 121) corrects it down, never up.
        await b.run(credits.SettleCredits("u1", 100, 61.4, 1000, 850, 121.0))
        after_ours = (await b.run(credits.CreditBudgets()))["u1"]
    assert after_old.remaining == 1000 - 100
    assert after_old.reset_at == pytest.approx(121.2)
    assert after_ours.remaining == 850


async def test_calls_landed_but_not_settled_are_counted_once(postgres_database: str) -> None:
    async with instances(postgres_database) as (a, b):
        assert await a.run(credits.ReserveCredits("u1", 100, 1.0, 60.0)) == 0.0
        await a.run(credits.SettleCredits("u1", 100, 1.5, 1000, 900, 61.0))
        for backend in (a, b, a):
            assert await backend.run(credits.ReserveCredits("u1", 100, 2.0, 60.0)) == 0.0
        # All three have landed when Miro answers the first: its 600 counts them already.
        for n, backend in enumerate((b, a, b)):
            await backend.run(credits.SettleCredits("u1", 100, 2.5 + n, 1000, 600, 61.0))
        landed = (await a.run(credits.CreditBudgets()))["u1"]
        # Something else spent 100 of the budget: Miro's lower count is taken.
        assert await a.run(credits.ReserveCredits("u1", 100, 3.0, 60.0)) == 0.0
        await a.run(credits.SettleCredits("u1", 100, 3.5, 1000, 400, 61.0))
        spent_elsewhere = (await a.run(credits.CreditBudgets()))["u1"]
    assert landed.remaining == 600  # not 400: in flight and in Miro's count, once
    assert spent_elsewhere.remaining == 400


# The service on PostgreSQL -------------------------------------------------------------------


async def test_a_service_on_postgresql_stops_at_once(
    start_bridge: StartBridge, postgres_database: str
) -> None:
    bridge = await start_bridge(database_url=postgres_database)
    ready = await bridge.client.get("/health/ready")
    assert (ready.status_code, ready.json()["database"]) == (200, "ok")
    # The BoardCache's long poll of board notices is cancelled with the Store, not waited for.
    with trio.fail_after(1):
        await bridge.actors.supervisor.stop()
