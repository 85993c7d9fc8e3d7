"""The operator's console through the real app: access, sessions, CSRF, and what it shows."""

from __future__ import annotations

import httpx
import pytest
import structlog

from miro_bridge.http.console import MAX_FAILURES, SESSION_SECONDS
from tests.http.console_support import CONSOLE_TOKEN, csrf_of, dead_letter, log_in
from tests.support import (
    OTHER_USER,
    USER,
    Bridge,
    ManualClock,
    Miro,
    StartBridge,
    bearer,
    connect,
    id_token,
    query_database,
    shape,
    wait_for_job,
)


@pytest.fixture
async def console(start_bridge: StartBridge) -> Bridge:
    return await start_bridge(console_token=CONSOLE_TOKEN)


# Access ---------------------------------------------------------------------------------


async def test_the_console_is_off_without_a_token(bridge: Bridge) -> None:
    for path in ("/_console", "/_console/", "/_console/login", "/_console/jobs"):
        response = await bridge.client.get(path)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"  # the contract's error body
    login = await bridge.client.post("/_console/login", data={"token": "anything"})
    assert login.status_code in (404, 405)


async def test_without_a_session_every_page_is_401_and_the_login_form(console: Bridge) -> None:
    for path in ("/_console/", "/_console/jobs", "/_console/dead-letters", "/_console/users"):
        response = await console.client.get(path)
        assert response.status_code == 401
        assert 'name="token"' in response.text
        assert response.headers["cache-control"] == "no-store"
    retry = await console.client.post("/_console/dead-letters/x/0/retry", data={"csrf": "x"})
    assert retry.status_code == 401


async def test_a_miro_user_id_or_id_token_does_not_get_in(console: Bridge) -> None:
    for headers in (
        {"X-User-Id": USER},
        bearer(id_token()),
        {"X-User-Id": USER, **bearer(id_token())},
        bearer(CONSOLE_TOKEN),  # not even the console token, other than through the form
    ):
        response = await console.client.get("/_console/", headers=headers)
        assert response.status_code == 401


async def test_a_wrong_token_is_401_logged_and_limited_per_address(
    console: Bridge, clock: ManualClock
) -> None:
    client = httpx.AsyncClient(base_url=console.url, timeout=30)
    form = await client.get("/_console/login")
    csrf = csrf_of(form.text)
    with structlog.testing.capture_logs() as logs:
        for _ in range(MAX_FAILURES):
            response = await client.post(
                "/_console/login", data={"csrf": csrf, "operator": "Eve", "token": "gu\u00e9ss"}
            )
            assert response.status_code == 401
            assert "Wrong token" in response.text
            assert "set-cookie" in response.headers  # a fresh login form
            csrf = csrf_of(response.text)
    refused = [line for line in logs if line["event"] == "console.login_refused"]
    assert len(refused) == MAX_FAILURES
    assert refused[0]["client"] == "127.0.0.1"
    assert all("gu\u00e9ss" not in str(line) for line in logs)
    right = {"csrf": csrf, "operator": "Eve", "token": CONSOLE_TOKEN}
    limited = await client.post("/_console/login", data=right)
    assert limited.status_code == 429  # even the right token, until the window has passed
    assert int(limited.headers["retry-after"]) > 0
    clock.advance(int(limited.headers["retry-after"]))
    assert (await client.post("/_console/login", data=right)).status_code == 303
    await client.aclose()


async def test_the_session_cookie_is_signed_httponly_strict_and_expires(
    console: Bridge, clock: ManualClock
) -> None:
    client = await log_in(console)
    set_cookie = (await client.get("/_console/login")).headers["set-cookie"].lower()
    assert "httponly" in set_cookie
    assert "samesite=strict" in set_cookie
    assert "secure" not in set_cookie  # plain HTTP here
    assert "path=/_console" in set_cookie
    await client.aclose()

    client = await log_in(console)
    overview = await client.get("/_console/")
    assert overview.status_code == 200
    assert overview.headers["cache-control"] == "no-store"
    assert "script-src" not in overview.headers["content-security-policy"]  # none runs
    value = client.cookies["miro_console"]
    await client.aclose()

    async def with_cookie(cookie: str) -> int:
        headers = {"Cookie": f"miro_console={cookie}"}
        return (await console.client.get("/_console/", headers=headers)).status_code

    assert await with_cookie(value) == 200
    payload, _, signature = value.rpartition(".")
    assert await with_cookie(f"{payload}.{signature[::-1]}") == 401  # a signature of nothing
    assert await with_cookie(f"{payload}x.{signature}") == 401  # not what was signed
    assert await with_cookie("") == 401
    clock.advance(SESSION_SECONDS + 1)
    assert await with_cookie(value) == 401  # expired


