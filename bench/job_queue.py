"""The durable job queue: how fast it accepts work, and how close to the budget it drains it.

(1) Acceptance: `POST /api/batch` with 100 operations per request, driven by wrk for a few
    seconds, in operations/s; against Huey's `SqliteHuey` enqueue rate (one task carrying the
    same 100 operations), measured in this run, with Huey's default (`synchronous=OFF` when
    `fsync` is not given: not durable) and with `fsync=True` (durable, as our 202 is). The
    sandbox answers slowly during this part, so the workers mostly wait and the measure is of
    acceptance, not of execution.
(2) Drain: 1,000 card creates through the sandbox with its budget scaled down to 50,000
    credits a minute. A card costs 100 credits, so 100,000 credits need two of Miro's
    one-minute windows: the budget allows no less than 60 s. Reported: actual time ÷ 60 s
    (target <= 1.15) and the 429s the sandbox answered (target 0).

    .venv/bin/python bench/job_queue.py [--seconds 5]

(Not `queue.py`: a script of that name would shadow the standard library's `queue`.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from _common import PIN_LOAD, PIN_SERVER, require_wrk
from miro_bridge.sandbox import serve_environment

USER = "3458764500000000001"
OPS_PER_REQUEST = 100
DRAIN_CARDS = 1_000
DRAIN_BUDGET = 50_000
WINDOW = 60.0


@contextmanager
def service(
    args: list[str], env: dict[str, str], event: str, pin: list[str] = PIN_SERVER
) -> Iterator[tuple[str, int]]:
    """`python -m miro_bridge ARGS` (pinned to CPU 0) until the block ends; its URL and pid."""
    process = subprocess.Popen(
        [*pin, sys.executable, "-m", "miro_bridge", *args],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    drain = None
    try:
        for line in process.stdout:
            record = json.loads(line)
            if record.get("event") == event:
                url = str(record["url"])
                break
        else:
            raise RuntimeError(f"{args[0]} did not start")
        # Keep reading its log so that the pipe never fills up.
        drain = subprocess.Popen(["cat"], stdin=process.stdout, stdout=subprocess.DEVNULL)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)
        if drain is not None:
            drain.kill()


@contextmanager
def started(args: list[str], env: dict[str, str], event: str) -> Iterator[str]:
    """`python -m miro_bridge ARGS` (pinned to CPU 0) until the block ends; its URL."""
    with service(args, env, event) as (url, _):
        yield url


def bridge_env(database: Path, miro_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRO_")}
    return {
        **env,
        **serve_environment(miro_url),
        "MIRO_DATABASE_URL": f"sqlite:///{database}",
        "MIRO_OAUTH_REDIRECT_URI": "http://127.0.0.1/oauth/callback",
        "MIRO_ALLOW_PLAINTEXT_TOKENS": "true",
        "PORT": "0",
    }


def connect(miro_url: str, bridge_url: str) -> str:
    """A token for USER at the sandbox, registered with the bridge; a board of USER's."""
    with httpx.Client(timeout=30) as client:
        tokens = client.post(f"{miro_url}/_admin/tokens", json={"user_id": USER}).json()
        board = client.post(f"{miro_url}/_admin/boards", json={"owner": USER}).json()
        client.post(
            f"{bridge_url}/api/users", json={"id": USER, "access_token": tokens["access_token"]}
        ).raise_for_status()
    return str(board["id"])


def batch_body(board_id: str) -> dict[str, object]:
    shape = {"shape": "rectangle", "x": 0, "y": 0, "width": 100, "height": 60, "text": "step"}
    return {
        "boardId": board_id,
        "operations": [{"type": "create_shape", "data": shape}] * OPS_PER_REQUEST,
    }


