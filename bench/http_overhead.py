"""What miro-bridge costs on top of its stack: `GET /health` against a bare Hypercorn-trio app.

Starts the servers (each pinned to CPU 0), drives each with wrk (pinned to CPU 1) in
alternating rounds so that machine noise hits all alike, and prints the median requests/s,
p50 and p99 of each and their ratios to the bare app. A third server is miro-bridge with
tracing on (a server span per request, exported over OTLP/HTTP to a sink that answers 200),
to show what tracing costs. Needs `wrk` (Debian: `apt-get install wrk`).

    .venv/bin/python bench/http_overhead.py [--rounds 10] [--seconds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import bare_server, compare, free_port, require_wrk, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    require_wrk()
    bare_port, bridge_port, traced_port, sink_port = (free_port() for _ in range(4))
    workdir = Path(tempfile.mkdtemp(prefix="miro-bench-"))
    body = workdir / "health.json"
    body.write_bytes(b'{"status":"ok"}')
    empty = workdir / "empty"  # an empty protobuf message: a valid OTLP export response
    empty.write_bytes(b"")
    env = {
        **os.environ,
        "MIRO_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "PORT": str(bridge_port),
    }
    traced_env = {
        **env,
        "MIRO_DATABASE_URL": f"sqlite:///{workdir}/traced.db",
        "PORT": str(traced_port),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
    }
    bridge = [sys.executable, "-m", "miro_bridge", "serve", "--sandbox"]
    try:
        with (
            bare_server(bare_port, body, env),
            bare_server(sink_port, empty, env),
            server(bridge, bridge_port, env),
            server(bridge, traced_port, traced_env),
        ):
            compare(
                "GET /health",
                {
                    "bare": f"http://127.0.0.1:{bare_port}/health",
                    "miro-bridge": f"http://127.0.0.1:{bridge_port}/health",
                    "miro-bridge traced": f"http://127.0.0.1:{traced_port}/health",
                },
                rounds=args.rounds,
                seconds=args.seconds,
                connections=args.connections,
                target_ratio=0.9,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
