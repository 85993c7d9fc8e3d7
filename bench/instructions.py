"""Instructions per request, miro-bridge against the bare app, counted by callgrind.

The wall-clock scripts alternate rounds because these machines are noisy: on a shared VM two
identical bare apps measured side by side differ by 10-30% from one round to the next. This
script counts instead. Each server runs under valgrind's callgrind (pinned to CPU 0), counting
only while a fixed number of GETs is sent over kept-alive HTTP/1.1 connections, every one of
them answered, so the figure is the same from run to run whatever else the machine is doing.
It says how much work a request costs, not how fast the machine runs it: the kernel's share,
caches and branch prediction are not in it. Needs valgrind (`apt-get install valgrind`);
takes a few minutes (Python under callgrind runs about 50 times slower).

    .venv/bin/python bench/instructions.py [--requests 600] [--connections 32]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import HERE, PIN_SERVER, free_port, wait_until_up
from cache_read import USER, set_up_board

TOOLS = ("valgrind", "callgrind_control")


class Counted:
    """A server running under callgrind, its instructions counted only while asked."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, out: Path) -> None:
        self._process = process
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self._out = out
        self._dumps = 0

    def per_request(self, path: str, requests: int, connections: int) -> int:
        """Instructions per `GET path` (as USER), over `requests` of them, after a warm-up."""
        get_many(self.port, path, 100, connections)
        self._control("-z")  # nothing of the warm-up
        self._control("-i", "on")
        get_many(self.port, path, requests, connections)
        self._control("-i", "off")
        self._control("-d")
        self._dumps += 1
        dump = Path(f"{self._out}.{self._dumps}")
        totals = next(line for line in dump.read_text().splitlines() if line.startswith("totals:"))
        return int(totals.split()[1]) // requests

    def _control(self, *args: str) -> None:
        subprocess.run(
            ["callgrind_control", *args, str(self._process.pid)], check=True, capture_output=True
        )


def get_many(port: int, path: str, requests: int, connections: int) -> None:
    """`requests` GETs of `path` (as USER) over `connections` kept-alive HTTP/1.1 connections,
    every one answered 200 and read whole."""

    def one_connection(count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            for _ in range(count):
                connection.request("GET", path, headers={"X-User-Id": USER})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status}")
        finally:
            connection.close()

    shares = [requests // connections + (i < requests % connections) for i in range(connections)]
    with ThreadPoolExecutor(connections) as pool:
        for done in [pool.submit(one_connection, share) for share in shares if share]:
            done.result()


@contextlib.contextmanager
def counted(command: Sequence[str], port: int, env: dict[str, str], out: Path) -> Iterator[Counted]:
    """Run `command` (listening on `port`) under callgrind until the block ends."""
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    process = subprocess.Popen(
        [*PIN_SERVER, *valgrind, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_until_up(port, timeout=600)
        yield Counted(process, port, out)
    finally:
        process.terminate()
        process.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        sys.exit(f"needed: {', '.join(missing)} (apt-get install valgrind)")
    n, c = args.requests, args.connections
    workdir = Path(tempfile.mkdtemp(prefix="miro-bench-"))
    try:
        port = free_port()
        database = f"sqlite:///{workdir}/bench.db"
        env = {**os.environ, "MIRO_DATABASE_URL": database, "PORT": str(port)}
        bridge = [sys.executable, "-m", "miro_bridge", "serve", "--sandbox"]
        with counted(bridge, port, env, workdir / "bridge") as server:
            board_id, body = set_up_board(server.base)
            cache_path = f"/api/cache/{board_id}"
            ours = {"/health": server.per_request("/health", n, c)}
            ours[cache_path] = server.per_request(cache_path, n, c)
        (workdir / "cache.json").write_bytes(body)
        bare = {}
        # The bare app answers the bytes of /health unless given a file.
        for path, body_file in (("/health", []), (cache_path, [str(workdir / "cache.json")])):
            port = free_port()
            app = [sys.executable, str(HERE / "_bare_app.py"), str(port), *body_file]
            with counted(app, port, env, workdir / f"bare-{port}") as server:
                bare[path] = server.per_request(path, n, c)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"instructions per request (callgrind), {n} GETs over {c} kept-alive connections")
    print(f"{'request':34s} {'bare':>11s} {'miro-bridge':>12s} {'bare / ours':>12s}")
    for path, title in (("/health", "GET /health"), (cache_path, "hot GET /api/cache/{id}")):
        print(f"{title:34s} {bare[path]:11,d} {ours[path]:12,d} {bare[path] / ours[path]:12.3f}")


if __name__ == "__main__":
    main()