def acceptance(workdir: Path, seconds: int) -> float:
    """Operations/s accepted by POST /api/batch (wrk, 16 connections)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRO_")}
    with started(["sandbox", "--port", "0"], env, "sandbox.serving") as miro_url:
        bridge = started(["serve"], bridge_env(workdir / "accept.db", miro_url), "service.serving")
        with bridge as url:
            board_id = connect(miro_url, url)
            httpx.post(f"{miro_url}/_admin/faults", json={"latency_ms": [3000, 3000]})
            script = batch_script(workdir / "batch.lua", batch_body(board_id))
            return wrk_batch(url, script, 16, seconds)


def batch_script(path: Path, body: object) -> Path:
    """A wrk script at `path` that posts `body` (as JSON) to `POST /api/batch` as USER."""
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-User-Id"] = "{USER}"\n'
    )
    return path


def wrk_batch(
    url: str, script: Path, connections: int, seconds: int, ops_per_request: int = OPS_PER_REQUEST
) -> float:
    """Operations/s accepted by `POST /api/batch` under wrk (pinned) running `script`."""
    out = subprocess.run(
        [
            *PIN_LOAD,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"{url}/api/batch",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    return float(out.split("Requests/sec:")[1].split()[0]) * ops_per_request


def huey_rate(workdir: Path, fsync: bool | None, seconds: float) -> float:
    """Operations/s that SqliteHuey enqueues: one task per 100 operations, one thread."""
    from huey import SqliteHuey

    kwargs = {} if fsync is None else {"fsync": fsync}
    huey = SqliteHuey(filename=str(workdir / f"huey-{fsync}.db"), **kwargs)

    @huey.task()
    def apply(operations: list[dict[str, object]]) -> None:
        del operations

    operations = batch_body("uXjVbench=")["operations"]
    assert isinstance(operations, list)
    count = 0
    started_at = time.perf_counter()
    while time.perf_counter() - started_at < seconds:
        apply(operations)
        count += 1
    return count * OPS_PER_REQUEST / (time.perf_counter() - started_at)


def drain(workdir: Path) -> tuple[float, int]:
    """Seconds to carry out 1,000 card creates on a 50,000-credit budget; 429s seen."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRO_")}
    sandbox = ["sandbox", "--port", "0", "--credits-per-minute", str(DRAIN_BUDGET)]
    with started(sandbox, env, "sandbox.serving") as miro_url:
        service = started(["serve"], bridge_env(workdir / "drain.db", miro_url), "service.serving")
        with service as url:
            board_id = connect(miro_url, url)
            with httpx.Client(base_url=url, headers={"X-User-Id": USER}, timeout=60) as bridge:
                begun = time.monotonic()
                job_ids = []
                for half in range(2):
                    cards = [{"title": f"card {half}-{n}"} for n in range(DRAIN_CARDS // 2)]
                    job_ids.append(
                        bridge.post(f"/api/cards?boardId={board_id}", json=cards).json()["jobId"]
                    )
                for job_id in job_ids:
                    while (status := bridge.get(f"/api/jobs/{job_id}").json()["status"]) in (
                        "pending",
                        "working",
                    ):
                        time.sleep(0.05)
                    if status != "done":
                        raise RuntimeError(f"job {job_id} ended {status}")
                elapsed = time.monotonic() - begun
            requests = httpx.get(f"{miro_url}/_admin/requests").json()["requests"]
            limited = sum(1 for r in requests if r["status"] == 429)
            return elapsed, limited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="miro-bench-"))
    try:
        ours = acceptance(workdir, args.seconds)
        huey_default = huey_rate(workdir, None, args.seconds)
        huey_durable = huey_rate(workdir, True, args.seconds)
        elapsed, limited = drain(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"(1) durable acceptance, {OPS_PER_REQUEST} operations per request/task, "
        f"{args.seconds}s each"
    )
    print(f"{'':<46}{'ops/s':>10}{'vs ours':>10}")
    for name, rate in (
        ("miro-bridge POST /api/batch (HTTP, wrk -c16)", ours),
        ("SqliteHuey enqueue, default (synchronous=OFF)", huey_default),
        ("SqliteHuey enqueue, fsync=True", huey_durable),
    ):
        print(f"{name:<46}{rate:>10.0f}{ours / rate:>10.2f}")
    floor = WINDOW
    print(f"(2) drain {DRAIN_CARDS} card creates, budget {DRAIN_BUDGET:,} credits/min")
    print(
        f"    actual {elapsed:.1f}s, floor {floor:.0f}s, ratio {elapsed / floor:.2f} "
        "(target <= 1.15)"
    )
    print(f"    429s at the sandbox: {limited} (target 0)")


if __name__ == "__main__":
    main()
