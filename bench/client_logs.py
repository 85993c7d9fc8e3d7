"""`POST /api/logs`, 10 entries per request: entries/s, against a bare app taking the same posts.

Starts `miro-bridge serve --sandbox` (per-caller limits raised so that the bench measures
the work, not the 429s; its log lines go to /dev/null, rendered all the same), then drives
it and a bare Hypercorn-trio app with the same POST in alternating wrk rounds (servers on
CPU 0, wrk on CPU 1). The bare app answers 202 after reading the body, with no work. Needs `wrk`.

    .venv/bin/python bench/client_logs.py [--rounds 10] [--seconds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _common import HERE, Run, free_port, require_wrk, server, wrk

USER = "3458764500000000001"
ENTRIES = 10


def body() -> bytes:
    """Ten entries as the Node client posts them."""
    entries = [
        {
            "timestamp": f"2026-11-30T10:00:{n:02d}.123Z",
            "level": ("info", "warn", "error", "debug")[n % 4],
            "message": f"board loader: fetched shapes (attempt {n})",
            "context": {"boardId": "uXjVzSZiFU4=", "items": 50 + n, "ms": 12.5},
        }
        for n in range(ENTRIES)
    ]
    return json.dumps(entries).encode()


def lua(payload: bytes) -> str:
    quoted = payload.decode().replace("\\", "\\\\").replace('"', '\\"')
    return (
        'wrk.method = "POST"\n'
        f'wrk.body = "{quoted}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-User-Id"] = "{USER}"\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    require_wrk()
    bare_port, bridge_port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="miro-bench-"))
    script = workdir / "post.lua"
    script.write_text(lua(body()))
    env = {
        **os.environ,
        "MIRO_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "PORT": str(bridge_port),
        "MIRO_LOG_RATE_PER_MINUTE": str(10**9),
        "MIRO_LOG_QUOTA_BYTES": str(10**15),
    }
    bridge = [sys.executable, "-m", "miro_bridge", "serve", "--sandbox"]
    bare = [sys.executable, str(HERE / "_bare_app.py"), str(bare_port), "-", "202"]
    targets = {
        "bare": f"http://127.0.0.1:{bare_port}/api/logs",
        "miro-bridge": f"http://127.0.0.1:{bridge_port}/api/logs",
    }
    results: dict[str, list[Run]] = {name: [] for name in targets}
    try:
        with server(bare, bare_port, env), server(bridge, bridge_port, env):
            for url in targets.values():  # warm-up
                wrk(url, 1, args.connections, script=script)
            for _ in range(args.rounds):
                for name, url in targets.items():
                    results[name].append(wrk(url, args.seconds, args.connections, script=script))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def median(name: str, index: int) -> float:
        return statistics.median(run[index] for run in results[name])

    print(
        f"POST /api/logs, {ENTRIES} entries per request, {args.rounds} alternating rounds of "
        f"{args.seconds}s, {args.connections} connections, wrk -t1; medians"
    )
    print(f"{'server':<20}{'req/s':>10}{'entries/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    for name in results:
        rate = median(name, 0)
        print(
            f"{name:<20}{rate:>10.0f}{rate * ENTRIES:>12.0f}"
            f"{median(name, 1):>10.2f}{median(name, 2):>10.2f}"
        )
    ours = [run[0] * ENTRIES for run in results["miro-bridge"]]
    print(
        f"miro-bridge entries/s: median {statistics.median(ours):.0f}   target >= 20000"
        f"   (rounds: {', '.join(f'{r:.0f}' for r in ours)})"
    )
    ratio = median("miro-bridge", 0) / median("bare", 0)
    paired = [b[0] / a[0] for a, b in zip(results["bare"], results["miro-bridge"], strict=True)]
    print(f"ratio of medians, miro-bridge / bare (req/s): {ratio:.2f}")
    print(
        f"  median of per-round ratios: {statistics.median(paired):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in paired)})"
    )


if __name__ == "__main__":
    main()
