"""The whole service in one Trio task: the supervised actors, then HTTP on top.

Start-up: bind the port (so the service knows its own URL), start every actor (each ready
before the next), then serve HTTP. With `--sandbox`, a Miro simulator is mounted under
`/_sandbox` on the same port and the Miro settings point at it.

Shutdown (when `shutdown` is set): Hypercorn stops accepting and gives in-flight requests
`GRACE_SECONDS`; then the actors drain their mailboxes in reverse start order within
`ACTOR_GRACE_SECONDS`; then the database closes; then the spans not yet exported get
`TRACING_GRACE_SECONDS`. Together within 10 s.
"""

from __future__ import annotations

import functools
import gc
import socket
from typing import cast

import attrs
import hypercorn.trio
import hypercorn.typing
import structlog
import trio

from miro_bridge.actors.system import ActorSystem, build_actor_system
from miro_bridge.config import Settings, base_url, own_redirect_uri
from miro_bridge.http import create_app
from miro_bridge.http.serving import hypercorn_config, listen
from miro_bridge.http.typing import ASGIApp
from miro_bridge.logs import written_per_pass
from miro_bridge.sandbox import Sandbox, SandboxConfig

ACTOR_GRACE_SECONDS = 3.0
TRACING_GRACE_SECONDS = 1.5
SANDBOX_PREFIX = "/_sandbox"

log = structlog.get_logger(__name__)


def use_sandbox(settings: Settings, url: str) -> Settings:
    """`settings` pointing at the sandbox mounted on the service at `url`."""
    sandbox = f"{url}{SANDBOX_PREFIX}"
    redirect = settings.oauth_redirect_uri
    if redirect == own_redirect_uri(settings.host, settings.port):  # the default: ours, bound
        redirect = f"{url}/oauth/callback"
    return attrs.evolve(
        settings,
        api_base_url=sandbox,
        oauth_authorize_url=f"{sandbox}/oauth/authorize",
        oauth_token_url=f"{sandbox}/v1/oauth/token",
        oauth_redirect_uri=redirect,
    )


async def run(
    settings: Settings,
    shutdown: trio.Event,
    *,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` is set; report the base URL (`http://host:port`) once serving.

    `reuse_port`: the port is shared with other workers (`serve --workers`). Raises
    `Escalation` (inside an exception group) if an actor cannot stay up.
    """
    if not settings.encryption_keys:
        log.warning(
            "tokens.plaintext",
            reason="no MIRO_ENCRYPTION_KEY: Miro tokens are stored unencrypted",
        )
    for warning in settings.shape_templates.warnings:
        log.warning("templates.ignored", detail=warning)
    if settings.debug_toggles:
        log.warning(
            "debug_toggles.on",
            reason="MIRO_DEBUG_TOGGLES=true: X-Debug-* request headers force 429s, limits and"
            " auth answers; for development only",
        )
    sock = listen(settings.host, settings.port, reuse_port=reuse_port)
    url = base_url(settings.host, sock.getsockname()[1])
    mounts: dict[str, ASGIApp] = {}
    if settings.sandbox:
        settings = use_sandbox(settings, url)
        sandbox = Sandbox(
            SandboxConfig(client_id=settings.client_id, client_secret=settings.client_secret)
        )
        mounts[SANDBOX_PREFIX] = cast(ASGIApp, sandbox.app)
    actors = build_actor_system(settings)
    app = create_app(settings, actors, mounts=mounts)
    # The lines of each pass of the scheduler in one write (logs.py).
    with written_per_pass():
        async with trio.open_nursery() as nursery:
            await nursery.start(actors.supervisor.run)
            log.info("service.actors_ready", actors=[ref.name for ref in actors.supervisor.refs])
            await nursery.start(
                functools.partial(_serve_http, actors, app, sock, shutdown, nursery)
            )
            # Everything allocated so far lives as long as the process: keep it out of the
            # garbage collector's full passes, which otherwise walk it again and again.
            gc.freeze()
            log.info(
                "service.serving",
                url=url,
                miro=settings.api_base_url,
                tracing=actors.tracing.backends,
            )
            task_status.started(url)


async def _serve_http(
    actors: ActorSystem,
    app: ASGIApp,
    sock: socket.socket,
    shutdown: trio.Event,
    service: trio.Nursery,
    *,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    try:
        await hypercorn.trio.serve(
            cast(hypercorn.typing.Framework, app),
            hypercorn_config(sock),
            shutdown_trigger=shutdown.wait,
            task_status=task_status,
        )
    finally:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + ACTOR_GRACE_SECONDS
            await actors.supervisor.stop()
        if scope.cancelled_caught:
            log.warning("service.actors_cancelled", grace_seconds=ACTOR_GRACE_SECONDS)
        with trio.CancelScope(shield=True):
            await actors.tracing.shutdown(TRACING_GRACE_SECONDS)
        # Whatever has not stopped in its grace period is cancelled (leases stay on disk and
        # are released at the next start); each actor still closes what it owns.
        service.cancel_scope.cancel()
        log.info("service.stopped")
