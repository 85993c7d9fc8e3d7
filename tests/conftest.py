"""Fixtures shared by every test folder."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import hypercorn.trio
import psycopg
import pytest
import structlog
import trio

from miro_bridge.actors.system import build_actor_system
from miro_bridge.config import Settings, load_settings
from miro_bridge.http import create_app
from miro_bridge.http.serving import hypercorn_config, listen
from miro_bridge.sandbox import Sandbox, SandboxConfig
from miro_bridge.sandbox import serve as sandbox_serve
from miro_bridge.store.postgres import MIGRATIONS, describe_server
from miro_bridge.store.postgres.migrations import migrate
from tests.support import (
    DEFAULT_POSTGRES_URL,
    POSTGRES_URL_VARIABLE,
    Bridge,
    DatabaseFactory,
    ManualClock,
    Miro,
    Process,
    ServeASGI,
    StartBridge,
    create_database,
    drop_database,
)

BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `backends` runs once per database backend (its `settings` name it);
    `backends("sqlite")` names the ones it runs on, when not both."""
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None and "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", marker.args or BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo `configure_logging` (called by the CLI) so later tests don't write to closed files."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server for the tests (`MIRO_TEST_POSTGRES_URL`, else the local one).

    Not reachable: its tests skip, unless the variable is set (CI), when they fail.
    """
    explicit = os.environ.get(POSTGRES_URL_VARIABLE, "").strip()
    url = explicit or DEFAULT_POSTGRES_URL
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        where = f"PostgreSQL at {describe_server(url)} cannot be reached ({reason})"
        if explicit:
            pytest.fail(f"{POSTGRES_URL_VARIABLE} is set, but {where}")
        pytest.skip(f"{where}; set {POSTGRES_URL_VARIABLE} to run the PostgreSQL tests")
    return url


@pytest.fixture(scope="session")
def postgres_databases(postgres_server: str) -> Iterator[DatabaseFactory]:
    """Databases for the tests, each a copy of one migrated once (faster than migrating),
    made ahead and dropped behind in a thread."""
    template = create_database(postgres_server)
    try:
        with psycopg.connect(template, autocommit=True) as connection:
            migrate(connection, MIGRATIONS)
        factory = DatabaseFactory(postgres_server, template.rpartition("/")[2])
        try:
            yield factory
        finally:
            factory.close()
    finally:
        drop_database(postgres_server, template)


@pytest.fixture
def postgres_database(postgres_databases: DatabaseFactory) -> Iterator[str]:
    """The URL of a migrated PostgreSQL database of the test's own, dropped after it."""
    url = postgres_databases.take()
    yield url
    postgres_databases.give_back(url)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """`MIRO_DATABASE_URL` for the test: a fresh SQLite file, or (tests marked `backends`,
    once each) a PostgreSQL database of its own."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"sqlite:///{tmp_path / 'bridge.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Sandbox settings with a fresh database and an OS-chosen port."""
    return load_settings({"MIRO_DATABASE_URL": database_url, "PORT": "0"}, sandbox=True)


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


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """The subprocesses a test started (`tests.support.start_process`), killed after it."""
    started: list[Process] = []
    yield started
    for process in started:
        process.popen.kill()
        process.popen.wait()
