"""The `miro-bridge` command: settings errors, graceful SIGTERM, escalation."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from miro_bridge import cli, service
from miro_bridge.actors import Actor, Envelope
from miro_bridge.actors.system import ActorSystem, build_actor_system
from miro_bridge.config import Settings


def clean_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without any miro-bridge setting."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MIRO_", "OTEL_"))}
    keep.pop("PORT", None)
    keep.pop("HOST", None)
    return {**keep, **extra}


def test_every_settings_problem_is_reported_at_once(tmp_path: Path) -> None:
    env = clean_env(PORT="eighty", MIRO_HTTP_TIMEOUT_SECONDS="-1")
    result = subprocess.run(
        [sys.executable, "-m", "miro_bridge", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    for name in (
        "MIRO_CLIENT_ID",
        "MIRO_CLIENT_SECRET",
        "MIRO_OAUTH_REDIRECT_URI",
        "MIRO_ENCRYPTION_KEY",
        "PORT",
        "MIRO_HTTP_TIMEOUT_SECONDS",
    ):
        assert name in result.stderr
    assert not list(tmp_path.iterdir()), "nothing may be created before settings are valid"


def test_an_unreachable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = clean_env(MIRO_DATABASE_URL=f"postgresql://bridge:hunter2@127.0.0.1:{port}/bridge")
    result = subprocess.run(
        [sys.executable, "-m", "miro_bridge", "serve", "--sandbox", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("miro-bridge:")]
    assert line.startswith(
        f"miro-bridge: cannot reach the PostgreSQL database at 127.0.0.1:{port}/bridge: "
    )
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_database_newer_than_the_code_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "bridge.db") as connection:
        connection.execute("PRAGMA user_version = 99")
    env = clean_env(MIRO_DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}")
    result = subprocess.run(
        [sys.executable, "-m", "miro_bridge", "serve", "--sandbox", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "miro-bridge: database schema version 99 is newer than this code knows" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_sigterm_stops_the_service_cleanly(tmp_path: Path) -> None:
    env = clean_env(MIRO_DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}")
    process = subprocess.Popen(
        [sys.executable, "-m", "miro_bridge", "serve", "--sandbox", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[dict[str, object]] = []
    try:
        for line in process.stdout:
            lines.append(json.loads(line))
            if lines[-1]["event"] == "service.serving":
                break
        url = str(lines[-1]["url"])
        assert httpx.get(f"{url}/health/ready").json()["status"] == "ok"
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - sent < 10
    finally:
        process.kill()
    events = [json.loads(line)["event"] for line in process.stdout]
    assert "service.stopping" in events
    assert events[-1] == "service.stopped"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")


class CrashesAtStart(Actor):
    name: ClassVar[str] = "doomed"

    async def setup(self) -> None:
        raise OSError("cannot reach something it needs")

    async def handle(self, envelope: Envelope) -> None:
        envelope.reply(None)


def test_an_actor_that_cannot_stay_up_stops_the_service_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def with_doomed_actor(settings: Settings) -> ActorSystem:
        actors = build_actor_system(settings)
        actors.supervisor.add("doomed", CrashesAtStart)
        return actors

    monkeypatch.setattr(service, "build_actor_system", with_doomed_actor)
    monkeypatch.setenv("MIRO_DATABASE_URL", f"sqlite:///{tmp_path / 'bridge.db'}")
    assert cli.main(["serve", "--sandbox", "--port", "0"]) == 1


def test_rotate_keys_command(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    from miro_bridge.store.crypto import TokenCipher

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    database = tmp_path / "bridge.db"
    env = clean_env(
        MIRO_DATABASE_URL=f"sqlite:///{database}",
        MIRO_CLIENT_ID="app",
        MIRO_CLIENT_SECRET="secret",
        MIRO_OAUTH_REDIRECT_URI="https://bridge.example/oauth/callback",
    )
    command = [sys.executable, "-m", "miro_bridge", "rotate-keys"]

    def run(keys: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            env={**env, "MIRO_ENCRYPTION_KEY": keys},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert run(old).returncode == 0  # creates the schema; no tokens yet
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO users VALUES ('1', 'Ada', 0, 0)")
        connection.execute(
            "INSERT INTO tokens VALUES ('1', ?, NULL, NULL, '', 'connected', 0)",
            (TokenCipher([old]).encrypt("secret-access-token"),),
        )
    refused = run(new)
    assert refused.returncode == 1
    assert "nothing changed" in refused.stderr
    result = run(f"{new},{old}")
    assert result.returncode == 0, result.stderr
    assert "1 users" in result.stdout
    with sqlite3.connect(database) as connection:
        (stored,) = connection.execute("SELECT access_token FROM tokens").fetchone()
    assert TokenCipher([new]).decrypt(stored) == "secret-access-token"


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["--sandbox"], "cannot share the built-in sandbox"),
        ([], "needs a database several processes share"),
    ],
)
def test_several_workers_need_a_shared_database(
    tmp_path: Path, arguments: list[str], reason: str
) -> None:
    env = clean_env(
        MIRO_DATABASE_URL=f"sqlite:///{tmp_path / 'bridge.db'}",
        MIRO_CLIENT_ID="c",
        MIRO_CLIENT_SECRET="s",
        MIRO_OAUTH_REDIRECT_URI="http://127.0.0.1/oauth/callback",
        MIRO_ALLOW_PLAINTEXT_TOKENS="true",
    )
    result = subprocess.run(
        [sys.executable, "-m", "miro_bridge", "serve", "--workers", "2", *arguments],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert reason in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, not a traceback
    assert not (tmp_path / "bridge.db").exists()
