"""The ceiling of this stack: a bare ASGI app on Hypercorn's trio worker.

It answers every request with fixed bytes (by default those of miro-bridge's `GET /health`,
or the contents of a file), so the only difference a benchmark sees is what miro-bridge adds.

    python bench/_bare_app.py PORT [BODY_FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hypercorn.config
import hypercorn.trio
import trio

BODY = Path(sys.argv[2]).read_bytes() if len(sys.argv) > 2 else b'{"status":"ok"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{sys.argv[1]}"]
    config.accesslog = None
    trio.run(hypercorn.trio.serve, app, config)
