"""Browser fixtures: Debian's Chromium driven by Playwright against the session's stack.

No browser is downloaded: Playwright launches the system's Chromium (PARLEY_CHROMIUM, else
/usr/bin/chromium, else `chromium` on PATH; `make browser` installs it with apt-get when root).
Without one every browser test is skipped, and the run's summary says so in capitals.
A failing test leaves a screenshot of each of its pages in .run/test-logs/browser/.
PARLEY_SCREENSHOTS_DIR (`make screenshots`) saves the main screens for the README.

Calls: Chromium gets a fake camera and microphone (a test pattern and a beep) and every context
may use them. `calls_stack` is a stack of its own for the calls tests that need other settings
(calls ring CALL_RING_SECONDS; its gateway hands out TURN credentials for `turnserver`, a coturn
on loopback, skipped loudly where Debian's coturn is not installed).
"""
import json
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.local.devstack import free_port
from tests.support.coturn import loopback_turnserver
from tests.support.infra import LOG_DIR, stack_of_its_own

SKIPPED_FOR_NO_CHROMIUM: list[str] = []
SKIPPED_FOR_NO_COTURN: list[str] = []
CALL_RING_SECONDS = 6
MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# What a page shows after a server round trip (RPC over RabbitMQ, MongoDB) may take more than
# Playwright's default 5 s on a loaded 2-core machine; a check that holds passes as soon as it does.
EXPECT_TIMEOUT_MS = 10_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


class BrowserSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_")

    chromium: str | None = None
    screenshots_dir: Path | None = None


def chromium_path(settings: BrowserSettings) -> str | None:
    for candidate in (settings.chromium, "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def browser_settings() -> BrowserSettings:
    return BrowserSettings()


@pytest.fixture(scope="session")
async def browser(browser_settings: BrowserSettings) -> AsyncIterator[Browser]:
    executable = chromium_path(browser_settings)
    if executable is None:
        SKIPPED_FOR_NO_CHROMIUM.append("no Chromium")
        pytest.skip("NO CHROMIUM: install Debian's `chromium` (make browser, as root) or set PARLEY_CHROMIUM")
    async with async_playwright() as playwright:
        # Chromium's sandbox needs user namespaces, which root in a container does not get.
        args = MEDIA_ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
        browser = await playwright.chromium.launch(executable_path=executable, args=args)
        yield browser
        await browser.close()


@pytest.fixture
def base_url(stack) -> str:
    return f"http://127.0.0.1:{stack.gateway_ports[0]}"


@pytest.fixture
def second_gateway_url(stack) -> str:
    return f"http://127.0.0.1:{stack.gateway_ports[1]}"


OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture
async def open_page(browser: Browser, base_url: str, request: pytest.FixtureRequest) -> AsyncIterator[OpenPage]:
    """`await open_page()` -> a page in a fresh browser profile (its own localStorage) at the
    web client, its browser language English (`locale="zh-CN"` for Chinese: the client picks
    its language from it); `await open_page(context=page.context)` -> another tab of the same profile."""
    contexts: list[BrowserContext] = []
    pages: list[Page] = []

    async def open_(
        context: BrowserContext | None = None, viewport: dict | None = None, url: str | None = None, locale: str = "en-US",
    ) -> Page:
        if context is None:
            context = await browser.new_context(
                viewport=viewport or DESKTOP, accept_downloads=True, permissions=["camera", "microphone"], locale=locale,
            )
            contexts.append(context)
        page = await context.new_page()
        pages.append(page)
        await page.goto(url or base_url)
        return page

    try:
        yield open_
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            await screenshots(pages, request.node.name)
    finally:  # closed even when a screenshot fails: no page of this test runs on into the next
        for context in contexts:
            await context.close()


async def screenshots(pages: list[Page], test_name: str) -> None:
    """A screenshot of each page still open, for a failed test; one that cannot be taken (a
    crashed or hung page) is skipped with a note, the others are still taken."""
    shots = LOG_DIR / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    for i, page in enumerate(pages):
        if page.is_closed():
            continue
        path = shots / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', test_name)}-{i}.png"
        try:
            await page.screenshot(path=str(path), timeout=10_000)
        except Exception as error:  # a missing screenshot must not hide the test's own failure
            print(f"[browser] no screenshot of page {i}: {error}")


@pytest.fixture
def shoot(browser_settings: BrowserSettings) -> Callable[[Page, str], Awaitable[None]]:
    """Save a screenshot for the docs when PARLEY_SCREENSHOTS_DIR is set; nothing otherwise."""

    async def save(page: Page, name: str) -> None:
        if browser_settings.screenshots_dir is not None:
            browser_settings.screenshots_dir.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(browser_settings.screenshots_dir / f"{name}.png"))

    return save


# --- calls: a stack with a short ring time and TURN, and a coturn for it ---------------------------
@pytest.fixture(scope="session")
def turn_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def turn_secret() -> str:
    return secrets.token_hex(24)


@pytest.fixture(scope="session")
async def calls_stack(test_env: dict[str, str], turn_port: int, turn_secret: str) -> AsyncIterator[str]:
    """The base URL of a one-gateway stack (its own namespace) whose calls ring CALL_RING_SECONDS
    and whose gateway offers TURN on 127.0.0.1:turn_port (UDP) with turn_secret."""
    overrides = {
        "PARLEY_CALL_RING_SECONDS": str(CALL_RING_SECONDS),
        "PARLEY_TURN_URLS": json.dumps([f"turn:127.0.0.1:{turn_port}?transport=udp"]),
        "PARLEY_TURN_SECRET": turn_secret,
    }
    async with stack_of_its_own(test_env, "calls-stack", overrides) as (stack, _):
        yield f"http://127.0.0.1:{stack.gateway_ports[0]}"


@pytest.fixture(scope="session")
def turnserver(turn_port: int, turn_secret: str) -> Iterator[None]:
    """Debian's coturn on 127.0.0.1:turn_port, loopback peers allowed (both browsers are here),
    checking credentials with turn_secret as the gateway makes them; its log in LOG_DIR."""
    server = shutil.which("turnserver")
    if server is None:
        SKIPPED_FOR_NO_COTURN.append("no turnserver")
        pytest.skip("NO COTURN: the call through TURN was not tried. "
                    "`sudo apt-get install --no-install-recommends coturn` (or `make coturn` as root), then run the tests again")
    with loopback_turnserver(server, turn_port, turn_secret, LOG_DIR / "browser-turnserver.log"):
        yield


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if SKIPPED_FOR_NO_CHROMIUM:
        terminalreporter.write_sep("#", "BROWSER TESTS SKIPPED: NO CHROMIUM", red=True, bold=True)
        terminalreporter.write_line(
            "Install Debian's chromium (`sudo apt-get install chromium`, or `make browser` as root) "
            "or set PARLEY_CHROMIUM to a Chromium binary, then run `make test` again."
        )
    if SKIPPED_FOR_NO_COTURN:
        terminalreporter.write_sep("#", "CALL THROUGH TURN SKIPPED: NO COTURN", red=True, bold=True)
        terminalreporter.write_line(
            "Install Debian's coturn (`sudo apt-get install --no-install-recommends coturn`, or `make coturn` as root), "
            "then run `make test` again."
        )