async def test_the_cookie_is_secure_over_https(console: Bridge) -> None:
    # The proxy in front (a trusted one: loopback) says the request came over HTTPS.
    client = httpx.AsyncClient(
        base_url=console.url, timeout=30, headers={"X-Forwarded-Proto": "https"}
    )
    response = await client.get("/_console/login")
    assert "secure" in response.headers["set-cookie"].lower()
    await client.aclose()


async def test_a_post_without_the_csrf_token_is_403(console: Bridge, miro: Miro) -> None:
    job_id, _ = await dead_letter(console, miro)
    client = await log_in(console)
    path = f"/_console/dead-letters/{job_id}/0/retry"
    assert (await client.post(path, data={})).status_code == 403
    assert (await client.post(path, data={"csrf": "not-the-token"})).status_code == 403
    assert (await client.post(path, data={"csrf": "n\u00f6t-ascii"})).status_code == 403
    assert (await client.post("/_console/logout", data={})).status_code == 403
    login = httpx.AsyncClient(base_url=console.url, timeout=30)
    await login.get("/_console/login")
    no_csrf = {"operator": "Ada", "token": CONSOLE_TOKEN}
    assert (await login.post("/_console/login", data=no_csrf)).status_code == 403
    await login.aclose()
    # Nothing was retried.
    assert query_database(console.settings, "SELECT count(*) FROM dead_letters") == [(1,)]
    assert query_database(console.settings, "SELECT count(*) FROM console_audit") == [(0,)]
    await client.aclose()


