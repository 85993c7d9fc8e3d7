"""The console in a real headless Chromium (Debian's), driven by Selenium and chromedriver.

An operator logs in, finds a user's job, opens it, retries its dead letter, sees the
operation back to `pending` (the user's other work holds its two running units at the
sandbox's door meanwhile), then `done` at the sandbox Miro. The screenshot it takes is the
README's: with `MIRO_UPDATE_SCREENSHOT=1` it is written to `docs/console.png`, else to the
test's temporary directory (a test run leaves the tree as it found it).

Skipped, with the reason, when Chromium or chromedriver is missing, unless
`MIRO_TEST_REQUIRE_BROWSER=1` (as `.ci/run` sets): then it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from miro_bridge.sandbox import Sandbox, SandboxConfig
from tests.http.console_support import CONSOLE_TOKEN, dead_letter
from tests.support import (
    OTHER_USER,
    USER,
    Bridge,
    Gate,
    Miro,
    ServeASGI,
    StartBridge,
    connect,
    query_database,
    shape,
    wait_for_job,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).parents[2] / "docs" / "console.png"
T = TypeVar("T")


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture
def driver() -> Iterator[Any]:
    """A headless Chromium of Debian's, driven through its own chromedriver (no download)."""
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("MIRO_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MIRO_TEST_REQUIRE_BROWSER=1, but {missing}")
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-first-run",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def gate(sandbox_config: SandboxConfig) -> Gate:
    return Gate(Sandbox(sandbox_config), "/items/bulk")


@pytest.fixture
async def miro(serve_asgi: ServeASGI, gate: Gate) -> Miro:
    return Miro(gate.sandbox, await serve_asgi(gate))


def submit(driver: Any, button: WebElement) -> None:
    """Click `button` and wait until the page it was on has been replaced by the answer."""
    page = driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(page))


async def in_browser(step: Callable[[], T]) -> T:
    """Run a (blocking) WebDriver step in a thread, while the service goes on serving."""
    return await trio.to_thread.run_sync(step)


async def test_an_operator_retries_a_dead_letter_in_chromium(
    start_bridge: StartBridge, miro: Miro, gate: Gate, driver: Any, tmp_path: Path
) -> None:
    bridge: Bridge = await start_bridge(console_token=CONSOLE_TOKEN)
    job_id, _ = await dead_letter(bridge, miro)
    await connect(bridge, miro, OTHER_USER)  # someone else's job, which the filter leaves out
    other_board = str(miro.sandbox.create_board(OTHER_USER)["id"])
    other = await bridge.client.post(
        "/api/batch",
        json={"boardId": other_board, "operations": [{"type": "create_shape", "data": shape(5)}]},
        headers={"X-User-Id": OTHER_USER},
    )
    await wait_for_job(bridge, other.json()["jobId"], OTHER_USER)

    def log_in() -> None:
        driver.get(f"{bridge.url}/_console/login")
        driver.find_element(By.NAME, "operator").send_keys("Ada")
        driver.find_element(By.NAME, "token").send_keys(CONSOLE_TOKEN)
        submit(driver, driver.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        assert driver.find_element(By.TAG_NAME, "h1").text == "Overview"

    def find_and_open_the_job() -> None:
        submit(driver, driver.find_element(By.LINK_TEXT, "Jobs"))
        driver.find_element(By.NAME, "user").send_keys(USER)
        submit(driver, driver.find_element(By.CSS_SELECTOR, "form.filters button"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#jobs a")
        assert [row.text for row in rows] == [job_id]  # the other user's job is filtered out
        submit(driver, rows[0])
        assert job_id in driver.find_element(By.TAG_NAME, "h1").text
        assert driver.find_element(By.ID, "request-id").text == "enqueued-by-this-request"
        assert status_of_first_operation() == "failed"

    def status_of_first_operation() -> str:
        found: str = driver.find_element(By.CSS_SELECTOR, "#op-0 [data-status]").text
        return found

    def retry() -> str:
        submit(driver, driver.find_element(By.CSS_SELECTOR, "#op-0 button.primary"))
        return status_of_first_operation()

    def reload_status() -> str:
        driver.refresh()
        return status_of_first_operation()

    await in_browser(log_in)
    await in_browser(find_and_open_the_job)

    # The user's other work takes both of their running units and waits at Miro's door:
    # the retried operation cannot start yet, so the page shows it pending.
    gate.closed = True
    boards = [str(miro.sandbox.create_board(USER)["id"]) for _ in range(2)]
    blockers = [
        await bridge.client.post(
            "/api/batch",
            json={"boardId": board, "operations": [{"type": "create_shape", "data": shape(9)}]},
            headers={"X-User-Id": USER},
        )
        for board in boards
    ]
    working = "SELECT count(*) FROM operations WHERE status = 'working'"
    with trio.fail_after(30):
        while True:  # the database is another process's to change: polled
            if query_database(bridge.settings, working) == [(2,)]:
                break
            await trio.sleep(0.01)
    assert await in_browser(retry) == "pending"
    assert await in_browser(reload_status) == "pending"

    gate.opened.set()
    job = await wait_for_job(bridge, job_id)
    assert job["status"] == "done"
    for blocker in blockers:
        await wait_for_job(bridge, blocker.json()["jobId"])
    assert await in_browser(reload_status) == "done"
    item_id = job["operations"][0]["itemId"]
    assert item_id in (await in_browser(lambda: driver.page_source))
    assert miro.sandbox.requests()  # the sandbox saw the create
    created = [
        r
        for r in miro.sandbox.requests()
        if r["path"].endswith("/items/bulk") and r["status"] == 201
    ]
    assert created

    screenshot = SCREENSHOT if os.environ.get("MIRO_UPDATE_SCREENSHOT") else tmp_path / "c.png"
    screenshot.parent.mkdir(exist_ok=True)
    assert await in_browser(lambda: driver.save_screenshot(str(screenshot)))
    assert screenshot.stat().st_size > 10_000
