"""Fixtures shared by every test folder."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import hypercorn.trio
import pytest
import structlog
import trio

from miro_bridge.config import Settings, load_settings
from miro_bridge.http.serving import hypercorn_config, listen


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


ServeASGI = Callable[[Any], Awaitable[str]]


@pytest.fixture
def serve_asgi(nursery: trio.Nursery) -> ServeASGI:
    """Serve an ASGI app on Hypercorn on a free loopback port for the test; its base URL."""

    async def serve(app: Any) -> str:
        binds: list[str] = await nursery.start(
            functools.partial(hypercorn.trio.serve, app, hypercorn_config(listen("127.0.0.1", 0)))
        )
        return binds[0]

    return serve
