"""The whole service in one Trio task: the supervised actors, then HTTP on top.

Start-up: the supervisor starts every actor (each ready before the next), then Hypercorn
binds and serves. Shutdown (when `shutdown` is set): Hypercorn stops accepting and gives
in-flight requests `HTTP_GRACE_SECONDS`; then the actors drain their mailboxes in reverse
order within `ACTOR_GRACE_SECONDS`; then the database closes. Together well within 10 s.
"""

from __future__ import annotations

import functools
import gc
import logging
from typing import cast

import hypercorn.config
import hypercorn.trio
import hypercorn.typing
import structlog
import trio

from miro_bridge.actors.system import ActorSystem, build_actor_system
from miro_bridge.config import Settings
from miro_bridge.http import create_app
from miro_bridge.metrics import Metrics

HTTP_GRACE_SECONDS = 5.0
ACTOR_GRACE_SECONDS = 3.0

log = structlog.get_logger(__name__)


def hypercorn_config(host: str, port: int) -> hypercorn.config.Config:
    """Hypercorn settings for serving on `host:port` (port 0: chosen by the OS)."""
    config = hypercorn.config.Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = HTTP_GRACE_SECONDS
    config.accesslog = None  # the edge logs each request, with its request id
    config.errorlog = logging.getLogger("hypercorn.error")  # through structlog, see logs.py
    return config


async def run(
    settings: Settings,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` is set; report the base URL (`http://host:port`) once serving.

    Raises `Escalation` (inside an exception group) if an actor cannot stay up.
    """
    actors = build_actor_system(settings)
    metrics = Metrics(actors.supervisor.statistics)
    app = create_app(settings, actors, metrics)
    async with trio.open_nursery() as nursery:
        await nursery.start(actors.supervisor.run)
        log.info("service.actors_ready", actors=[ref.name for ref in actors.supervisor.refs])
        binds = await nursery.start(functools.partial(_serve_http, actors, app, settings, shutdown))
        # Everything allocated so far lives as long as the process: keep it out of the
        # garbage collector's full passes, which otherwise walk it again and again.
        gc.freeze()
        log.info("service.serving", url=binds[0])
        task_status.started(binds[0])


async def _serve_http(
    actors: ActorSystem,
    app: object,
    settings: Settings,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    try:
        await hypercorn.trio.serve(
            cast(hypercorn.typing.Framework, app),
            hypercorn_config(settings.host, settings.port),
            shutdown_trigger=shutdown.wait,
            task_status=task_status,
        )
    finally:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + ACTOR_GRACE_SECONDS
            await actors.supervisor.stop()
        log.info("service.stopped")
