"""Serving a sandbox over HTTP with Hypercorn."""

from __future__ import annotations

import functools

import hypercorn.trio
import trio

from miro_bridge.http.serving import hypercorn_config, listen
from miro_bridge.sandbox._sandbox import Sandbox


async def serve(
    sandbox: Sandbox,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `sandbox.app` until cancelled; report the bound base URL, like `http://127.0.0.1:54321`.

    Port 0 lets the OS choose a free port; the reported URL carries the real one.
    """
    config = hypercorn_config(listen(host, port))
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            functools.partial(hypercorn.trio.serve, sandbox.app, config)
        )
        task_status.started(binds[0])


def serve_environment(sandbox_url: str) -> dict[str, str]:
    """The settings that point `miro-bridge serve` at a standalone sandbox, as at Miro.

    The default app's credentials, the sandbox's OAuth and REST URLs; the rest (database,
    redirect URI, encryption key) is the caller's.
    """
    return {
        "MIRO_CLIENT_ID": "sandbox-client",
        "MIRO_CLIENT_SECRET": "sandbox-secret",
        "MIRO_API_BASE_URL": sandbox_url,
        "MIRO_OAUTH_AUTHORIZE_URL": f"{sandbox_url}/oauth/authorize",
        "MIRO_OAUTH_TOKEN_URL": f"{sandbox_url}/v1/oauth/token",
    }
