"""Acting on an alert in a real browser, and the destinations page's rows at 1280 and 390 px.

The alert page's buttons acknowledge the alert and silence its rule (each
posts to the same signed action URL a notification links to). On the
destinations page, a destination whose last delivery failed with a long
error shows that error in full, and its row's buttons never cover it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

TEAM = "pagers"
PROJECT = f"{TEAM}/acting"
# No such host (.invalid never resolves): the test message fails with a long reason.
UNREACHABLE = "http://" + "a-host-name-that-goes-on-and-on." * 3 + "nowhere.invalid/hook"

# The boxes of a row's error text and of its buttons, and whether the text is clipped.
ROW_BOXES = """(row) => {
  const box = (element) => {
    const r = element.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  };
  const error = row.querySelector('.alert-error');
  return {
    error: box(error),
    clipped: error.scrollWidth > error.clientWidth + 1,
    buttons: [...row.querySelectorAll('.actions .button')].map(box),
    page: document.documentElement.clientWidth,
  };
}"""


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and (b["top"] < a["bottom"])
    )


@pytest.fixture(scope="module")
def owner(live: LabbookServer, make_user: Any) -> Any:
    user = make_user("ines", team=TEAM)
    email = api(
        live, user.token, "POST", "destinations", team=TEAM, kind="email", name="oncall",
        config={"addresses": ["oncall@example.org"]},
    )  # fmt: skip
    hook = api(
        live, user.token, "POST", "destinations", team=TEAM, kind="webhook",
        name="the-webhook-of-the-night-shift", config={"url": UNREACHABLE, "secret": "s" * 32},
    )  # fmt: skip
    tested = api(live, user.token, "POST", f"destinations/{hook['id']}/test")
    assert tested["status"] == "failed" and len(tested["last_error"]) > 60, tested
    run = api(live, user.token, "POST", "runs", project=PROJECT, name="night-run")["id"]
    api(
        live, user.token, "POST", "alert-rules", project=PROJECT, name="failures",
        trigger="run_failed", destinations=[email["id"]], group_wait=0,
    )  # fmt: skip
    api(live, user.token, "PATCH", f"runs/{run}", status="failed", error="CUDA out of memory")
    return user


def test_the_alert_page_acknowledges_and_silences(page: Any, live: LabbookServer, owner: Any):
    [alert] = api(live, owner.token, "GET", f"alerts?project={PROJECT}")
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/alerts/{alert['id']}/")
    expect(page.locator("[data-fires-when]")).to_have_text(
        "Fires when a run ends failed, crashed or killed."
    )
    actions = page.locator("[data-alert-actions]")
    expect(actions.get_by_role("button")).to_have_text(
        ["Acknowledge", "Silence 1 hour", "Silence 1 day"]
    )

    actions.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Acknowledged: this alert sends no more reminders.")).to_be_visible()
    expect(page).to_have_url(f"{live.url}/alerts/{alert['id']}/")
    expect(page.locator(".details [data-acknowledged]")).to_contain_text("Acknowledged by ines at")
    expect(actions.get_by_role("button")).to_have_text(["Silence 1 hour", "Silence 1 day"])

    actions.get_by_role("button", name="Silence 1 hour").click()
    expect(
        page.get_by_text(re.compile(r"Silenced the rule failures until .* UTC\."))
    ).to_be_visible()
    [silence] = api(live, owner.token, "GET", f"silences?project={PROJECT}")
    assert silence["reason"] == "from a notification link" and silence["active"]
    [acknowledged] = api(live, owner.token, "GET", f"alerts?project={PROJECT}")
    assert acknowledged["acknowledged_by"] == "ines"


@pytest.mark.parametrize("width", [1280, 390])
def test_a_long_last_error_stays_in_full_view_beside_the_buttons(
    page: Any, live: LabbookServer, owner: Any, width: int
):
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/settings/teams/{TEAM}/destinations/")
    row = page.locator("tr", has_text="the-webhook-of-the-night-shift")
    expect(row.locator(".alert-error")).to_be_visible()
    boxes = row.evaluate(ROW_BOXES)
    assert len(boxes["buttons"]) == 4
    for button in boxes["buttons"]:
        assert not overlap(boxes["error"], button), (width, boxes)
        assert button["right"] <= boxes["page"] + 1, (width, boxes)
    assert not boxes["clipped"], (width, boxes)
    assert boxes["error"]["right"] <= boxes["page"] + 1, (width, boxes)
