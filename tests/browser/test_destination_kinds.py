"""The destination form in a real browser for PagerDuty, Microsoft Teams and Discord.

Each kind shows its own fields (``alerts.js``): PagerDuty an integration key
and an optional events URL, Teams and Discord a URL. Hidden fields are also
disabled, so the posted body holds only the chosen kind's. Saved
destinations are read back through the API, secrets masked.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

TEAM = "oncall-lab"
KEY = "PDKEYPDKEYPDKEYPDKEYPDKEYPDKEY12"
DISCORD = "https://discord.com/api/webhooks/42/T0KEN"


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("kira", team=TEAM)


def open_destinations(page: Any, live: LabbookServer, owner: Any) -> Any:
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/settings/teams/{TEAM}/destinations/")
    return page.locator("form", has=page.get_by_role("button", name="Add destination"))


def controls(form: Any) -> dict[str, Any]:
    return {
        "addresses": form.get_by_label("Addresses"),
        "url": form.get_by_label("URL", exact=True),
        "secret": form.get_by_label("Secret"),
        "routing_key": form.get_by_label("Integration key"),
        "events_url": form.get_by_label("Events URL"),
    }


SHOWN = {
    "pagerduty": {"routing_key", "events_url"},
    "teams": {"url"},
    "discord": {"url"},
    "webhook": {"url", "secret"},
}


def expect_only(form: Any, kind: str) -> None:
    for name, control in controls(form).items():
        if name in SHOWN[kind]:
            expect(control).to_be_visible()
            expect(control).to_be_enabled()
        else:
            expect(control).to_have_count(1)
            expect(control).to_be_hidden()
            expect(control).to_be_disabled()


def submit(page: Any, button: str) -> dict[str, list[str]]:
    with page.expect_request(lambda request: request.method == "POST") as posted:
        page.get_by_role("button", name=button).click()
    return parse_qs(posted.value.post_data or "", keep_blank_values=True)


def saved(live: LabbookServer, owner: Any, name: str) -> dict[str, Any]:
    found = api(live, owner.token, "GET", f"destinations?team={TEAM}")
    [destination] = [d for d in found if d["name"] == name]
    return destination


def test_each_new_kind_shows_its_own_fields(page, live, owner):
    form = open_destinations(page, live, owner)
    kind = form.get_by_label("Kind", exact=True)
    for chosen in ("pagerduty", "teams", "discord", "webhook", "pagerduty"):
        kind.select_option(chosen)
        expect_only(form, chosen)
    kind.select_option("teams")
    expect(form.get_by_text("The URL of a Teams workflow")).to_be_visible()
    expect(form.get_by_text("A Discord channel's webhook URL")).to_be_hidden()
    kind.select_option("discord")
    expect(form.get_by_text("A Discord channel's webhook URL")).to_be_visible()


def test_a_pagerduty_destination_is_saved_with_its_key_masked(page, live, owner):
    form = open_destinations(page, live, owner)
    form.get_by_label("Kind", exact=True).select_option("webhook")
    form.get_by_label("URL", exact=True).fill("https://hooks.example.com/not-sent")
    form.get_by_label("Kind", exact=True).select_option("pagerduty")
    form.get_by_label("Name", exact=True).fill("on call pager")
    form.get_by_label("Integration key").fill(KEY)

    body = submit(page, "Add destination")
    assert body["kind"] == ["pagerduty"]
    assert body["routing_key"] == [KEY]
    assert "url" not in body and "secret" not in body
    expect(page.get_by_text("Added the destination on call pager.")).to_be_visible()
    row = page.locator("tr", has_text="on call pager")
    expect(row).to_contain_text("PagerDuty")
    expect(row).to_contain_text("events.pagerduty.com")
    assert KEY not in page.content()

    destination = saved(live, owner, "on call pager")
    assert destination["kind"] == "pagerduty"
    assert destination["config"] == {
        "routing_key": "********",
        "url": "https://events.pagerduty.com/v2/enqueue",
    }

    row.get_by_role("link", name="Edit").click()
    edit = page.locator("form[data-form=edit-destination]")
    expect(edit.get_by_label("Integration key")).to_have_value("")
    expect(edit.get_by_label("Events URL")).to_have_value("https://events.pagerduty.com/v2/enqueue")
    expect(edit.get_by_label("URL", exact=True)).to_be_hidden()


def test_a_discord_destination_is_saved_with_its_token_masked(page, live, owner):
    form = open_destinations(page, live, owner)
    form.get_by_label("Kind", exact=True).select_option("discord")
    form.get_by_label("Name", exact=True).fill("ml channel")
    form.get_by_label("URL", exact=True).fill(DISCORD)

    body = submit(page, "Add destination")
    assert (body["kind"], body["url"]) == (["discord"], [DISCORD])
    assert "routing_key" not in body and "secret" not in body
    row = page.locator("tr", has_text="ml channel")
    expect(row).to_contain_text("Discord")
    expect(row).to_contain_text("discord.com")
    assert saved(live, owner, "ml channel")["config"] == {
        "url": "https://discord.com/api/webhooks/42/********"
    }
