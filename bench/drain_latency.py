"""Does the job executor starve the edge? Hot-read latency during a 1,000-card drain (issue 16).

The service (CPU 0) and the sandbox (CPU 1, beside wrk) run as separate processes. A board of
50 shapes is read hot (`GET /api/cache/{id}`, answered by the edge from the published view)
by wrk -c32 in alternating rounds: with the queue idle, and while 1,000 card creates to
boards of 4 users are drained (250 cards each, so that 8 units run at once: 50 bulk calls),
one drain after another for as long as wrk runs. The sandbox's budget is large, so nothing
waits for a credit window: each drain is the burst a window's reopening releases, the
executor's worst case. Reported: p50/p99 of the hot read, idle and draining, their ratio
(target: p99 during a drain at most 2x idle), and how long the drains took.

    .venv/bin/python bench/drain_latency.py [--rounds 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _common import PIN_LOAD, Run, require_wrk, wrk
from backlog_memory import KEEP_ALIVE, service
from job_queue import USER, bridge_env

CARDS = 1_000
SHAPES = 50
BUDGET = 100_000_000


def hot_board(miro_url: str, bridge_url: str, users: int) -> tuple[str, dict[str, str]]:
    """A board of 50 shapes, read once through the cache; a board for each of `users` users
    to drain into (the first is USER); their ids."""
    drained = {}
    with httpx.Client(timeout=30) as client:
        for n in range(users):
            user = str(int(USER) + n)
            token = client.post(f"{miro_url}/_admin/tokens", json={"user_id": user}).json()
            board = client.post(f"{miro_url}/_admin/boards", json={"owner": user}).json()
            drained[user] = str(board["id"])
            client.post(
                f"{bridge_url}/api/users", json={"id": user, "access_token": token["access_token"]}
            ).raise_for_status()
        token = client.post(f"{miro_url}/_admin/tokens", json={"user_id": USER}).json()
        client.post(
            f"{bridge_url}/api/users", json={"id": USER, "access_token": token["access_token"]}
        ).raise_for_status()
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        hot = str(client.post(f"{miro_url}/_admin/boards", json={"owner": USER}).json()["id"])
        for n in range(SHAPES):
            body = {
                "data": {"shape": "round_rectangle", "content": f"Step {n}"},
                "position": {"x": n * 120.0, "y": (n % 5) * 80.0},
                "geometry": {"width": 100.0, "height": 60.0},
            }
            client.post(
                f"{miro_url}/v2/boards/{hot}/shapes", json=body, headers=auth
            ).raise_for_status()
        client.get(f"{bridge_url}/api/cache/{hot}", headers={"X-User-Id": USER}).raise_for_status()
    return hot, drained


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """`client.request`, once more if a kept-alive connection was closed meanwhile."""
    try:
        return client.request(method, path, **kwargs)
    except httpx.TransportError:
        return client.request(method, path, **kwargs)


def start_drain(client: httpx.Client, boards: dict[str, str], round_: int) -> list[tuple[str, str]]:
    """Enqueue 1,000 card creates, shared by the users (requests of at most 500 cards);
    each job's user and id."""
    jobs = []
    share = CARDS // len(boards)
    for user, board_id in boards.items():
        for first in range(0, share, 500):
            cards = [{"title": f"card {round_}-{n}"} for n in range(first, min(first + 500, share))]
            response = call(
                client,
                "POST",
                f"/api/cards?boardId={board_id}",
                json=cards,
                headers={"X-User-Id": user},
            )
            response.raise_for_status()
            jobs.append((user, str(response.json()["jobId"])))
    return jobs


def wait_drained(client: httpx.Client, jobs: list[tuple[str, str]]) -> None:
    for user, job_id in jobs:
        while (
            status := call(
                client, "GET", f"/api/jobs/{job_id}", headers={"X-User-Id": user}
            ).json()["status"]
        ) in (
            "pending",
            "working",
        ):
            time.sleep(0.05)
        if status != "done":
            raise RuntimeError(f"job {job_id} ended {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=4, help="users sharing the 1,000 cards")
    args = parser.parse_args()
    require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="miro-bench-", dir=os.environ.get("BENCH_DIR")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRO_")}
    idle: list[Run] = []
    draining: list[Run] = []
    drains: list[float] = []
    try:
        sandbox = ["sandbox", "--port", "0", "--credits-per-minute", str(BUDGET)]
        with service(sandbox, env, "sandbox.serving", pin=PIN_LOAD) as (miro_url, _):
            bridge = service(["serve"], bridge_env(workdir / "d.db", miro_url), "service.serving")
            with (
                bridge as (url, _),
                httpx.Client(
                    base_url=url, headers={"X-User-Id": USER}, timeout=60, limits=KEEP_ALIVE
                ) as client,
            ):
                hot, drained = hot_board(miro_url, url, args.users)
                hot_url = f"{url}/api/cache/{hot}"
                headers = [f"X-User-Id: {USER}"]
                began = time.monotonic()
                wait_drained(client, start_drain(client, drained, 0))  # warm-up, and its time
                alone = time.monotonic() - began
                seconds = args.seconds
                wrk(hot_url, 1, args.connections, headers)
                for round_ in range(1, args.rounds + 1):
                    idle.append(wrk(hot_url, seconds, args.connections, headers))
                    load = subprocess.Popen(
                        [
                            "python3",
                            "-c",
                            "import sys, json; sys.path.insert(0, sys.argv[1]);"
                            "from _common import wrk;"
                            "print(json.dumps(wrk(sys.argv[2], int(sys.argv[3]), "
                            "int(sys.argv[4]), [sys.argv[5]])))",
                            str(Path(__file__).parent),
                            hot_url,
                            str(seconds),
                            str(args.connections),
                            headers[0],
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    while load.poll() is None:
                        began = time.monotonic()
                        wait_drained(client, start_drain(client, drained, round_))
                        drains.append(time.monotonic() - began)
                    out, _ = load.communicate()
                    rate, p50, p99 = (float(x) for x in out.strip().strip("[]").split(","))
                    draining.append((rate, p50, p99))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def median(runs: list[Run], index: int) -> float:
        return statistics.median(run[index] for run in runs)

    print(
        f"hot GET /api/cache/{{id}} ({SHAPES} shapes), wrk -t1 -c{args.connections}, "
        f"{args.rounds} alternating rounds of {seconds}s; medians"
    )
    print(f"the drains: {CARDS} cards shared by {args.users} users")
    print(f"{'queue':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, runs in (("idle", idle), (f"draining {CARDS} cards", draining)):
        print(f"{name:<34}{median(runs, 0):>10.0f}{median(runs, 1):>10.2f}{median(runs, 2):>10.2f}")
    ratio = median(draining, 2) / median(idle, 2)
    print(f"p99 draining / idle: {ratio:.2f} (target <= 2)")
    print(
        "  per-round p99 ratios: "
        + ", ".join(f"{d[2] / i[2]:.2f}" for i, d in zip(idle, draining, strict=True))
    )
    print(
        f"  {len(drains)} drains of {CARDS} cards while wrk ran: median "
        f"{statistics.median(drains):.1f}s (unloaded, before the rounds: {alone:.1f}s)"
    )


if __name__ == "__main__":
    main()
