"""The error pages in chromium: 404, 403 and a real 500 styled in the site's frame, a way
out that works, and no sideways scroll on a phone; a revoked share link tells its reader so."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import SQLITE_FILE, LabbookServer, manage

pytestmark = pytest.mark.browser

SIDEWAYS = "() => document.documentElement.scrollWidth > window.innerWidth"


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("erin", team="errors")


def test_a_missing_page_is_styled_and_leads_home(page, live, owner):
    log_in(page, live, owner.username, owner.password)
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        response = page.goto(f"{live.url}/errors/no-such-project/")
        assert response is not None and response.status == 404
        expect(page.locator(".error-code")).to_have_text("404")
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        assert page.locator(".topbar").is_visible()
        assert page.evaluate(SIDEWAYS) is False, f"scrolls sideways at {width} px"
    page.get_by_role("link", name="Go to your projects").click()
    page.wait_for_url(f"{live.url}/")


def test_a_revoked_share_link_says_so(page, browser, live, owner):
    api(live, owner.token, "POST", "projects", team="errors", name="notes")
    report = api(live, owner.token, "POST", "reports", project="errors/notes", title="T", body="x")
    link = api(live, owner.token, "POST", f"reports/{report['id']}/share-links")
    api(live, owner.token, "DELETE", f"share-links/{link['id']}")
    reader = browser.new_context()
    try:
        stranger = reader.new_page()
        response = stranger.goto(re.sub(r"^https?://[^/]+", live.url, link["url"]))
        assert response is not None and response.status == 404
        expect(stranger.get_by_role("heading", name="This share link was revoked")).to_be_visible()
        expect(stranger.get_by_text("Ask the person who sent it for a new link")).to_be_visible()
        expect(stranger.get_by_role("link", name="Log in")).to_have_attribute("href", "/login/")
    finally:
        reader.close()


def test_a_refused_page_says_why_in_the_frame(page, live, owner, make_user):
    viewer = make_user("fred", team="errors", role="viewer")
    log_in(page, live, viewer.username, viewer.password)
    response = page.goto(f"{live.url}/settings/teams/errors/audit/")  # owners only
    assert response is not None and response.status == 403
    expect(page.locator(".error-code")).to_have_text("403")
    expect(page.get_by_text("You cannot do this here")).to_be_visible()
    assert page.locator(".topbar").is_visible()


def test_a_server_error_is_styled_and_leads_home(page, tmp_path):
    """A real 500 from a real server: a page whose table is gone. The server is this test's."""
    with LabbookServer(tmp_path / "home") as server:
        with sqlite3.connect(server.home / SQLITE_FILE) as database:
            database.execute("DROP TABLE tracking_team")  # every page with a team fails
        username, password = "gus", "gus-correct-horse-battery"
        manage(
            server.home, "shell", "--no-imports", "-c", CREATE_SUPERUSER.format(username, password)
        )
        page.goto(f"{server.url}/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator(".error-code")).to_have_text("500")
        expect(page.get_by_role("heading", name=re.compile("went wrong", re.I))).to_be_visible()
        expect(page.get_by_role("link", name="Go to your projects")).to_have_attribute("href", "/")
        assert page.evaluate(SIDEWAYS) is False


CREATE_SUPERUSER = (
    "from django.contrib.auth import get_user_model\n"
    "get_user_model().objects.create_user({!r}, password={!r})\n"
)
