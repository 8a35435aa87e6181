"""@-mentions and run references in comments, in a real browser.

Typing "@" in a comment box offers the team's members in a listbox; the posted
comment shows a mention badge and links run:<id> to that run's page.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import manage

pytestmark = pytest.mark.browser

TEAM = "mentions"
PROJECT = f"{TEAM}/demo"

NAMES = """
from django.contrib.auth import get_user_model
get_user_model().objects.filter(username="alice").update(first_name="Alice", last_name="Liddell")
"""


@pytest.fixture(scope="module")
def author(make_user: Any, live: Any) -> Any:
    author = make_user("mona", team=TEAM)
    make_user("alice", team=TEAM, role="editor")
    make_user("alfred", team=TEAM, role="viewer")
    make_user("bert", team=TEAM, role="viewer")
    make_user("alvin", team="elsewhere")  # not a member: never offered
    manage(live.home, "shell", "--no-imports", "-c", NAMES)
    return author


def new_run(live: Any, author: Any, name: str) -> int:
    return api(live, author.token, "POST", "runs", project=PROJECT, name=name)["id"]


def offered(page: Any) -> Any:
    return page.get_by_role("listbox", name="Teammates to mention").get_by_role("option")


def test_typing_at_offers_teammates_and_the_comment_links_them_and_the_run(page, live, author):
    run_id = new_run(live, author, "baseline")
    other_id = new_run(live, author, "wider-net")
    log_in(page, live, author.username, author.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")

    box = page.get_by_label("Add a comment")
    box.press_sequentially("Ask @al")
    expect(offered(page)).to_have_text(["alice Alice Liddell", "alfred"])
    expect(offered(page).first).to_have_attribute("aria-selected", "true")
    box.press("ArrowDown")
    expect(offered(page).nth(1)).to_have_attribute("aria-selected", "true")
    box.press("ArrowUp")
    expect(offered(page).first).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    expect(box).to_have_value("Ask @alice ")
    expect(offered(page)).to_have_count(0)

    box.press_sequentially(f"about run:{other_id}")
    page.get_by_role("button", name="Comment", exact=True).click()
    body = page.locator("#comments .comment-body").first
    expect(body.locator(".mention")).to_have_text("@alice")
    expect(body.locator(".mention")).to_have_attribute("title", "Alice Liddell")
    expect(body.locator(".badge")).to_have_text("running")
    body.get_by_role("link", name="wider-net").click()
    expect(page).to_have_url(re.compile(rf"/{PROJECT}/runs/{other_id}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("wider-net")


def test_a_report_comment_box_completes_by_name_with_the_mouse_and_escape_closes(
    page, live, author
):
    report = api(live, author.token, "POST", "reports", project=PROJECT, title="Mentions")
    log_in(page, live, author.username, author.password)
    page.goto(f"{live.url}/reports/{report['id']}/")

    box = page.get_by_label("Add a comment")
    box.press_sequentially("@lid")  # Alice's last name
    expect(offered(page)).to_have_text(["alice Alice Liddell"])
    box.press("Escape")
    expect(offered(page)).to_have_count(0)
    expect(box).to_have_value("@lid")

    box.fill("")
    box.press_sequentially("cc @b")
    offered(page).filter(has_text="bert").click()
    expect(box).to_have_value("cc @bert ")
    expect(box).to_be_focused()
    box.press_sequentially("and @alvin")  # a user of another team: nothing to offer
    expect(offered(page)).to_have_count(0)
    page.get_by_role("button", name="Comment", exact=True).click()
    body = page.locator("#comments .comment-body").first
    expect(body.locator(".mention")).to_have_text("@bert")
    expect(body).to_contain_text("and @alvin")
    expect(body.locator(".mention")).to_have_count(1)
