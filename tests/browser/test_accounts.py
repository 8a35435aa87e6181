"""Accounts in a real browser: the email banner and the profile page; removing a member.

A user created without an address (as ``manage.py up`` makes the admin) sees
"Add your email" on every page until they save one on their profile.
Removing a member goes through a confirmation page: only its button removes.
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

TEAM = "accounts-lab"
BANNER = "Add your email so alerts can reach you"


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("olive", team=TEAM)


@pytest.fixture(scope="module")
def member(make_user: Any, owner: Any) -> Any:
    return make_user("milo", team=TEAM, role="editor")


def in_team(live: LabbookServer, token: str) -> bool:
    """Whether the token's user is still in TEAM, as the API says."""
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.get(f"{live.url}/api/v1/teams", headers=headers, timeout=60, trust_env=False)
    assert response.status_code == 200, response.text
    return TEAM in response.text


def test_a_user_without_an_email_adds_it_from_the_banner(page, live, make_user):
    ada = make_user("ada-no-email", team="accounts-banner")
    log_in(page, live, ada.username, ada.password)
    banner = page.locator("[data-email-banner]")
    expect(banner).to_contain_text(BANNER)
    page.goto(f"{live.url}/accounts-banner/")
    expect(banner).to_be_visible()  # every page

    banner.get_by_role("link", name="add it on your profile").click()
    expect(page).to_have_url(f"{live.url}/settings/profile/")
    page.get_by_label("Email", exact=True).fill("not an address")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#profile-email-error")).to_contain_text("is not a valid email address")
    expect(banner).to_be_visible()

    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Email", exact=True).fill("ada@example.com")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Your profile was saved.")).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_have_value("ada@example.com")
    expect(banner).to_have_count(0)
    page.goto(f"{live.url}/")
    expect(page.get_by_text(BANNER)).to_have_count(0)


def test_the_banner_can_be_dismissed_for_the_session(page, live, make_user):
    bea = make_user("bea-no-email", team="accounts-dismiss")
    log_in(page, live, bea.username, bea.password)
    page.goto(f"{live.url}/accounts-dismiss/")
    page.get_by_role("button", name="Dismiss the email reminder").click()
    expect(page).to_have_url(f"{live.url}/accounts-dismiss/")  # back where it was
    expect(page.locator("[data-email-banner]")).to_have_count(0)
    page.goto(f"{live.url}/settings/tokens/")
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    expect(page.locator("[data-email-banner]")).to_have_count(0)


def test_removing_a_member_asks_first_and_only_the_confirmation_removes(page, live, owner, member):
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/settings/teams/{TEAM}/")
    row = page.locator(f"tr:has-text('{member.username}')")
    row.get_by_role("link", name=re.compile(f"Remove {member.username}")).click()

    expect(
        page.get_by_role("heading", name=f"Remove {member.username} from {TEAM}?")
    ).to_be_visible()
    assert in_team(live, member.token)  # showing the question removed nobody
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(f"{live.url}/settings/teams/{TEAM}/")
    expect(row).to_be_visible()
    assert in_team(live, member.token)

    row.get_by_role("link", name=re.compile(f"Remove {member.username}")).click()
    page.get_by_role("button", name=f"Remove {member.username}").click()
    expect(page.get_by_text(f"Removed {member.username} from {TEAM}.")).to_be_visible()
    expect(page).to_have_url(f"{live.url}/settings/teams/{TEAM}/")
    expect(page.locator(f"tr:has-text('{member.username}')")).to_have_count(0)
    assert not in_team(live, member.token)