async def test_logout_ends_the_session(console: Bridge) -> None:
    client = await log_in(console, "<b>Ada</b>")
    page = await client.get("/_console/")
    assert "&lt;b&gt;Ada&lt;/b&gt;" in page.text  # what anyone types is escaped
    assert "<b>Ada</b>" not in page.text
    response = await client.post("/_console/logout", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 303
    assert (await client.get("/_console/")).status_code == 401
    await client.aclose()


# What it shows and does -------------------------------------------------------------------


@pytest.mark.backends
async def test_retry_puts_a_dead_letter_back_and_it_is_done_at_miro(
    console: Bridge, miro: Miro
) -> None:
    job_id, board_id = await dead_letter(console, miro)
    client = await log_in(console, "Grace")
    letters = await client.get("/_console/dead-letters")
    assert job_id in letters.text
    assert "Miro answered 503" in letters.text
    page = await client.get(f"/_console/jobs/{job_id}")
    assert "enqueued-by-this-request" in page.text  # links logs and traces
    assert "dead letter" in page.text
    response = await client.post(
        f"/_console/dead-letters/{job_id}/0/retry",
        data={"csrf": csrf_of(page.text), "next": f"/_console/jobs/{job_id}"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/_console/jobs/{job_id}"
    job = await wait_for_job(console, job_id)
    assert job["status"] == "done"
    assert job["operations"][0]["itemId"]
    done = await client.get(f"/_console/jobs/{job_id}")
    assert 'data-status="done"' in done.text
    assert job["operations"][0]["itemId"] in done.text
    letters = await client.get("/_console/dead-letters")
    assert "No dead letters." in letters.text
    assert "Grace" in letters.text  # the audit log: who
    audit = query_database(
        console.settings, "SELECT operator, action, job_id, seq FROM console_audit"
    )
    assert [tuple(row) for row in audit] == [("Grace", "retry", job_id, 0)]
    again = await client.post(
        f"/_console/dead-letters/{job_id}/0/retry", data={"csrf": csrf_of(page.text)}
    )
    assert again.status_code == 409  # not a dead letter any more
    assert board_id
    await client.aclose()


@pytest.mark.backends
async def test_discard_leaves_the_operation_failed_and_is_audited(
    console: Bridge, miro: Miro
) -> None:
    job_id, _ = await dead_letter(console, miro)
    client = await log_in(console, "Linus")
    page = await client.get("/_console/dead-letters")
    response = await client.post(
        f"/_console/dead-letters/{job_id}/0/discard", data={"csrf": csrf_of(page.text)}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/_console"
    job = (await console.client.get(f"/api/jobs/{job_id}", headers={"X-User-Id": USER})).json()
    assert job["status"] == "failed"
    letters = await client.get("/_console/dead-letters")
    assert "No dead letters." in letters.text
    assert "discard" in letters.text
    assert "Linus" in letters.text
    await client.aclose()


@pytest.mark.backends
async def test_jobs_are_found_by_user_board_and_status(console: Bridge, miro: Miro) -> None:
    failed_job, board_id = await dead_letter(console, miro)
    await connect(console, miro, OTHER_USER)
    other_board = str(miro.sandbox.create_board(OTHER_USER)["id"])
    response = await console.client.post(
        "/api/batch",
        json={"boardId": other_board, "operations": [{"type": "create_shape", "data": shape(2)}]},
        headers={"X-User-Id": OTHER_USER},
    )
    other_job = response.json()["jobId"]
    await wait_for_job(console, other_job, OTHER_USER)
    client = await log_in(console)
    everything = await client.get("/_console/jobs")
    assert failed_job in everything.text
    assert other_job in everything.text
    by_user = await client.get("/_console/jobs", params={"user": OTHER_USER})
    assert other_job in by_user.text
    assert failed_job not in by_user.text
    by_board = await client.get("/_console/jobs", params={"board": board_id})
    assert failed_job in by_board.text
    assert other_job not in by_board.text
    by_status = await client.get("/_console/jobs", params={"status": "failed"})
    assert failed_job in by_status.text
    assert other_job not in by_status.text
    later = await client.get("/_console/jobs", params={"since": "2999-01-01T00:00"})
    assert "No job matches." in later.text
    assert (await client.get("/_console/jobs/no-such-job")).status_code == 404
    await client.aclose()


@pytest.mark.backends
async def test_overview_and_users_show_the_service_never_a_token(
    console: Bridge, miro: Miro
) -> None:
    await dead_letter(console, miro)
    access_token = await connect(console, miro)  # the tokens stored for USER now
    issued = miro.sandbox.issue_tokens(OTHER_USER)
    await console.client.post(
        "/api/users",
        json={
            "id": OTHER_USER,
            "name": "Other",
            "access_token": issued["access_token"],
            "refresh_token": issued["refresh_token"],
            "expires_at": "",
        },
    )
    client = await log_in(console)
    overview = await client.get("/_console/")
    assert overview.status_code == 200
    backend = "sqlite" if console.settings.database_url.startswith("sqlite") else "postgresql"
    assert f'id="backend">{backend}<' in overview.text
    assert "<svg" in overview.text
    for actor in ("store", "token_store", "miro_client", "board_cache", "job_queue"):
        assert f"<td>{actor}</td>" in overview.text
    assert "Dead letters" in overview.text
    assert USER in overview.text  # a credit budget bar for the user who called Miro
    users = await client.get("/_console/users")
    assert USER in users.text
    assert OTHER_USER in users.text
    assert "connected" in users.text
    secrets = [CONSOLE_TOKEN, issued["access_token"], issued["refresh_token"], access_token]
    job_id = query_database(console.settings, "SELECT job_id FROM dead_letters")[0][0]
    for path in (
        "/_console/",
        "/_console/users",
        "/_console/jobs",
        f"/_console/jobs/{job_id}",
        "/_console/dead-letters",
        "/_console/login",
    ):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        shown = response.text + str(response.headers)
        for secret in secrets:
            assert secret not in shown, path
    await client.aclose()


async def test_the_console_is_not_in_the_openapi_document(console: Bridge) -> None:
    document = (await console.client.get("/openapi.json")).json()
    assert document["paths"]
    assert not [path for path in document["paths"] if path.startswith("/_console")]
