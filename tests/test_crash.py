"""A real `miro-bridge serve` killed with SIGKILL mid-way loses nothing and repeats nothing.

Both the service and the sandbox Miro run as subprocesses, as in production. The sandbox is
slowed so that the kill lands while bulk creates are under way at Miro: Miro carries them out,
and their answers are lost with the process. After the kill the service is started again on
the same database; every operation must end `done`, every card be on the board exactly once
(the creates left in doubt are found there and adopted), and a keyed synchronous create,
replayed, must finish the same creates rather than start them again.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import signal
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

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
    start_process,
    wait_until,
)

CARDS = 300
BATCHES = 6


def kill_mid_bulk(process: Process, miro: httpx.Client, answered: int) -> int:
    """SIGKILL `process` once Miro answered `answered` bulk calls and is carrying out others;
    how many it was carrying out."""
    deadline = time.monotonic() + 60
    while True:
        done, in_flight = bulk_calls(miro)
        if done >= answered and in_flight > 0:
            process.popen.send_signal(signal.SIGKILL)
            process.popen.wait()
            return in_flight
        assert time.monotonic() < deadline, "the service made no progress"
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("run", range(10))
def test_sigkill_while_bulk_calls_are_in_flight_loses_and_repeats_nothing(
    run: int,
    tmp_path: Path,
    processes: list[Process],
    record_property: Any,
) -> None:
    env = clean_environment()
    sandbox = start_process(["sandbox", "--port", "0"], env, "sandbox.serving")
    miro_url = sandbox.url
    processes.append(sandbox)
    miro = httpx.Client(base_url=miro_url, timeout=30)
    tokens = miro.post("/_admin/tokens", json={"user_id": USER}).json()
    board_id = miro.post("/_admin/boards", json={"owner": USER, "name": "Crash"}).json()["id"]
    # Slow enough that bulk calls are under way at Miro when the kill lands.
    miro.post("/_admin/faults", json={"latency_ms": [150, 300], "seed": run})

    database = tmp_path / "bridge.db"
    bridge_env = service_environment(env, miro_url, f"sqlite:///{database}")
    first = start_process(["serve"], bridge_env, "service.serving")
    url = first.url
    processes.append(first)
    with httpx.Client(base_url=url, timeout=30, headers={"X-User-Id": USER}) as bridge:
        registered = bridge.post(
            "/api/users", json={"id": USER, "access_token": tokens["access_token"]}
        )
        assert registered.status_code in (200, 201)
        job_ids = []
        per_batch = CARDS // BATCHES
        for batch in range(BATCHES):
            cards = [{"title": f"card {batch}-{n}"} for n in range(per_batch)]
            accepted = bridge.post(f"/api/cards?boardId={board_id}", json=cards)
            assert accepted.status_code == 202
            job_ids.append(accepted.json()["jobId"])

    # Each run kills at another point: after 1 to 5 bulk calls were answered, while others
    # are being carried out.
    in_flight = kill_mid_bulk(first, miro, answered=run % 5 + 1)
    wait_until(lambda: bulk_calls(miro)[1] == 0, "Miro did not finish the calls in flight")
    miro.post("/_admin/faults", json={})  # the rest at full speed

    with sqlite3.connect(database) as connection:
        counts = dict(
            connection.execute("SELECT status, count(*) FROM operations GROUP BY status").fetchall()
        )
    assert sum(counts.values()) == CARDS  # every accepted operation is on disk
    assert counts.get("done", 0) < CARDS, "killed too late to test anything"

    second = start_process(["serve"], {**bridge_env}, "service.serving")
    url = second.url
    processes.append(second)
    with httpx.Client(base_url=url, timeout=30, headers={"X-User-Id": USER}) as bridge:
        for job_id in job_ids:
            job = job_when_finished(bridge, job_id)
            assert job["status"] == "done", job
            assert all(op["status"] == "done" and op["itemId"] for op in job["operations"])

    titles = card_titles(miro, tokens["access_token"], board_id)
    expected = {f"card {b}-{n}" for b in range(BATCHES) for n in range(CARDS // BATCHES)}
    assert set(titles) == expected  # none lost
    duplicates = sum(count - 1 for count in collections.Counter(titles).values())
    record_property("duplicates", duplicates)
    record_property("bulk_calls_in_flight_at_kill", in_flight)
    print(
        f"\nrun {run}: SIGKILL with {in_flight} bulk calls in flight at Miro "
        f"({counts.get('working', 0)} operations working): {duplicates} duplicate cards"
    )
    assert in_flight > 0
    assert duplicates == 0


@pytest.mark.slow
def test_a_keyed_synchronous_create_killed_mid_way_is_finished_by_its_replay(
    tmp_path: Path, processes: list[Process]
) -> None:
    env = clean_environment()
    sandbox = start_process(["sandbox", "--port", "0"], env, "sandbox.serving")
    miro_url = sandbox.url
    processes.append(sandbox)
    miro = httpx.Client(base_url=miro_url, timeout=30)
    tokens = miro.post("/_admin/tokens", json={"user_id": USER}).json()
    board_id = miro.post("/_admin/boards", json={"owner": USER}).json()["id"]
    miro.post("/_admin/faults", json={"latency_ms": [150, 300], "seed": 3})
    bridge_env = {
        **service_environment(env, miro_url, f"sqlite:///{tmp_path / 'bridge.db'}"),
        "MIRO_SHAPES_MAX": "200",
    }
    shapes = [
        {"shape": "rectangle", "x": n, "y": 0, "width": 100, "height": 50, "text": f"s{n}"}
        for n in range(200)
    ]
    headers = {"X-User-Id": USER, "Idempotency-Key": "import-200"}
    path = f"/api/boards/{board_id}/shapes"

    first = start_process(["serve"], bridge_env, "service.serving")
    url = first.url
    processes.append(first)
    with httpx.Client(base_url=url, timeout=30, headers=headers) as bridge:
        registered = bridge.post(
            "/api/users", json={"id": USER, "access_token": tokens["access_token"]}
        )
        assert registered.status_code in (200, 201)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        request = pool.submit(httpx.post, url + path, json=shapes, headers=headers, timeout=60)
        assert kill_mid_bulk(first, miro, answered=3) > 0
        with pytest.raises(httpx.TransportError):
            request.result()
    wait_until(lambda: bulk_calls(miro)[1] == 0, "Miro did not finish the calls in flight")
    assert bulk_calls(miro)[0] < 10, "killed too late"
    miro.post("/_admin/faults", json={})

    second = start_process(["serve"], bridge_env, "service.serving")
    url = second.url
    processes.append(second)
    replay = httpx.post(url + path, json=shapes, headers=headers, timeout=60)
    assert replay.status_code == 201, replay.text
    results = replay.json()
    assert [r["status"] for r in results] == [201] * 200
    created = [json.loads(r["body"]) for r in results]
    assert [c["data"]["content"] for c in created] == [s["text"] for s in shapes]
    assert miro_items(miro, tokens["access_token"], board_id) == 200  # no more
    assert len({c["id"] for c in created}) == 200


def miro_items(miro: httpx.Client, token: str, board_id: str) -> int:
    """How many items the board has at Miro."""
    page = miro.get(
        f"/v2/boards/{board_id}/items",
        params={"limit": "10"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    return int(page["total"])


@pytest.mark.slow
def test_sigterm_with_work_in_flight_stops_within_ten_seconds(
    tmp_path: Path, processes: list[Process]
) -> None:
    env = clean_environment()
    # Tracing to a collector that takes connections and never answers: its spans must not
    # hold up the exit either.
    collector = socket.socket()
    collector.bind(("127.0.0.1", 0))
    collector.listen(100)
    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.getsockname()[1]}"}
    sandbox = start_process(["sandbox", "--port", "0"], env, "sandbox.serving")
    miro_url = sandbox.url
    processes.append(sandbox)
    miro = httpx.Client(base_url=miro_url, timeout=30)
    tokens = miro.post("/_admin/tokens", json={"user_id": USER}).json()
    board_id = miro.post("/_admin/boards", json={"owner": USER}).json()["id"]
    database = tmp_path / "bridge.db"
    service_env = {**service_environment(env, miro_url, f"sqlite:///{database}"), **traced}
    service = start_process(["serve"], service_env, "service.serving")
    url = service.url
    processes.append(service)
    with httpx.Client(base_url=url, timeout=30, headers={"X-User-Id": USER}) as bridge:
        bridge.post("/api/users", json={"id": USER, "access_token": tokens["access_token"]})
        miro.post("/_admin/faults", json={"latency_ms": [8000, 8000]})  # Miro is very slow now
        accepted = bridge.post(f"/api/cards?boardId={board_id}", json=[{"title": "slow"}] * 50)
        assert accepted.status_code == 202
    deadline = time.monotonic() + 10
    while not any(
        r["path"].endswith("/items/bulk") for r in miro.get("/_admin/requests").json()["requests"]
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sent = time.monotonic()
    service.popen.send_signal(signal.SIGTERM)
    assert service.popen.wait(timeout=15) == 0
    assert time.monotonic() - sent < 10
    collector.close()
    with sqlite3.connect(database) as connection:
        (unfinished,) = connection.execute(
            "SELECT count(*) FROM operations WHERE status != 'done'"
        ).fetchone()
    assert unfinished == 50  # nothing was lost; the next start takes it up again
