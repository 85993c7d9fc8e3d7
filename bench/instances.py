"""Several instances on PostgreSQL: does a second worker add throughput, and what does
PostgreSQL cost durable acceptance next to SQLite?

(1) Hot `GET /api/cache/{id}` (a board of 50 shapes) on PostgreSQL: `serve` (one process)
    against `serve --workers 2` (two processes on one port), both up at once on one database,
    in alternating wrk rounds (target: two workers >= 1.6x one).
(2) `POST /api/batch` with 10 operations per request (durable: the 202 comes after the
    commit): the service on PostgreSQL against the same service on SQLite, alternating
    rounds, in operations/s (target: PostgreSQL >= 0.8 of SQLite). The sandbox answers
    slowly meanwhile, so the workers wait and the measure is of acceptance.
(3) Drain: 1,000 card creates, half sent through each of two instances, on one user's
    budget of 50,000 credits a minute. 100,000 credits need two of Miro's one-minute
    windows: no less than 60 s. Reported: actual time / 60 s (target <= 1.05) and the 429s
    the sandbox answered (target 0): the instances share one budget, never spend two.

Nothing is pinned: two workers need both cores, and wrk shares them (on a 2-core machine the
load generator takes about a core of its own, which caps what a second worker can add).
Needs `wrk` and a PostgreSQL server (`MIRO_BENCH_POSTGRES_URL`, default the local one).

    .venv/bin/python bench/instances.py [--rounds 6] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from _common import free_port, require_wrk, server, wrk
from miro_bridge.sandbox import serve_environment

USER = "3458764500000000001"
ITEMS = 50
OPS_PER_REQUEST = 10
DRAIN_CARDS = 1_000
DRAIN_BUDGET = 50_000
SERVER = os.environ.get("MIRO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for the run; its URL. Dropped afterwards."""
    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(SERVER)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(SERVER, autocommit=True) as connection:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(drop.format(sql.Identifier(name)))


