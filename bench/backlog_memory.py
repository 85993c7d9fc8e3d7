"""Memory with a job backlog: the server's RSS after 200,000 queued operations (issue 16).

The service runs against the sandbox answering slowly (3 s a call), so what is enqueued stays
queued; 200,000 shape creates are enqueued through `POST /api/batch` (500 per request, a few
requests at a time), then the server's `VmRSS` (from `/proc/<pid>/status`) is read: idle
before, right after, and after a few seconds (target: at most 100 MB).

    .venv/bin/python bench/backlog_memory.py [--operations 200000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from job_queue import USER, bridge_env, connect, service

PER_REQUEST = 500
#: Idle connections are dropped before the server's keep-alive timeout (5 s) can close one
#: under a request being sent on it.
KEEP_ALIVE = httpx.Limits(keepalive_expiry=1.0)
TARGET_MB = 100


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` in MB (MiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=200_000)
    parser.add_argument("--per-request", type=int, default=PER_REQUEST)
    parser.add_argument(
        "--working",
        action="store_true",
        help="the sandbox answers at once on a budget of 50,000 credits/min: the workers run",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="miro-bench-", dir=os.environ.get("BENCH_DIR")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRO_")}
    try:
        sandbox = ["sandbox", "--port", "0"]
        if args.working:
            sandbox += ["--credits-per-minute", "50000"]
        with service(sandbox, env, "sandbox.serving") as (miro_url, _):
            bridge = service(["serve"], bridge_env(workdir / "b.db", miro_url), "service.serving")
            with bridge as (url, pid):
                board_id = connect(miro_url, url)
                if not args.working:
                    httpx.post(f"{miro_url}/_admin/faults", json={"latency_ms": [3000, 3000]})
                idle = rss_mb(pid)
                shape = {"shape": "rectangle", "x": 0, "y": 0, "width": 100, "height": 60}
                body = {
                    "boardId": board_id,
                    "operations": [{"type": "create_shape", "data": shape}] * args.per_request,
                }
                requests = args.operations // args.per_request
                began = time.monotonic()
                with httpx.Client(
                    base_url=url, headers={"X-User-Id": USER}, timeout=120, limits=KEEP_ALIVE
                ) as client:

                    def post(_: int) -> None:
                        client.post("/api/batch", json=body).raise_for_status()

                    with ThreadPoolExecutor(8) as pool:
                        list(pool.map(post, range(requests)))
                took = time.monotonic() - began
                after = rss_mb(pid)
                time.sleep(5)
                settled = rss_mb(pid)
                queued = httpx.get(
                    f"{url}/api/limits", headers={"X-User-Id": USER}, timeout=30
                ).json()["queue_length"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = requests * args.per_request
    print(f"backlog of {total:,} operations ({requests} requests of {args.per_request})")
    print(f"  enqueued in {took:.1f}s; queue length afterwards {queued:,}")
    print(
        f"  server VmRSS: idle {idle:.0f} MB, after enqueuing {after:.0f} MB, "
        f"5 s later {settled:.0f} MB"
    )
    verdict = "met" if max(after, settled) <= TARGET_MB else "NOT met"
    print(f"  target <= {TARGET_MB} MB: {verdict}")


if __name__ == "__main__":
    main()
