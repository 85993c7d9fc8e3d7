"""What the benchmark scripts share: ports, servers, wrk, and the comparison table."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIN_SERVER = ["taskset", "-c", "0"] if shutil.which("taskset") and os.cpu_count() != 1 else []
PIN_LOAD = ["taskset", "-c", "1"] if PIN_SERVER else []

Run = tuple[float, float, float]  # requests/s, p50 ms, p99 ms


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def server(
    command: list[str], port: int, env: dict[str, str], *, pinned: bool = True
) -> Iterator[None]:
    """Run a server (pinned to CPU 0 unless told otherwise) until the block ends."""
    pin = PIN_SERVER if pinned else []
    process = subprocess.Popen(
        [*pin, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    try:
        wait_until_up(port)
        yield
    finally:
        process.terminate()
        process.wait(timeout=15)


def bare_server(
    port: int, body_file: Path, env: dict[str, str]
) -> contextlib.AbstractContextManager[None]:
    """The ceiling: a bare ASGI app on Hypercorn-trio answering the bytes of `body_file`."""
    return server(
        [sys.executable, str(HERE / "_bare_app.py"), str(port), str(body_file)], port, env
    )


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    url: str,
    seconds: int,
    connections: int,
    headers: Sequence[str] = (),
    script: Path | None = None,
) -> Run:
    """Requests/s, p50 ms and p99 ms of one wrk run (wrk pinned to CPU 1); `script`: a Lua
    script that sets the request (method, body)."""
    header_args = [arg for header in headers for arg in ("-H", header)]
    if script is not None:
        header_args += ["-s", str(script)]
    out = subprocess.run(
        [
            *PIN_LOAD,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            *header_args,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx responses")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rate is not None, out
    percentiles = {
        p: _ms(v, u) for p, v, u in re.findall(r"\s+(50|99)%\s+([\d.]+)(us|ms|s)\b", out)
    }
    return float(rate.group(1)), percentiles["50"], percentiles["99"]


def compare(
    title: str,
    targets: dict[str, str],
    *,
    rounds: int,
    seconds: int,
    connections: int,
    headers: Sequence[str] = (),
    target_ratio: float,
) -> None:
    """Drive `targets` ({"bare": url, "miro-bridge": url, ...}) in alternating rounds.

    Prints a table, and the ratio to "bare" of every other target; `target_ratio` is the
    goal for "miro-bridge".
    """
    results: dict[str, list[Run]] = {name: [] for name in targets}
    for url in targets.values():  # warm-up
        wrk(url, 1, connections, headers)
    for _ in range(rounds):
        for name, url in targets.items():
            results[name].append(wrk(url, seconds, connections, headers))

    def median(name: str, index: int) -> float:
        return statistics.median(run[index] for run in results[name])

    print(
        f"{title}, {rounds} alternating rounds of {seconds}s, {connections} connections, "
        "wrk -t1; medians"
    )
    print(f"{'server':<20}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name in results:
        print(f"{name:<20}{median(name, 0):>10.0f}{median(name, 1):>10.2f}{median(name, 2):>10.2f}")
    for name in results:
        if name == "bare":
            continue
        ratio = median(name, 0) / median("bare", 0)
        paired = [b[0] / a[0] for a, b in zip(results["bare"], results[name], strict=True)]
        goal = f"   target >= {target_ratio}" if name == "miro-bridge" else ""
        print(f"ratio of medians, {name} / bare (req/s): {ratio:.2f}{goal}")
        print(
            f"  median of per-round ratios: {statistics.median(paired):.2f} "
            f"(rounds: {', '.join(f'{r:.2f}' for r in paired)})"
        )
