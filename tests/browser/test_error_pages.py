"""The error pages in chromium: styled in the site's frame, a way out that works, and no
sideways scroll on a phone; a revoked share link tells its reader so."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api

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
