"""Fixtures shared by every test folder."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import hypercorn.trio
import pytest
import structlog
import trio

from miro_bridge.actors.system import build_actor_system
from miro_bridge.config import Settings, load_settings
from miro_bridge.http import create_app
from miro_bridge.http.serving import hypercorn_config, listen
from miro_bridge.sandbox import Sandbox, SandboxConfig
from miro_bridge.sandbox import serve as sandbox_serve
from tests.support import Bridge, ManualClock, Miro, ServeASGI, StartBridge


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo `configure_logging` (called by the CLI) so later tests don't write to closed files."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Sandbox settings with a fresh database file and an OS-chosen port."""
    return load_settings(
        {"MIRO_DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}", "PORT": "0"}, sandbox=True
    )


@pytest.fixture
def serve_asgi(nursery: trio.Nursery) -> ServeASGI:
    """Serve an ASGI app on Hypercorn on a free loopback port for the test; its base URL."""

    async def serve(app: Any) -> str:
        binds: list[str] = await nursery.start(
            functools.partial(hypercorn.trio.serve, app, hypercorn_config(listen("127.0.0.1", 0)))
        )
        return binds[0]

    return serve


@pytest.fixture
def clock() -> ManualClock:
    """The wall clock of the bridge and the sandbox Miro in a test."""
    return ManualClock()


@pytest.fixture
def sandbox_config(clock: ManualClock) -> SandboxConfig:
    """How the test's sandbox Miro is set up; override in a module for other budgets."""
    return SandboxConfig(clock=clock)


@pytest.fixture
async def miro(nursery: trio.Nursery, sandbox_config: SandboxConfig) -> Miro:
    """A standalone sandbox on the test's clock, configured as the bridge's Miro."""
    sandbox = Sandbox(sandbox_config)
    url: str = await nursery.start(sandbox_serve, sandbox)
    return Miro(sandbox, url)


@pytest.fixture
async def start_bridge(
    settings: Settings, miro: Miro, clock: ManualClock, nursery: trio.Nursery
) -> AsyncIterator[StartBridge]:
    """Start miro-bridge against `miro` (like `serve` against Miro), settings changed by keyword."""
    started: list[Bridge] = []

    async def start(
        sleep: Callable[[float], Awaitable[None]] | None = None, **changes: Any
    ) -> Bridge:
        sock = listen("127.0.0.1", 0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        current = attrs.evolve(
            settings,
            **{
                "sandbox": False,
                "api_base_url": miro.url,
                "oauth_authorize_url": f"{miro.url}/oauth/authorize",
                "oauth_token_url": f"{miro.url}/v1/oauth/token",
                "oauth_redirect_uri": f"{url}/oauth/callback",
                **changes,
            },
        )
        actors = build_actor_system(
            current, clock=clock, sleep=sleep or clock.sleep, wait=clock.wait
        )
        await nursery.start(actors.supervisor.run)
        app = create_app(current, actors)
        await nursery.start(functools.partial(hypercorn.trio.serve, app, hypercorn_config(sock)))
        bridge = Bridge(url, current, actors, httpx.AsyncClient(base_url=url, timeout=30))
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        await bridge.client.aclose()
        await bridge.actors.tracing.shutdown(grace=5)


@pytest.fixture
async def bridge(start_bridge: StartBridge) -> Bridge:
    """miro-bridge with the default test settings, against `miro`."""
    return await start_bridge()
