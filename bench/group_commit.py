"""Durable acceptance under concurrency: does group commit group? (issue 16)

`POST /api/batch` with 10 operations per request (each request one durable job, on disk
before its 202), driven by wrk at 8 and at 32 connections, in operations/s; against Huey's
`SqliteHuey(fsync=True)` enqueue on a file in the same directory (one producer thread, one
task per `enqueue` call, in tasks/s), pinned to the server's core. Rounds alternate between
the three. The sandbox answers slowly (3 s), so the workers mostly wait: this measures
acceptance, not execution. After each round of ours, the commit group sizes of that round
(`store_commit_group_size` from `/metrics`: mean, and the share of writes in groups of 1).

    .venv/bin/python bench/group_commit.py [--rounds 5] [--seconds 3] [--baseline-src DIR]

`--baseline-src DIR` also runs the service from another source tree (say `git archive` of an
earlier commit's `src/`, unpacked in DIR) at -c32, in the same rounds: before and after.

Targets: ours at -c32 >= 2x Huey's tasks/s, and higher at -c32 than at -c8.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from _common import PIN_SERVER, require_wrk
from job_queue import batch_script, bridge_env, connect, started, wrk_batch

OPS_PER_REQUEST = 10

HUEY = """
import sys, time
from huey import SqliteHuey
huey = SqliteHuey(filename=sys.argv[1], fsync=True)
@huey.task()
def apply(operations):
    del operations
shape = {"shape": "rectangle", "x": 0, "y": 0, "width": 100, "height": 60, "text": "step"}
operations = [{"type": "create_shape", "data": shape}] * int(sys.argv[3])
seconds = float(sys.argv[2])
count = 0
began = time.perf_counter()
while time.perf_counter() - began < seconds:
    apply(operations)
    count += 1
print(count / (time.perf_counter() - began))
"""


def huey_tasks_per_second(workdir: Path, seconds: int) -> float:
    """SqliteHuey(fsync=True) enqueues per second: one thread, pinned to the server's core."""
    database = workdir / "huey.db"
    out = subprocess.run(
        [*PIN_SERVER, sys.executable, "-c", HUEY, str(database), str(seconds), "10"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip())


def group_histogram(url: str) -> dict[float, float]:
    """`store_commit_group_size` buckets (cumulative counts by upper bound), with +Inf."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    buckets: dict[float, float] = {}
    for bound, count in re.findall(
        r'^store_commit_group_size_bucket\{le="([^"]+)"\} ([\d.e+]+)$', text, re.M
    ):
        buckets[float(bound)] = float(count)
    for name in ("sum", "count"):
        match = re.search(rf"^store_commit_group_size_{name} ([\d.e+]+)$", text, re.M)
        buckets[{"sum": -1.0, "count": -2.0}[name]] = float(match.group(1)) if match else 0.0
    return buckets


def describe_groups(before: dict[float, float], after: dict[float, float]) -> str:
    """Groups of one round: how many, their mean size, the largest bucket reached."""
    groups = after.get(-2.0, 0.0) - before.get(-2.0, 0.0)
    writes = after.get(-1.0, 0.0) - before.get(-1.0, 0.0)
    if groups <= 0:
        return "no groups"
    ones = after.get(1.0, 0.0) - before.get(1.0, 0.0)
    bounds = sorted(b for b in after if b > 0)
    median_bound = next(
        (b for b in bounds if after[b] - before.get(b, 0.0) >= groups / 2), float("inf")
    )
    return (
        f"{groups:.0f} groups, mean {writes / groups:.1f} writes, "
        f"median <= {median_bound:g}, singles {ones / groups:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, default=None)
    args = parser.parse_args()
    require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="miro-bench-", dir=os.environ.get("BENCH_DIR")))
    results: dict[str, list[float]] = {"-c8": [], "-c32": [], "huey": [], "baseline": []}
    groups: dict[str, list[str]] = {"-c8": [], "-c32": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRO_")}
    try:
        with contextlib.ExitStack() as stack:
            sandbox = started(["sandbox", "--port", "0"], env, "sandbox.serving")
            miro_url = stack.enter_context(sandbox)
            bridge = started(
                ["serve"], bridge_env(workdir / "accept.db", miro_url), "service.serving"
            )
            url = stack.enter_context(bridge)
            board_id = connect(miro_url, url)
            baseline = None
            if args.baseline_src is not None:
                baseline_env = bridge_env(workdir / "baseline.db", miro_url)
                baseline_env["PYTHONPATH"] = str(args.baseline_src.resolve())
                baseline = stack.enter_context(started(["serve"], baseline_env, "service.serving"))
                connect(miro_url, baseline)
            if True:
                httpx.post(f"{miro_url}/_admin/faults", json={"latency_ms": [3000, 3000]})
                shape = {"shape": "rectangle", "x": 0, "y": 0, "width": 100, "height": 60}
                body = {
                    "boardId": board_id,
                    "operations": [{"type": "create_shape", "data": shape}] * OPS_PER_REQUEST,
                }
                script = batch_script(workdir / "batch.lua", body)
                wrk_batch(url, script, 8, 1, OPS_PER_REQUEST)  # warm-up
                for _ in range(args.rounds):
                    for connections in (8, 32):
                        name = f"-c{connections}"
                        before = group_histogram(url)
                        results[name].append(
                            wrk_batch(url, script, connections, args.seconds, OPS_PER_REQUEST)
                        )
                        groups[name].append(describe_groups(before, group_histogram(url)))
                    if baseline is not None:
                        results["baseline"].append(
                            wrk_batch(baseline, script, 32, args.seconds, OPS_PER_REQUEST)
                        )
                    results["huey"].append(huey_tasks_per_second(workdir, args.seconds))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    huey = statistics.median(results["huey"])
    print(
        f"POST /api/batch, {OPS_PER_REQUEST} ops/request, durable; {args.rounds} alternating "
        f"rounds of {args.seconds}s; server and Huey on CPU 0, wrk -t1 on CPU 1; medians"
    )
    print(f"{'':<44}{'rate':>10}{'vs Huey':>10}")
    for name, label in (
        ("-c8", "miro-bridge, wrk -c8 (ops/s)"),
        ("-c32", "miro-bridge, wrk -c32 (ops/s)"),
        ("huey", "SqliteHuey fsync=True enqueue (tasks/s)"),
    ):
        rate = statistics.median(results[name])
        print(f"{label:<44}{rate:>10.0f}{rate / huey:>10.2f}")
    if results["baseline"]:
        rate = statistics.median(results["baseline"])
        label = f"baseline ({args.baseline_src}), -c32 (ops/s)"
        print(f"{label:<44}{rate:>10.0f}{rate / huey:>10.2f}")
    c8, c32 = statistics.median(results["-c8"]), statistics.median(results["-c32"])
    print(f"-c32 / Huey: {c32 / huey:.2f} (target >= 2); -c32 / -c8: {c32 / c8:.2f} (target > 1)")
    for name in ("-c8", "-c32", "huey", "baseline"):
        if results[name]:
            print(f"  {name} rounds: {', '.join(f'{r:.0f}' for r in results[name])}")
    print("commit groups per round (store_commit_group_size):")
    for name in ("-c8", "-c32"):
        for line in groups[name]:
            print(f"  {name}: {line}")


if __name__ == "__main__":
    main()
