"""The ceiling of this stack: a bare ASGI app on Hypercorn's trio worker.

It answers every request with fixed bytes (by default those of miro-bridge's `GET /health`,
or the contents of a file; `-`: none) and status (200 unless given), after reading the body
of any request but a GET, so the only difference a benchmark sees is what miro-bridge adds.

    python bench/_bare_app.py PORT [BODY_FILE|-] [STATUS]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hypercorn.config
import hypercorn.trio
import trio

BODY = (
    (b"" if sys.argv[2] == "-" else Path(sys.argv[2]).read_bytes())
    if len(sys.argv) > 2
    else b'{"status":"ok"}'
)
STATUS = int(sys.argv[3]) if len(sys.argv) > 3 else 200
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] != "GET":
        while (await receive()).get("more_body", False):
            pass
    await send({"type": "http.response.start", "status": STATUS, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{sys.argv[1]}"]
    config.accesslog = None
    trio.run(hypercorn.trio.serve, app, config)
