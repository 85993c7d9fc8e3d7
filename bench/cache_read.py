"""Hot board reads: `GET /api/cache/{id}` (50 items, about 33 KB) and `GET .../tags`
against a bare app.

Starts `miro-bridge serve --sandbox`, sets up a board of 50 shapes and 5 tags at the sandbox
and a user with a token, warms the cache with one read, then compares each hot read against
a bare Hypercorn-trio app answering the very same bytes, in alternating wrk rounds (server
on CPU 0, wrk on CPU 1). Needs `wrk`.

    .venv/bin/python bench/cache_read.py [--rounds 10] [--seconds 3] [--connections 32]
        [--only cache|tags]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import httpx

from _common import bare_server, compare, free_port, require_wrk, server

USER = "3458764500000000001"
ITEMS = 50
TAGS = ("urgent", "later", "blocked", "review", "done")


def set_up_board(base: str) -> tuple[str, bytes]:
    """A board of 50 shapes and 5 tags owned by USER, read once through the cache; its id
    and bytes."""
    with httpx.Client(base_url=base, timeout=30) as client:
        tokens = client.post("/_sandbox/_admin/tokens", json={"user_id": USER}).json()
        board_id = client.post(
            "/_sandbox/_admin/boards", json={"owner": USER, "name": "Bench"}
        ).json()["id"]
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        for n in range(ITEMS):
            body = {
                "data": {
                    "shape": "round_rectangle",
                    "content": f"Step {n}",
                },
                "style": {"fillColor": "#fef445", "fontSize": "14"},
                "position": {"x": n * 120.0, "y": (n % 5) * 80.0},
                "geometry": {"width": 100.0, "height": 60.0},
            }
            created = client.post(f"/_sandbox/v2/boards/{board_id}/shapes", json=body, headers=auth)
            created.raise_for_status()
        for title in TAGS:
            tag = {"title": title, "fillColor": "red"}
            client.post(
                f"/_sandbox/v2/boards/{board_id}/tags", json=tag, headers=auth
            ).raise_for_status()
        client.post(
            "/api/users", json={"id": USER, "access_token": tokens["access_token"]}
        ).raise_for_status()
        first = client.get(f"/api/cache/{board_id}", headers={"X-User-Id": USER})
        first.raise_for_status()
        return board_id, first.content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", choices=("cache", "tags"))
    args = parser.parse_args()
    require_wrk()
    bare_port, bridge_port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="miro-bench-"))
    env = {
        **os.environ,
        "MIRO_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "PORT": str(bridge_port),
    }
    bridge = [sys.executable, "-m", "miro_bridge", "serve", "--sandbox"]
    try:
        with server(bridge, bridge_port, env):
            board_id, body = set_up_board(f"http://127.0.0.1:{bridge_port}")
            (workdir / "board.json").write_bytes(body)
            print(f"board {board_id}: {ITEMS} items, {len(body):,} bytes")
            base = f"http://127.0.0.1:{bridge_port}"
            tags = httpx.get(f"{base}/api/boards/{board_id}/tags", headers={"X-User-Id": USER})
            (workdir / "tags.json").write_bytes(tags.content)
            reads = {
                "cache": ("GET /api/cache/{id} (hot)", f"/api/cache/{board_id}", 0.9),
                "tags": ("GET /api/boards/{id}/tags (hot)", f"/api/boards/{board_id}/tags", 0.85),
            }
            for name, (title, path, target) in reads.items():
                if args.only not in (None, name):
                    continue
                if name == "tags":
                    print(f"tags: {len(TAGS)} tags, {len(tags.content):,} bytes")
                with bare_server(
                    bare_port, workdir / f"{'board' if name == 'cache' else name}.json", env
                ):
                    compare(
                        title,
                        {
                            "bare": f"http://127.0.0.1:{bare_port}{path}",
                            "miro-bridge": f"{base}{path}",
                        },
                        rounds=args.rounds,
                        seconds=args.seconds,
                        connections=args.connections,
                        headers=[f"X-User-Id: {USER}"],
                        target_ratio=target,
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
