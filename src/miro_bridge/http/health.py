"""Liveness, readiness and metrics: the routes operators and Prometheus call."""

from __future__ import annotations

import os
import socket
from typing import Any

import attrs
from prometheus_client import CONTENT_TYPE_LATEST
from quart import Quart, Response
from quart_schema import document_response

from miro_bridge.actors.store import Ping
from miro_bridge.actors.system import ActorSystem
from miro_bridge.config import Settings
from miro_bridge.errors import BridgeError, StoreUnavailable
from miro_bridge.http._edge import FastRoute
from miro_bridge.http.openapi import document_status


@attrs.frozen
class Health:
    """The liveness answer."""

    status: str


@attrs.frozen
class Readiness:
    """Each actor's state, the database's, which Miro we talk to, and who answered: the
    database backend and this instance (host and process)."""

    status: str
    actors: dict[str, str]
    database: str
    miro: str
    backend: str
    instance: str


_LIVE = b'{"status":"ok"}'
#: Which instance answers: its host and process (several may share one database).
INSTANCE = f"{socket.gethostname()}:{os.getpid()}"

#: `GET /health`, answered by the edge.
LIVENESS = FastRoute("/health", "/health", lambda path, headers: _LIVE)


def register_health_routes(app: Quart, settings: Settings, actors: ActorSystem) -> None:
    """Add `/health`, `/health/ready` and `/metrics` to `app`."""

    @app.get("/health")
    @document_response(Health)
    async def health() -> Response:
        """Liveness: the process answers."""
        return Response(_LIVE, content_type="application/json")

    @app.get("/health/ready")
    @document_response(Readiness, 200)
    @document_response(Readiness, 503)
    async def ready() -> tuple[dict[str, Any], int]:
        """Readiness: every actor runs and the database answers."""
        states = {
            s.name: "running" if s.running else "down" for s in actors.supervisor.statistics()
        }
        try:
            await actors.store.call(Ping(), timeout=2.0)
        except StoreUnavailable:
            database = "unwritable"  # it reads, but writes fail (a full disk, I/O errors)
        except BridgeError:
            database = "unreachable"
        else:
            database = "ok"
        ok = database == "ok" and all(state == "running" for state in states.values())
        body = {
            "status": "ok" if ok else "unavailable",
            "actors": states,
            "database": database,
            "miro": "sandbox" if settings.sandbox else "live",
            "backend": "postgresql" if settings.database_is_shared else "sqlite",
            "instance": INSTANCE,
        }
        return body, 200 if ok else 503

    @app.get("/metrics")
    @document_status(200, "Prometheus text format", "text/plain")
    async def prometheus_metrics() -> Response:
        """Prometheus text format."""
        return Response(actors.metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
