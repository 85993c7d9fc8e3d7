"""What tests share besides fixtures: test users, the clock, running parts, Miro's description."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
import trio.lowlevel
from openapi_schema_validator import OAS30Validator

from miro_bridge.actors.system import ActorSystem
from miro_bridge.config import Settings
from miro_bridge.sandbox import Sandbox

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MIRO_SPEC_PATH = Path(__file__).parent / "sandbox" / "data" / "openapi.validating.json"

USER = "3458764500000000001"
OTHER_USER = "3458764500000000077"


@attrs.define
class ManualClock:
    """Epoch seconds that move only when a test says so; shared by the bridge and the sandbox.

    Starts at the real time, so that what is checked against the real clock (a JWT's `exp`,
    by PyJWT) agrees with it.
    """

    now: float = attrs.field(factory=time.time)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock: let other tasks run once, then move the clock on.

        Several sleepers each move it to their own wake-up time (never backwards), so waits
        for Miro's rate-limit window take no real time.
        """
        wake_at = self.now + seconds
        await trio.lowlevel.checkpoint()
        self.now = max(self.now, wake_at)


@attrs.define
class Miro:
    """A sandbox Miro served on loopback, and its URL."""

    sandbox: Sandbox
    url: str


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a Miro access token."""
    return {"Authorization": f"Bearer {token}"}


@attrs.define
class Bridge:
    """A running miro-bridge: its URL, settings, actors and an HTTP client."""

    url: str
    settings: Settings
    actors: ActorSystem
    client: httpx.AsyncClient


StartBridge = Callable[..., Awaitable[Bridge]]


async def wait_for_job(bridge: Bridge, job_id: str, user: str = USER) -> dict[str, Any]:
    """Poll the job until it has finished; its last status."""
    with trio.fail_after(60):
        while True:
            response = await bridge.client.get(f"/api/jobs/{job_id}", headers={"X-User-Id": user})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["status"] in ("done", "failed", "partial"):
                return body
            await trio.sleep(0.01)


async def connect(bridge: Bridge, miro: Miro, user: str = USER) -> str:
    """Give the bridge a Miro token pair for `user`, as the client's /api/users would."""
    issued = miro.sandbox.issue_tokens(user)
    response = await bridge.client.post(
        "/api/users",
        json={
            "id": user,
            "name": "",
            "access_token": issued["access_token"],
            "refresh_token": issued["refresh_token"],
            "expires_at": "",
        },
    )
    assert response.status_code in (200, 201), response.text
    return str(issued["access_token"])


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Play a bare test app's part in the ASGI lifespan: ready at once, stopped when told."""
    while (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def read_body(receive: Receive) -> bytes:
    """The whole body of the request a bare test app is answering."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


@functools.cache
def miro_spec() -> dict[str, Any]:
    """Miro's REST description (the project's copy), parsed once: it is large."""
    loaded: dict[str, Any] = json.loads(MIRO_SPEC_PATH.read_text())
    return loaded


def miro_schema(name: str) -> dict[str, Any]:
    """The schema `components.schemas[name]` of Miro's description."""
    schema: dict[str, Any] = miro_spec()["components"]["schemas"][name]
    return schema


@functools.cache
def _validator(name: str) -> OAS30Validator:
    root = {"$ref": f"#/components/schemas/{name}", "components": miro_spec()["components"]}
    return OAS30Validator(root)


def miro_schema_errors(name: str, value: object) -> list[str]:
    """What Miro's description finds wrong with `value` as the schema `name` (`$ref`s resolved)."""
    return [f"{list(e.absolute_path)}: {e.message}" for e in _validator(name).iter_errors(value)]
