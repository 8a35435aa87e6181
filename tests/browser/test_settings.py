"""Settings in a real browser: an API token made, copied, used and revoked; a viewer's pages.

The token is used against the live server with httpx, as a script would.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

TEAM = "settings-lab"
SHOWN_ONCE = "it will not be shown again"


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("sasha", team=TEAM)


@pytest.fixture(scope="module")
def viewer(make_user: Any, owner: Any) -> Any:
    return make_user("vera", team=TEAM, role="viewer")


def teams_status(live: LabbookServer, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(
        f"{live.url}/api/v1/teams", headers=headers, timeout=60, trust_env=False
    ).status_code


def open_user_menu(page: Any, username: str) -> None:
    """With the keyboard, as the menu must allow: focus the summary, press Enter."""
    page.locator("summary", has_text=username).focus()
    page.keyboard.press("Enter")


def test_it_creates_a_token_shows_it_once_and_revokes_it(page, live, owner):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    log_in(page, live, owner.username, owner.password)
    open_user_menu(page, owner.username)
    page.get_by_role("link", name="API tokens").click()
    expect(page).to_have_url(f"{live.url}/settings/tokens/")

    page.get_by_label("Name").fill("browser token")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_text(SHOWN_ONCE)).to_be_visible()
    raw = page.get_by_label("New API token").input_value()
    assert raw.startswith("lb_")
    expect(page.locator("#new-token-curl")).to_contain_text(
        f'curl -H "Authorization: Bearer {raw}" {live.url}/api/v1/teams'
    )
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_text("Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    assert teams_status(live, raw) == 200

    page.reload()
    expect(page.get_by_text(SHOWN_ONCE)).to_have_count(0)
    assert raw not in page.content()

    row = page.locator("tr", has_text="browser token")
    expect(row.get_by_text("active")).to_be_visible()
    row.get_by_role("button", name="Revoke browser token").click()
    expect(page.get_by_text("Revoked the token browser token")).to_be_visible()
    expect(page.locator("tr", has_text="browser token").get_by_text("revoked")).to_be_visible()
    assert teams_status(live, raw) == 401


def test_a_viewer_sees_members_and_project_settings_without_controls(page, live, owner, viewer):
    created = httpx.post(
        f"{live.url}/api/v1/projects",
        json={"team": TEAM, "name": "vision"},
        headers={"Authorization": f"Bearer {owner.token}"},
        timeout=60,
        trust_env=False,
    )
    assert created.status_code == 201, created.text
    log_in(page, live, viewer.username, viewer.password)
    # vera has no email address: its banner's Dismiss is her own, not a control of the team.
    page.get_by_role("button", name="Dismiss the email reminder").click()
    expect(page.locator("[data-email-banner]")).to_have_count(0)

    open_user_menu(page, viewer.username)
    page.get_by_role("link", name=f"{TEAM} members").click()
    expect(page).to_have_url(f"{live.url}/settings/teams/{TEAM}/")
    expect(page.get_by_text("only its owners can invite, change or remove members")).to_be_visible()
    expect(page.locator("main tr", has_text=owner.username)).to_contain_text("owner")
    expect_no_controls(page)

    switcher = page.locator("details.team-switcher > summary")
    expect(switcher).to_have_text(f"Team: {TEAM}")  # the page's team is the current one
    switcher.click()
    page.get_by_role("link", name=re.compile(rf"^{TEAM}")).first.click()
    expect(page).to_have_url(f"{live.url}/{TEAM}/")
    page.get_by_role("link", name=f"Settings of {TEAM}/vision").click()
    expect(page).to_have_url(f"{live.url}/{TEAM}/vision/settings/")
    expect(page.get_by_text("only editors and owners can change this project")).to_be_visible()
    expect_no_controls(page)


def expect_no_controls(page: Any) -> None:
    main = page.locator("main")
    expect(main.locator("form")).to_have_count(0)
    expect(main.locator("input, select, textarea")).to_have_count(0)
    expect(main.get_by_role("button")).to_have_count(0)
