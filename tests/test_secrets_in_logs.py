"""No secret ever reaches the log: every error path the tests can reach, with known secrets.

The service runs with debug logging, JSON lines, an encryption key and a webhook secret; a
user connects with a token pair the test knows; then Miro fails in every way the sandbox can
(5xx, 429, dropped connections, expired tokens), bodies are refused, the OAuth exchange fails,
a queued operation breaks inside the Miro client (in a frame that holds the token) until it is
dead-lettered. Then the whole log output is searched for each secret.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from miro_bridge.logs import configure_logging
from miro_bridge.sandbox import Faults
from miro_bridge.store import users
from miro_bridge.store.crypto import TokenCipher
from tests.support import USER, Miro, StartBridge, wait_for_job

KEY = Fernet.generate_key().decode()
WEBHOOK_SECRET = "webhook-secret-9d1c3a"


def corrupt_operation(database: Path, job_id: str) -> None:
    """Give a queued create a body httpx cannot encode (as if the row were damaged)."""
    with sqlite3.connect(database, timeout=10) as connection:
        (raw,) = connection.execute(
            "SELECT payload FROM operations WHERE job_id = ?", (job_id,)
        ).fetchone()
        payload = json.loads(raw)
        payload["item"]["position"] = {"x": float("nan"), "y": 0}
        connection.execute(
            "UPDATE operations SET payload = ? WHERE job_id = ?", (json.dumps(payload), job_id)
        )


async def test_no_secret_is_ever_logged(
    start_bridge: StartBridge, miro: Miro, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level=logging.DEBUG, pretty=False)
    bridge = await start_bridge(encryption_keys=(KEY,), webhook_secrets=(WEBHOOK_SECRET,))
    issued = miro.sandbox.issue_tokens(USER)
    secrets = {
        "access token": issued["access_token"],
        "refresh token": issued["refresh_token"],
        "client secret": bridge.settings.client_secret,
        "encryption key": KEY,
        "webhook secret": WEBHOOK_SECRET,
    }
    client = bridge.client
    h = {"X-User-Id": USER}
    registered = await client.post(
        "/api/users",
        json={"id": USER, "name": "U", **{k: issued[k] for k in ("access_token", "refresh_token")}},
    )
    assert registered.status_code == 201
    board_id = str(miro.sandbox.create_board(USER)["id"])

    # Miro failing in every way, for a read (retried) and a write (not retried).
    for faults in (
        Faults(error_rate=1.0),
        Faults(rate_limit_rate=1.0),
        Faults(drop_rate=1.0),
    ):
        miro.sandbox.set_faults(faults)
        read = await client.get(f"/api/cache/{board_id}", headers=h)
        assert read.status_code in (429, 502), read.text
        shape = {"shape": "circle", "x": 0, "y": 0, "width": 9, "height": 9}
        created = await client.post(f"/api/boards/{board_id}/shapes", json=[shape], headers=h)
        assert created.status_code in (201, 429, 502)
    miro.sandbox.set_faults(Faults())

    # Expired tokens: refreshed (a rotation at Miro), then the user logs out.
    miro.sandbox.expire_tokens()
    assert (await client.get(f"/api/cache/{board_id}", headers=h)).status_code == 200

    # Refused input of every kind.
    for body in (b"[NaN]", b'["\\ud800"]', b"[" * 100 + b"]" * 100, b"{not json"):
        await client.post(f"/api/boards/{board_id}/ops", content=body, headers=h)
    await client.post("/api/users", json={"id": USER, "access_token": "a.b.c"})
    await client.post("/api/webhook", json={"challenge": "x"}, headers={"X-Miro-Signature": "0"})
    login = await client.get("/oauth/login")
    state = httpx.URL(login.headers["location"]).params["state"]
    assert (
        await client.get("/oauth/callback", params={"code": "bad", "state": state})
    ).status_code == 502

    # A queued create that breaks inside the Miro client, where the token is a local.
    accepted = await client.post(f"/api/cards?boardId={board_id}", json=[{"title": "t"}], headers=h)
    job_id = accepted.json()["jobId"]
    corrupt_operation(bridge.settings.database_path, job_id)
    job = await wait_for_job(bridge, job_id)
    assert job["status"] == "failed"  # dead-lettered after its attempts
    stored = await bridge.actors.store.call(users.GetTokens(USER))
    assert stored is not None
    assert stored.access_token is not None
    assert stored.refresh_token is not None
    cipher = TokenCipher((KEY,))
    secrets["refreshed access token"] = cipher.decrypt(stored.access_token)
    secrets["refreshed refresh token"] = cipher.decrypt(stored.refresh_token)
    assert secrets["refreshed access token"] != issued["access_token"]
    assert (await client.post("/api/logout", headers=h)).status_code == 204

    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    events = {line.get("event") for line in lines}
    ran = {"tokens.refreshed", "tokens.revoked", "job.unexpected_error", "job.dead_lettered"}
    assert ran <= events  # the paths ran
    for name, secret in secrets.items():
        assert secret not in out, f"the {name} is in the log"
