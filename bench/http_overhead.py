"""What miro-bridge costs on top of its stack: `GET /health` against a bare Hypercorn-trio app.

Starts both servers (each pinned to CPU 0), drives each with wrk (pinned to CPU 1) in
alternating rounds so that machine noise hits both alike, and prints the median requests/s,
p50 and p99 of each and the ratio. Needs `wrk` (Debian: `apt-get install wrk`).

    .venv/bin/python bench/http_overhead.py [--rounds 10] [--seconds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIN_SERVER = ["taskset", "-c", "0"] if shutil.which("taskset") and os.cpu_count() != 1 else []
PIN_LOAD = ["taskset", "-c", "1"] if PIN_SERVER else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def server(command: list[str], port: int, env: dict[str, str]) -> Iterator[None]:
    process = subprocess.Popen(
        [*PIN_SERVER, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    try:
        wait_until_up(port)
        yield
    finally:
        process.terminate()
        process.wait(timeout=15)


def to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    """Requests/s, p50 ms and p99 ms of one wrk run."""
    out = subprocess.run(
        [*PIN_LOAD, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    percentiles = {
        p: to_ms(v, u) for p, v, u in re.findall(r"\s+(50|99)%\s+([\d.]+)(us|ms|s)\b", out)
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx responses")
    return rate, percentiles["50"], percentiles["99"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    bare_port, bridge_port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="miro-bench-"))
    env = {
        **os.environ,
        "MIRO_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "PORT": str(bridge_port),
    }
    bridge = [sys.executable, "-m", "miro_bridge", "serve", "--sandbox"]
    bare = [sys.executable, str(HERE / "_bare_app.py"), str(bare_port)]
    results: dict[str, list[tuple[float, float, float]]] = {"bare": [], "miro-bridge": []}
    with server(bare, bare_port, env), server(bridge, bridge_port, env):
        targets = {
            "bare": f"http://127.0.0.1:{bare_port}/health",
            "miro-bridge": f"http://127.0.0.1:{bridge_port}/health",
        }
        for url in targets.values():  # warm-up
            wrk(url, 1, args.connections)
        for _ in range(args.rounds):
            for name, url in targets.items():
                results[name].append(wrk(url, args.seconds, args.connections))
    shutil.rmtree(workdir, ignore_errors=True)

    def median(name: str, index: int) -> float:
        return statistics.median(run[index] for run in results[name])

    print(
        f"GET /health, {args.rounds} alternating rounds of {args.seconds}s, "
        f"{args.connections} connections, wrk -t1; medians"
    )
    print(f"{'server':<14}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name in results:
        print(f"{name:<14}{median(name, 0):>10.0f}{median(name, 1):>10.2f}{median(name, 2):>10.2f}")
    ratio = median("miro-bridge", 0) / median("bare", 0)
    paired = [b[0] / a[0] for a, b in zip(results["bare"], results["miro-bridge"], strict=True)]
    print(f"ratio of medians, miro-bridge / bare (req/s): {ratio:.2f}   target >= 0.85")
    print(
        f"median of per-round ratios: {statistics.median(paired):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in paired)})"
    )


if __name__ == "__main__":
    main()
