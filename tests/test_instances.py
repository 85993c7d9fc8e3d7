"""Several real `miro-bridge serve` processes on one PostgreSQL database act as one service.

Each test starts the sandbox Miro and two services as subprocesses, as in production, on a
PostgreSQL database of its own (skipped when no server is reachable, unless
`MIRO_TEST_POSTGRES_URL` is set). Work accepted by either instance is finished by whichever
is alive; a key, a write or a refresh made through one is seen by the other.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import (
    USER,
    Process,
    bulk_calls,
    card_titles,
    clean_environment,
    job_when_finished,
    service_environment,
    shape,
    start_process,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox(processes: list[Process]) -> Iterator[httpx.Client]:
    """A client of the admin and REST routes of a sandbox Miro running as a subprocess."""
    process = start_process(
        # Short credit windows: 1000 cards spend a minute's credits.
        ["sandbox", "--port", "0", "--credit-window-seconds", "3"],
        clean_environment(),
        "sandbox.serving",
    )
    processes.append(process)
    with httpx.Client(base_url=process.url, timeout=30) as miro:
        yield miro


def start_service(
    processes: list[Process], miro: httpx.Client, database_url: str, **env: str
) -> Process:
    """A `miro-bridge serve` subprocess against the sandbox, on `database_url`."""
    environment = service_environment(clean_environment(), str(miro.base_url), database_url)
    process = start_process(["serve"], {**environment, **env}, "service.serving")
    processes.append(process)
    return process


def register(bridge: httpx.Client, tokens: dict[str, str]) -> None:
    """Register the test user with its Miro tokens."""
    body = {"id": USER, "access_token": tokens["access_token"]}
    if "refresh_token" in tokens:
        body["refresh_token"] = tokens["refresh_token"]
    assert bridge.post("/api/users", json=body).status_code in (200, 201)


def client(process: Process) -> httpx.Client:
    """A client of the service `process`, as the test user."""
    return httpx.Client(base_url=process.url, timeout=30, headers={"X-User-Id": USER})


CARDS = 1000
BATCHES = 10


def test_sigkill_of_one_instance_mid_work_the_other_finishes_every_job_exactly_once(
    postgres_database: str, sandbox: httpx.Client, processes: list[Process]
) -> None:
    tokens = sandbox.post("/_admin/tokens", json={"user_id": USER}).json()
    board_id = sandbox.post("/_admin/boards", json={"owner": USER}).json()["id"]
    # Slow enough that both instances have bulk creates under way at Miro at the kill.
    sandbox.post("/_admin/faults", json={"latency_ms": [150, 300], "seed": 13})
    lease = {"MIRO_JOB_LEASE_SECONDS": "2"}
    first = start_service(processes, sandbox, postgres_database, **lease)
    second = start_service(processes, sandbox, postgres_database, **lease)
    a, b = client(first), client(second)
    register(a, tokens)
    per_batch = CARDS // BATCHES
    job_ids = []
    for batch in range(BATCHES):
        cards = [{"title": f"card {batch}-{n}"} for n in range(per_batch)]
        accepted = (a, b)[batch % 2].post(f"/api/cards?boardId={board_id}", json=cards)
        assert accepted.status_code == 202, accepted.text
        job_ids.append(accepted.json()["jobId"])

    # B is paused so that the bulk calls under way once its own were answered are A's.
    wait_until(lambda: bulk_calls(sandbox)[0] >= 2, "no bulk call was answered", 20)
    second.popen.send_signal(signal.SIGSTOP)
    try:
        time.sleep(0.5)  # B's calls in flight are answered (the latency is at most 0.3 s)
        wait_until(lambda: bulk_calls(sandbox)[1] > 0, "A has no bulk call in flight", 10)
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait()
    finally:
        second.popen.send_signal(signal.SIGCONT)
    answered_at_kill = bulk_calls(sandbox)[0]
    sandbox.post("/_admin/faults", json={})  # the rest at full speed

    for job_id in job_ids:
        job = job_when_finished(b, job_id, seconds=25)
        assert job["status"] == "done", job
        assert all(op["status"] == "done" and op["itemId"] for op in job["operations"])
    assert answered_at_kill < 40, "killed too late to test anything"

    titles = card_titles(sandbox, tokens["access_token"], board_id)
    expected = {f"card {batch}-{n}" for batch in range(BATCHES) for n in range(per_batch)}
    assert set(titles) == expected  # none lost
    assert [t for t, count in collections.Counter(titles).items() if count > 1] == []


def test_one_key_sent_to_both_instances_at_once_makes_one_job(
    postgres_database: str, sandbox: httpx.Client, processes: list[Process]
) -> None:
    tokens = sandbox.post("/_admin/tokens", json={"user_id": USER}).json()
    board_id = sandbox.post("/_admin/boards", json={"owner": USER}).json()["id"]
    sandbox.post("/_admin/faults", json={"latency_ms": [50, 100], "seed": 2})
    first = start_service(processes, sandbox, postgres_database)
    second = start_service(processes, sandbox, postgres_database)
    register(client(first), tokens)
    cards = [{"title": f"keyed {n}"} for n in range(30)]
    headers = {"X-User-Id": USER, "Idempotency-Key": "import-13"}

    def send(process: Process) -> httpx.Response:
        url = f"{process.url}/api/cards?boardId={board_id}"
        return httpx.post(url, json=cards, headers=headers, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(send, [first, second]))
    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    job = job_when_finished(client(second), answers[0].json()["jobId"], seconds=20)
    assert job["status"] == "done", job
    titles = card_titles(sandbox, tokens["access_token"], board_id)
    assert sorted(titles) == sorted(card["title"] for card in cards)  # once each


def test_a_write_through_one_instance_is_read_through_the_other_within_a_second(
    postgres_database: str, sandbox: httpx.Client, processes: list[Process]
) -> None:
    tokens = sandbox.post("/_admin/tokens", json={"user_id": USER}).json()
    board_id = sandbox.post("/_admin/boards", json={"owner": USER}).json()["id"]
    a = client(start_service(processes, sandbox, postgres_database))
    b = client(start_service(processes, sandbox, postgres_database))
    register(a, tokens)
    created = a.post(f"/api/boards/{board_id}/shapes", json=[shape(1)])
    assert created.status_code == 201, created.text
    item_id = json.loads(created.json()[0]["body"])["id"]

    def content_through_b() -> str:
        cached = b.get(f"/api/cache/{board_id}")
        assert cached.status_code == 200, cached.text
        (item,) = (item for item in cached.json()["items"] if item["id"] == item_id)
        return str(item["data"]["content"])

    assert content_through_b() == "s1"  # B has the board cached now
    updated = a.put(f"/api/boards/{board_id}/shapes/{item_id}", json={**shape(1), "text": "new"})
    assert updated.status_code == 200, updated.text
    written = time.monotonic()
    while content_through_b() != "new":
        assert time.monotonic() - written < 1, "B still answers the old shape after 1 s"
        time.sleep(0.01)


def test_concurrent_reads_on_both_instances_refresh_an_expired_token_once(
    postgres_database: str, sandbox: httpx.Client, processes: list[Process]
) -> None:
    tokens = sandbox.post("/_admin/tokens", json={"user_id": USER}).json()
    board_id = sandbox.post("/_admin/boards", json={"owner": USER}).json()["id"]
    first = start_service(processes, sandbox, postgres_database)
    second = start_service(processes, sandbox, postgres_database)
    register(client(first), tokens)
    sandbox.post("/_admin/expire-tokens")
    sandbox.post("/_admin/faults", json={"latency_ms": [20, 60], "seed": 4})

    def read(n: int) -> int:
        url = f"{(first, second)[n % 2].url}/api/cache/{board_id}"
        return httpx.get(url, headers={"X-User-Id": USER}, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(read, range(50)))
    assert statuses == [200] * 50
    requests = sandbox.get("/_admin/requests").json()["requests"]
    refreshes = [r for r in requests if r["method"] == "POST" and r["path"] == "/v1/oauth/token"]
    assert len(refreshes) == 1, refreshes


def test_serve_with_two_workers_on_postgresql_answers_from_both_and_stops_on_sigterm(
    postgres_database: str, sandbox: httpx.Client, processes: list[Process]
) -> None:
    environment = service_environment(clean_environment(), str(sandbox.base_url), postgres_database)
    service = start_process(["serve", "--workers", "2"], environment, "service.serving")
    processes.append(service)
    instances = set()
    deadline = time.monotonic() + 20
    with httpx.Client(base_url=service.url, timeout=10) as probe:
        while len(instances) < 2:
            assert time.monotonic() < deadline, f"only {instances} answered"
            # A new connection each time: the kernel spreads them over the workers.
            ready = probe.get("/health/ready", headers={"Connection": "close"})
            assert ready.status_code == 200, ready.text
            assert ready.json()["backend"] == "postgresql"
            instances.add(ready.json()["instance"])
    service.popen.send_signal(signal.SIGTERM)
    assert service.popen.wait(timeout=15) == 0
