"""The bundled client: `/`, `/app.html` and `/static/...` from `MIRO_STATIC_DIR`.

URL paths map one to one onto the directory (`/static/app.3f9a2c.js` is
`MIRO_STATIC_DIR/static/app.3f9a2c.js`), through Quart's `send_from_directory`, whose
`safe_join` refuses any path that would leave the directory (404). Files whose names carry a
content hash never change: they are cached for a year; HTML is revalidated on every load.
"""

from __future__ import annotations

import re
from pathlib import Path

from quart import Quart, Response, redirect, send_from_directory
from werkzeug.wrappers.response import Response as WerkzeugResponse

from miro_bridge.config import Settings
from miro_bridge.http.openapi import document_status

_HASHED = re.compile(r"\.[0-9a-f]{6,}\.[A-Za-z0-9]+$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def cache_control(name: str) -> str:
    """`Cache-Control` for a file: a year for hashed names, revalidation for the rest."""
    return IMMUTABLE if _HASHED.search(name) else REVALIDATE


async def _send(directory: Path, name: str) -> Response:
    response = await send_from_directory(directory, name)
    response.headers["Cache-Control"] = cache_control(name)
    return response


def register_static_routes(app: Quart, settings: Settings) -> None:
    """Serve the client's files, when `MIRO_STATIC_DIR` is set."""
    directory = settings.static_dir
    if directory is None:
        return

    @app.get("/")
    @document_status(302, "to /app.html")
    async def index() -> WerkzeugResponse:
        """The client's page."""
        return redirect("/app.html", 302)

    @app.get("/app.html")
    @document_status(200, "the client's page", "text/html")
    async def app_html() -> Response:
        """The client's page, revalidated on every load."""
        return await _send(directory, "app.html")

    @app.get("/static/<path:name>")
    @document_status(200, "a file of the bundled client")
    async def static_file(name: str) -> Response:
        """A bundled asset; hashed names are immutable."""
        return await _send(directory, f"static/{name}")
