"""The bundled client's files: caching headers, and no way out of the directory."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import Bridge, StartBridge

# API.md: hashed file names are cached for a year, HTML is revalidated.
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"


async def test_assets_and_their_caching(start_bridge: StartBridge, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "static").mkdir(parents=True)
    (site / "app.html").write_text("<html>app</html>")
    (site / "static" / "app.3f9a2c.js").write_text("console.log(1)")
    (site / "static" / "logo.png").write_bytes(b"\x89PNG")
    (tmp_path / "secret.txt").write_text("do not serve")
    bridge = await start_bridge(static_dir=site)

    root = await bridge.client.get("/")
    assert root.status_code == 302
    assert root.headers["location"] == "/app.html"
    page = await bridge.client.get("/app.html")
    assert page.text == "<html>app</html>"
    assert page.headers["cache-control"] == NO_CACHE
    assert page.headers["content-type"].startswith("text/html")
    script = await bridge.client.get("/static/app.3f9a2c.js")
    assert script.text == "console.log(1)"
    assert script.headers["cache-control"] == IMMUTABLE
    logo = await bridge.client.get("/static/logo.png")
    assert logo.headers["cache-control"] == NO_CACHE

    async with httpx.AsyncClient(base_url=bridge.url) as raw:
        for path in (
            "/static/../secret.txt",
            "/static/%2e%2e/secret.txt",
            "/static/..%2fsecret.txt",
            "/static/%2e%2e%2f%2e%2e%2fsecret.txt",
            "/static//etc/passwd",
            "/static/nothing.js",
        ):
            request = raw.build_request("GET", path)
            request.url = request.url.copy_with(raw_path=path.encode())
            response = await raw.send(request)
            assert response.status_code == 404, path
            assert "do not serve" not in response.text


async def test_no_static_dir_no_routes(bridge: Bridge) -> None:
    assert (await bridge.client.get("/")).status_code == 404
    assert (await bridge.client.get("/app.html")).status_code == 404
