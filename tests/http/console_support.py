"""What the console's tests share: its token, logging in, making a dead letter."""

from __future__ import annotations

import re

import httpx

from miro_bridge.sandbox import Faults
from tests.support import USER, Bridge, Miro, connect, shape, wait_for_job

CONSOLE_TOKEN = "console-token-for-the-tests-0123456789"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, html
    return match.group(1)


async def log_in(bridge: Bridge, operator: str = "Ada") -> httpx.AsyncClient:
    """A client of its own with a logged-in console session."""
    client = httpx.AsyncClient(base_url=bridge.url, timeout=30)
    form = await client.get("/_console/login")
    assert form.status_code == 200
    response = await client.post(
        "/_console/login",
        data={"csrf": csrf_of(form.text), "operator": operator, "token": CONSOLE_TOKEN},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/_console"
    return client


async def dead_letter(bridge: Bridge, miro: Miro) -> tuple[str, str]:
    """A job whose one create failed until it was filed as a dead letter; (job id, board id)."""
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])
    miro.sandbox.set_faults(Faults(error_rate=1.0, error_statuses=(503,)))
    response = await bridge.client.post(
        "/api/batch",
        json={"boardId": board_id, "operations": [{"type": "create_shape", "data": shape(1)}]},
        headers={"X-User-Id": USER, "X-Request-ID": "enqueued-by-this-request"},
    )
    job = await wait_for_job(bridge, response.json()["jobId"])
    assert job["status"] == "failed"
    miro.sandbox.set_faults(Faults())
    return job["id"], board_id
