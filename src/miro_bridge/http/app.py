"""The HTTP application: Quart-Trio routes behind the edge middleware."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from quart import request
from quart_schema import QuartSchema
from quart_schema.openapi import Info
from quart_trio import QuartTrio

from miro_bridge import __version__
from miro_bridge.actors.system import ActorSystem
from miro_bridge.config import Settings
from miro_bridge.http._edge import Edge
from miro_bridge.http.boards import board_fast_routes, register_board_routes
from miro_bridge.http.bodies import JSONRequest
from miro_bridge.http.client_logs import client_logs_fast_post, register_client_log_routes
from miro_bridge.http.console import register_console_routes
from miro_bridge.http.errors import register_error_handlers
from miro_bridge.http.health import LIVENESS, register_health_routes
from miro_bridge.http.identity import register_identity_routes
from miro_bridge.http.jobs import batch_fast_post, register_job_routes
from miro_bridge.http.legacy_proxy import register_legacy_proxy
from miro_bridge.http.openapi import BodySchemas
from miro_bridge.http.static import register_static_routes
from miro_bridge.http.typing import ROUTE_KEY, ASGIApp, Scope
from miro_bridge.http.webhooks import register_webhook_routes
from miro_bridge.miro.endpoints import check_id

#: Path parameters that the routes place in Miro paths.
_MIRO_IDS = ("board_id", "item_id")


def create_quart_app(settings: Settings, actors: ActorSystem) -> QuartTrio:
    """The Quart app with every route; `create_app` wraps it in the edge."""
    app = QuartTrio("miro_bridge", static_folder=None)  # our static route serves the client
    app.request_class = JSONRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False  # no redirects for doubled slashes: 404 (400 under /api)
    QuartSchema(
        app,
        openapi_path="/openapi.json",
        redoc_ui_path=None,
        scalar_ui_path=None,
        swagger_ui_path=None,
        info=Info(title="miro-bridge", version=__version__),
        conversion_preference="msgspec",
        openapi_provider_class=BodySchemas,
    )
    register_error_handlers(app)

    @app.before_request
    async def record_route() -> None:
        if request.url_rule is not None:
            cast(Scope, request.scope)[ROUTE_KEY] = request.url_rule.rule
        for name in _MIRO_IDS:  # they go into Miro paths: never `.`, `..` (422)
            value = (request.view_args or {}).get(name)
            if isinstance(value, str):
                check_id(value, ("path", name))

    register_health_routes(app, settings, actors)
    register_identity_routes(app, settings, actors)
    register_board_routes(app, settings, actors)
    register_job_routes(app, settings, actors)
    register_client_log_routes(app, settings, actors)
    register_static_routes(app, settings)
    register_webhook_routes(app, settings, actors)
    register_console_routes(app, settings, actors)  # only with MIRO_CONSOLE_TOKEN set
    register_legacy_proxy(app, actors)  # takes the /api/ paths that no route above matches
    return app


def create_app(
    settings: Settings,
    actors: ActorSystem,
    mounts: Mapping[str, ASGIApp] | None = None,
) -> Edge:
    """The ASGI application Hypercorn serves; `mounts` maps path prefixes to other apps."""
    quart_app = create_quart_app(settings, actors)
    return Edge(
        cast(ASGIApp, quart_app),
        settings,
        actors.metrics,
        fast_routes=[LIVENESS, *board_fast_routes(settings, actors)],
        fast_posts=[client_logs_fast_post(settings, actors), batch_fast_post(settings, actors)],
        mounts=mounts,
        tracing=actors.tracing,
    )
