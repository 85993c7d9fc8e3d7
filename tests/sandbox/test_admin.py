"""The admin routes under /_admin, over HTTP."""

from __future__ import annotations

import httpx

from miro_bridge.sandbox import Faults, Sandbox

from .conftest import OTHER_USER, USER, bearer


async def test_admin_boards_creates_a_board_with_members(
    client: httpx.AsyncClient, sandbox: Sandbox, base_url: str
) -> None:
    response = await client.post(
        "/_admin/boards", json={"owner": USER, "name": "Team", "members": [OTHER_USER]}
    )
    assert response.status_code == 201
    board = response.json()
    assert board["name"] == "Team"
    assert board["links"]["self"].startswith(f"{base_url}/v2/boards/uXjV")
    member = bearer(sandbox.issue_tokens(OTHER_USER))
    assert (await client.get(board["links"]["self"], headers=member)).status_code == 200
    assert (await client.post("/_admin/boards", json={"name": "x"})).status_code == 400


async def test_admin_tokens_answers_like_the_token_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.post("/_admin/tokens", json={"user_id": OTHER_USER})
    assert response.status_code == 200
    tokens = response.json()
    assert tokens["user_id"] == OTHER_USER
    assert tokens["expires_in"] == 3599
    assert (await client.get("/v2/boards", headers=bearer(tokens))).status_code == 200
    assert (await client.post("/_admin/tokens", json={})).status_code == 400


async def test_admin_expire_tokens(client: httpx.AsyncClient) -> None:
    tokens = (await client.post("/_admin/tokens", json={"user_id": USER})).json()
    assert (await client.post("/_admin/expire-tokens")).status_code == 204
    assert (await client.get("/v2/boards", headers=bearer(tokens))).status_code == 401


async def test_admin_requests_lists_miro_calls_oldest_first(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    tokens = (await client.post("/_admin/tokens", json={"user_id": USER})).json()
    await client.get("/v2/boards", headers=bearer(tokens))
    await client.get("/v2/nowhere", headers=bearer(tokens))
    await client.get("/v2/boards")
    await client.post("/v1/oauth/token", data={"grant_type": "refresh_token"})
    response = await client.get("/_admin/requests")
    assert response.json() == {
        "requests": [
            {"method": "GET", "path": "/v2/boards", "user": USER, "status": 200, "credits": 50},
            {"method": "GET", "path": "/v2/nowhere", "user": USER, "status": 404, "credits": 0},
            {"method": "GET", "path": "/v2/boards", "user": None, "status": 401, "credits": 0},
            {
                "method": "POST",
                "path": "/v1/oauth/token",
                "user": None,
                "status": 401,
                "credits": 0,
            },
        ]
    }
    assert response.json()["requests"] == sandbox.requests()


async def test_admin_reset_forgets_everything(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    tokens = sandbox.issue_tokens(USER)
    board_id = sandbox.create_board(USER)["id"]
    sandbox.set_faults(Faults(latency_ms=(1, 2)))
    await client.get(f"/v2/boards/{board_id}", headers=bearer(tokens))
    assert (await client.post("/_admin/reset")).status_code == 204
    assert sandbox.requests() == []
    assert sandbox.faults == Faults()
    assert (await client.get("/v2/boards", headers=bearer(tokens))).status_code == 401
    fresh = bearer(sandbox.issue_tokens(USER))
    assert (await client.get(f"/v2/boards/{board_id}", headers=fresh)).status_code == 404


async def test_unknown_admin_route_is_404(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    assert (await client.get("/_admin/nothing")).status_code == 404
    assert sandbox.requests() == []


async def test_a_call_whose_client_left_before_the_answer_is_logged_as_over(
    sandbox: Sandbox, auth: dict[str, str]
) -> None:
    # The client goes away before its body came, while the call waits for it (Quart then
    # cancels the call): the log must not show the call in flight forever (status None),
    # but ended, with 499 (the client closed the request).
    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    headers = [(b"authorization", auth["Authorization"].encode()), (b"host", b"miro.test")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v2/boards",
        "raw_path": b"/v2/boards",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }
    await sandbox.app(scope, receive, send)  # type: ignore[arg-type]
    (entry,) = sandbox.log.as_json()
    assert entry["path"] == "/v2/boards"
    assert sent == []
    assert entry["status"] == 499
