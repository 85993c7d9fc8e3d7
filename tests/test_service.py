"""The assembled service: `serve --sandbox` mounts the Miro simulator and points at it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from miro_bridge import service
from miro_bridge.config import Settings, load_settings
from miro_bridge.logs import configure_logging
from tests.support import request_head

USER = "3458764500000000001"


async def test_serve_with_sandbox_mounts_it_and_points_the_miro_settings_at_it(
    settings: Settings, nursery: trio.Nursery
) -> None:
    shutdown = trio.Event()
    url = await nursery.start(service.run, settings, shutdown)
    async with httpx.AsyncClient(base_url=url) as client:
        ready = (await client.get("/health/ready")).json()
        assert ready["miro"] == "sandbox"

        # Miro's OAuth, on our port: authorize redirects to our own callback.
        response = await client.get(
            "/_sandbox/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": "sandbox-client",
                "redirect_uri": f"{url}/oauth/callback",
                "state": "s1",
            },
        )
        assert response.status_code == 302
        assert response.headers["location"].startswith(f"{url}/oauth/callback?")
        assert response.headers["x-request-id"]

        tokens = (await client.post("/_sandbox/_admin/tokens", json={"user_id": USER})).json()
        board = await client.post(
            "/_sandbox/v2/boards",
            json={"name": "Mounted"},
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        assert board.status_code == 201
        assert board.json()["links"]["self"].startswith(f"{url}/_sandbox/v2/boards/")
    shutdown.set()


async def test_start_up_warns_when_debug_toggles_are_on(
    settings: Settings, nursery: trio.Nursery, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(pretty=False)
    for toggles in (False, True):
        shutdown = trio.Event()
        await nursery.start(service.run, attrs.evolve(settings, debug_toggles=toggles), shutdown)
        shutdown.set()
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        warned = [line for line in lines if line["event"] == "debug_toggles.on"]
        assert [line["level"] for line in warned] == (["warning"] if toggles else [])


def test_use_sandbox_keeps_a_redirect_uri_the_operator_chose(settings: Settings) -> None:
    chosen = attrs.evolve(settings, oauth_redirect_uri="https://bridge.example/oauth/callback")
    pointed = service.use_sandbox(chosen, "http://127.0.0.1:5555")
    assert pointed.oauth_redirect_uri == "https://bridge.example/oauth/callback"
    assert pointed.api_base_url == "http://127.0.0.1:5555/_sandbox"
    assert pointed.oauth_token_url == "http://127.0.0.1:5555/_sandbox/v1/oauth/token"
    assert pointed.oauth_authorize_url == "http://127.0.0.1:5555/_sandbox/oauth/authorize"
    derived = service.use_sandbox(
        load_settings({"PORT": "0"}, sandbox=True), "http://127.0.0.1:5555"
    )
    assert derived.oauth_redirect_uri == "http://127.0.0.1:5555/oauth/callback"


def test_sandbox_command_serves_miro_alone() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "miro_bridge", "sandbox", "--port", "0", "--client-id", "app-7"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            event = json.loads(line)
            if event["event"] == "sandbox.serving":
                break
        url = event["url"]
        answer = httpx.post(
            f"{url}/v1/oauth/token",
            data={"grant_type": "authorization_code", "client_id": "sandbox-client", "code": "x"},
        )
        assert answer.status_code in (400, 401)  # not the app it knows
        tokens = httpx.post(f"{url}/_admin/tokens", json={"user_id": USER}).json()
        me = httpx.get(
            f"{url}/v1/oauth-token", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.json()["user"]["id"] == USER
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()


def test_sigterm_with_a_kept_alive_connection_exits_within_a_second(tmp_path: Path) -> None:
    """The connection went through a Quart route and stays open, idle: it must not hold up
    the exit (Hypercorn would wait its graceful timeout for it, 5 s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIRO_", "OTEL_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "miro_bridge", "serve", "--sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={
            **env,
            "PYTHONUNBUFFERED": "1",
            "MIRO_DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
        },
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            event = json.loads(line)
            if event["event"] == "service.serving":
                break
        host, _, port = event["url"].removeprefix("http://").rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(request_head("GET", "/health/ready"))
            answer = b""
            while b'"status":"ok"' not in answer:
                answer += connection.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert time.monotonic() - sent < 1
    finally:
        process.kill()
