"""Fixtures of the sandbox tests: a sandbox on trio time, served over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from miro_bridge.sandbox import Sandbox, SandboxConfig, serve

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
USER = "3458764500000000001"
OTHER_USER = "3458764500000000077"


def trio_clock() -> float:
    """Epoch seconds that move with trio's clock, so `autojump_clock` drives the sandbox."""
    return EPOCH + trio.current_time()


def bearer(tokens: dict[str, str]) -> dict[str, str]:
    """The Authorization header for a token answer."""
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig(clock=trio_clock)


@pytest.fixture
def sandbox(config: SandboxConfig) -> Sandbox:
    return Sandbox(config)


@pytest.fixture
async def base_url(nursery: trio.Nursery, sandbox: Sandbox) -> str:
    url: str = await nursery.start(serve, sandbox)
    return url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


@pytest.fixture
async def auth(sandbox: Sandbox) -> dict[str, str]:
    """Headers of a fresh token of USER (async: the sandbox clock needs trio)."""
    return bearer(sandbox.issue_tokens(USER))


@pytest.fixture
async def board_id(sandbox: Sandbox) -> str:
    """A board owned by USER."""
    return str(sandbox.create_board(USER, name="Roadmap")["id"])
