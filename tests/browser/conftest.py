"""Fixtures for real-browser tests: a real server, users with passwords, and chromium.

Playwright drives Debian's ``chromium`` (``/usr/bin/chromium``, or
``LABBOOK_CHROMIUM``); Playwright's own browser download is never used.
Without chromium the tests skip, and fail under LABBOOK_REQUIRE_SERVICES=1.

Playwright, chromium and the server are started once for this package and
stopped after its last test (package scope), so they do not idle through the
rest of the suite, and Playwright's event loop never outlives the tests that
use it.

A test that fails leaves a full-page screenshot in
``test-artifacts/browser/<test name>.png`` under the repository root.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.server import ROOT, LabbookServer, manage
from tests.support import services_free, skip_or_fail

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
SESSION_COOKIE = "sessionid"  # Django's default SESSION_COOKIE_NAME
# Ceilings, not expectations: a wait ends as soon as its condition holds, so only a
# broken page ever waits this long. Generous, since the suite runs on several xdist
# workers (and CI on a busy machine): a chart drawn 6 s late is late, not wrong.
WAIT_MS = 30_000  # every wait of a test: locators, expect(), clicks
NAVIGATION_MS = 60_000  # page loads
LAUNCH_MS = 120_000

FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Remember on the item whether its setup or call failed (read by ``page``)."""
    report = yield
    if report.when in ("setup", "call") and report.failed:
        item.stash[FAILED] = True
    return report


@dataclass
class User:
    username: str
    password: str
    token: str
    team: str


@pytest.fixture(scope="package", autouse=True)
def chromium() -> str:
    """The chromium binary; checked first so a missing one skips before anything starts."""
    path = os.environ.get("LABBOOK_CHROMIUM", "/usr/bin/chromium")
    if not os.access(path, os.X_OK):
        skip_or_fail(
            f"needs chromium at {path}: apt-get install chromium (or set LABBOOK_CHROMIUM)"
        )
    return path


@pytest.fixture(scope="package")
@services_free
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    """A real uvicorn server with its own SQLite home, shared by the browser tests."""
    with LabbookServer(tmp_path_factory.mktemp("browser-home")) as server:
        yield server


def set_password(server: LabbookServer, username: str, password: str) -> None:
    """Set a password in the server's database (``createtoken`` makes unusable ones)."""
    code = (
        "from django.contrib.auth import get_user_model\n"
        f"user = get_user_model().objects.get(username={username!r})\n"
        f"user.set_password({password!r})\n"
        "user.save(update_fields=['password'])\n"
    )
    manage(server.home, "shell", "--no-imports", "-c", code)


def create_user(server: LabbookServer, username: str, *, team: str, role: str = "owner") -> User:
    """A user of ``team`` with an API token and a password, in the server's database.

    One process (a second of CPU each), not two: ``createtoken`` run from a shell that
    then sets the password.
    """
    password = f"{username}-correct-horse-battery"
    code = (
        "from django.core.management import call_command\n"
        "from django.contrib.auth import get_user_model\n"
        f"call_command('createtoken', {username!r}, team={team!r}, role={role!r})\n"
        f"user = get_user_model().objects.get(username={username!r})\n"
        f"user.set_password({password!r})\n"
        "user.save(update_fields=['password'])\n"
    )
    token = manage(server.home, "shell", "--no-imports", "-c", code).strip()
    return User(username, password, token, team)


@pytest.fixture(scope="package")
def make_user(live: LabbookServer) -> Callable[..., User]:
    """``make_user("alice", team="acme")``: a user with a password and a token on ``live``."""
    return functools.partial(create_user, live)


@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)  # expect()'s own default is 5 s, whatever the context
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True, timeout=LAUNCH_MS
        )
        try:
            yield launched
        finally:
            launched.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page in a fresh context (no cookies); screenshot kept if the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(NAVIGATION_MS)
    try:
        tab = context.new_page()
        yield tab
        if request.node.stash.get(FAILED, False):
            save_screenshot(tab, request.node.name)
    finally:
        context.close()


REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}:${event.columnNumber}`;
  const what = `${event.violatedDirective} ${event.blockedURI}`;
  window.reportViolation(`${document.URL}: ${what} at ${where}`);
});
"""


@pytest.fixture
def watched(page: Any) -> Any:
    """``page``, reporting every policy violation of every document it opens.

    The test fails at its end if there was one. The reporting script is
    Playwright's, which the policy does not govern.
    """
    violations: list[str] = []
    page.context.expose_function("reportViolation", lambda text: violations.append(text))
    page.context.add_init_script(REPORT_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and violations.append(message.text)
        ),
    )
    yield page
    assert violations == []


def save_screenshot(tab: Any, test_name: str) -> Path | None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', test_name)}.png"
    try:
        tab.screenshot(path=str(path), full_page=True, timeout=WAIT_MS)
    except Exception as error:  # a screenshot must never hide the test's own failure
        print(f"could not save a screenshot to {path}: {error}")
        return None
    print(f"screenshot of the failed page: {path}")
    return path


# (server URL, username, password) -> the session cookie a login through the form got.
# Cleared for each module: a session carries state (a dismissed banner), so tests of one
# module share a login, never tests of two.
SESSIONS: dict[tuple[str, str, str], list[Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def sessions_of_this_module() -> Iterator[None]:
    SESSIONS.clear()
    yield
    SESSIONS.clear()


def log_in(page: Any, server: LabbookServer, username: str, password: str) -> None:
    """Log in and wait until the home page is there.

    Through the login form the first time in a module; after that, the user's session
    cookie from then is given to the page's context, which skips the form and the
    password hash (a quarter of a CPU second each). If that session has ended (a
    logout, a changed password), the form again.
    """
    key = (server.url, username, password)
    if cookies := SESSIONS.get(key):
        page.context.add_cookies(cookies)
        page.goto(f"{server.url}/")
        if "/login/" not in page.url:
            return
    page.goto(f"{server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))
    SESSIONS[key] = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