@contextmanager
def process(args: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    """`python -m miro_bridge ARGS` on `port`, not pinned, until the block ends; its URL."""
    command = [sys.executable, "-m", "miro_bridge", *args]
    with server(command, port, {**env, "PORT": str(port)}, pinned=False):
        yield f"http://127.0.0.1:{port}"


def service_env(database_url: str, miro_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIRO_", "OTEL_"))}
    return {
        **env,
        **serve_environment(miro_url),
        "MIRO_DATABASE_URL": database_url,
        "MIRO_OAUTH_REDIRECT_URI": "http://127.0.0.1/oauth/callback",
        "MIRO_ALLOW_PLAINTEXT_TOKENS": "true",
        "MIRO_LOG_LEVEL": "warning",
    }


def board_of_shapes(miro_url: str) -> tuple[str, str]:
    """A board of 50 shapes owned by USER at the sandbox; its id and USER's token."""
    with httpx.Client(base_url=miro_url, timeout=30) as client:
        token = client.post("/_admin/tokens", json={"user_id": USER}).json()["access_token"]
        board_id = client.post("/_admin/boards", json={"owner": USER}).json()["id"]
        for n in range(ITEMS):
            body = {
                "data": {"shape": "round_rectangle", "content": f"Step {n}"},
                "position": {"x": n * 120.0, "y": 0.0},
                "geometry": {"width": 100.0, "height": 60.0},
            }
            created = client.post(
                f"/v2/boards/{board_id}/shapes",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
            created.raise_for_status()
    return str(board_id), str(token)


def register(url: str, token: str) -> None:
    httpx.post(f"{url}/api/users", json={"id": USER, "access_token": token}).raise_for_status()


def alternate(
    targets: dict[str, str],
    rounds: int,
    seconds: int,
    headers: list[str],
    script: Path | None = None,
) -> dict[str, list[float]]:
    """Requests/s of each target (wrk -c32), round after round."""
    for url in targets.values():
        wrk(url, 1, 32, headers, script)
    results: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, url in targets.items():
            results[name].append(wrk(url, seconds, 32, headers, script)[0])
    return results


def report(title: str, results: dict[str, list[float]], unit: float, target: float) -> None:
    (base, base_rates), (name, rates) = results.items()
    print(title)
    for label, runs in results.items():
        print(f"  {label:<32}{statistics.median(runs) * unit:>10.0f}/s (median)")
    paired = [b / a for a, b in zip(base_rates, rates, strict=True)]
    ratio = statistics.median(rates) / statistics.median(base_rates)
    print(f"  ratio of medians, {name} / {base}: {ratio:.2f}   target >= {target}")
    print(f"  per-round ratios: {', '.join(f'{r:.2f}' for r in paired)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument(
        "--part", type=int, action="append", choices=(1, 2, 3), help="run only this part"
    )
    args = parser.parse_args()
    parts = set(args.part or (1, 2, 3))
    require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="miro-bench-"))
    plain = {k: v for k, v in os.environ.items() if not k.startswith("MIRO_")}
    rounds = f"{args.rounds} alternating rounds of {args.seconds}s, wrk -t1 -c32"
    try:
        with (
            process(["sandbox", "--port", str(port := free_port())], plain, port) as miro_url,
            database() as postgres,
        ):
            board_id, token = board_of_shapes(miro_url)
            env = service_env(postgres, miro_url)
            if 1 in parts:
                reads = hot_reads(env, board_id, token, args.rounds, args.seconds)
                report(f"(1) hot GET /api/cache/{{id}} on PostgreSQL, {rounds}", reads, 1, 1.6)
            if 2 in parts:
                sqlite_env = service_env(f"sqlite:///{workdir / 'accept.db'}", miro_url)
                accepts = acceptance(
                    sqlite_env, env, miro_url, board_id, token, workdir, args.rounds, args.seconds
                )
                report(
                    f"(2) POST /api/batch, {OPS_PER_REQUEST} ops per request, durable, {rounds} "
                    "(operations)",
                    accepts,
                    OPS_PER_REQUEST,
                    0.8,
                )
        if 3 in parts:
            elapsed, limited = drain(plain)
            print(
                f"(3) drain {DRAIN_CARDS} cards through two instances, {DRAIN_BUDGET:,} credits/min"
            )
            print(f"  actual {elapsed:.1f}s, floor 60s, ratio {elapsed / 60:.2f} (target <= 1.05)")
            print(f"  429s at the sandbox: {limited} (target 0)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def hot_reads(
    env: dict[str, str], board_id: str, token: str, rounds: int, seconds: int
) -> dict[str, list[float]]:
    """(1): one process against `--workers 2`, on one database."""
    one_port, two_port = free_port(), free_port()
    with (
        process(["serve", "--port", str(one_port)], env, one_port) as one,
        process(["serve", "--port", str(two_port), "--workers", "2"], env, two_port) as two,
    ):
        register(one, token)
        path = f"/api/cache/{board_id}"
        for _ in range(20):  # every worker has read the board, and confirmed access
            for url in (one, two):
                httpx.get(url + path, headers={"X-User-Id": USER}).raise_for_status()
        return alternate(
            {"serve (1 process)": one + path, "serve --workers 2": two + path},
            rounds,
            seconds,
            [f"X-User-Id: {USER}"],
        )


def acceptance(
    sqlite_env: dict[str, str],
    env: dict[str, str],
    miro_url: str,
    board_id: str,
    token: str,
    workdir: Path,
    rounds: int,
    seconds: int,
) -> dict[str, list[float]]:
    """(2): durable `POST /api/batch` on SQLite against PostgreSQL."""
    lite_port, pg_port = free_port(), free_port()
    with (
        process(["serve", "--port", str(lite_port)], sqlite_env, lite_port) as lite,
        process(["serve", "--port", str(pg_port)], env, pg_port) as pg,
    ):
        register(lite, token)
        register(pg, token)
        httpx.post(f"{miro_url}/_admin/faults", json={"latency_ms": [5000, 5000]})
        script = workdir / "batch.lua"
        shape = {"shape": "rectangle", "x": 0, "y": 0, "width": 100, "height": 60}
        body = {
            "boardId": board_id,
            "operations": [{"type": "create_shape", "data": shape}] * OPS_PER_REQUEST,
        }
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["X-User-Id"] = "{USER}"\n'
        )
        results = alternate(
            {"SQLite": lite + "/api/batch", "PostgreSQL": pg + "/api/batch"},
            rounds,
            seconds,
            [],
            script,
        )
        httpx.post(f"{miro_url}/_admin/faults", json={"latency_ms": [0, 0]})
        return results


def drain(plain: dict[str, str]) -> tuple[float, int]:
    """Seconds two instances take to create 1,000 cards on a 50,000-credit budget; 429s."""
    port = free_port()
    sandbox = ["sandbox", "--port", str(port), "--credits-per-minute", str(DRAIN_BUDGET)]
    with process(sandbox, plain, port) as miro_url, database() as postgres:
        with httpx.Client(base_url=miro_url, timeout=30) as client:
            token = client.post("/_admin/tokens", json={"user_id": USER}).json()["access_token"]
            board_id = client.post("/_admin/boards", json={"owner": USER}).json()["id"]
        env = service_env(postgres, miro_url)
        a_port, b_port = free_port(), free_port()
        with (
            process(["serve", "--port", str(a_port)], env, a_port) as a,
            process(["serve", "--port", str(b_port)], env, b_port) as b,
        ):
            register(a, token)
            begun = time.monotonic()
            jobs = []
            for half, url in enumerate((a, b)):
                cards = [{"title": f"card {half}-{n}"} for n in range(DRAIN_CARDS // 2)]
                accepted = httpx.post(
                    f"{url}/api/cards?boardId={board_id}",
                    json=cards,
                    headers={"X-User-Id": USER},
                    timeout=30,
                )
                jobs.append((url, accepted.json()["jobId"]))
            for url, job_id in jobs:
                while (
                    status := httpx.get(
                        f"{url}/api/jobs/{job_id}", headers={"X-User-Id": USER}
                    ).json()["status"]
                ) in ("pending", "working"):
                    time.sleep(0.05)
                if status != "done":
                    raise RuntimeError(f"job {job_id} ended {status}")
            elapsed = time.monotonic() - begun
        requests = httpx.get(f"{miro_url}/_admin/requests").json()["requests"]
        return elapsed, sum(1 for r in requests if r["status"] == 429)


if __name__ == "__main__":
    main()
