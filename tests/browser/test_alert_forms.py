"""The alert forms in a real browser: only the chosen trigger's or kind's fields show.

``alerts.js`` hides, and disables, every fieldset of the rule form but the
chosen trigger's, and every part of the "Add a destination" form but the
chosen kind's. The tests pick each choice as a user would and look at what is
shown; they submit the forms and read back, through the API, what was saved,
and look at the posted body to prove the hidden inputs were not sent.

Hidden elements are found by their label or legend (``get_by_label``, CSS):
``get_by_role`` skips hidden ones, which would make ``to_be_hidden`` pass on
nothing, so each hidden check first expects the element to be there.
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

TEAM = "alerts-lab"
PROJECT = f"{TEAM}/vision"
NO_PARAMS = "No parameters: fires when a run finishes."

# trigger -> (legend of its fieldset, labels of its inputs)
TRIGGERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "run_failed": ("Run failed: statuses", ("failed", "crashed", "killed")),
    "run_stalled": ("Run stalled", ("Silent for (seconds)",)),
    "metric_threshold": (
        "Metric crosses a threshold",
        ("Metric key", "Operator", "Value", "For consecutive points"),
    ),
    "metric_window": (
        "Metric's mean, min or max over a window crosses a threshold",
        ("Metric key", "Aggregate", "Operator", "Value", "For consecutive points"),
    ),
    "metric_change": (
        "Metric is worse than its best or a baseline run",
        ("Metric key", "Better is", "Worse by more than (%)", "Than", "For consecutive points"),
    ),
    "metric_zscore": (
        "Metric is an outlier against its recent values",
        ("Metric key", "Against the previous (points)", "More than (standard deviations)"),
    ),
    "metric_nan": ("Metric is NaN or infinite", ("Metric key",)),
    "metric_stagnant": (
        "Metric stopped improving",
        ("Metric key", "Better is", "Patience (steps)"),
    ),
    "run_finished": ("Run finished", ()),
    "sdk_alert": ("Training code raised an alert: levels", ("info", "warn", "error")),
}
THRESHOLD_INPUTS = {f"metric_threshold.{name}" for name in ("key", "op", "value", "for_points")}


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("alma", team=TEAM)


@pytest.fixture(scope="module")
def project(live: LabbookServer, owner: Any) -> str:
    api(live, owner.token, "POST", "projects", team=TEAM, name="vision")
    return PROJECT


def rules_named(live: LabbookServer, token: str, name: str) -> list[dict[str, Any]]:
    rules = api(live, token, "GET", f"alert-rules?project={PROJECT}")
    return [rule for rule in rules if rule["name"] == name]


def fieldset(page: Any, legend: str) -> Any:
    """The fieldset with this legend, shown or not."""
    return page.locator("fieldset").filter(
        has=page.locator("legend").get_by_text(legend, exact=True)
    )


def expect_shown(locator: Any) -> None:
    expect(locator).to_be_visible()
    expect(locator).to_be_enabled()


def expect_gone(locator: Any) -> None:
    """There, but hidden: ``to_be_hidden`` alone also passes when nothing matches."""
    expect(locator).to_have_count(1)
    expect(locator).to_be_hidden()


def expect_trigger_shown(page: Any, chosen: str) -> None:
    """Exactly ``chosen``'s fieldset and inputs show; every other one is hidden and disabled."""
    for trigger, (legend, labels) in TRIGGERS.items():
        box = fieldset(page, legend)
        inputs = [box.get_by_label(label, exact=True) for label in labels]
        if trigger == chosen:
            expect_shown(box)
            for control in inputs:
                expect_shown(control)
        else:
            expect_gone(box)
            expect(box).to_have_js_property("disabled", True)  # so nothing in it is sent
            for control in inputs:
                expect_gone(control)
                expect(control).to_be_disabled()
    no_params = page.get_by_text(NO_PARAMS)
    if chosen == "run_finished":
        expect(no_params).to_be_visible()
    else:
        expect_gone(no_params)
    expect(page.get_by_label("Name", exact=True)).to_be_visible()  # the rule's own fields stay
    expect(page.get_by_label("Trigger")).to_have_value(chosen)


def open_new_rule(page: Any, live: LabbookServer, owner: Any, project: str) -> None:
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{project}/alerts/rules/new")
    expect(page.get_by_role("heading", name="New alert rule")).to_be_visible()


def fill_threshold(page: Any, *, key: str, op: str, value: str, points: str) -> None:
    box = fieldset(page, TRIGGERS["metric_threshold"][0])
    box.get_by_label("Metric key").fill(key)
    box.get_by_label("Operator").select_option(op)
    box.get_by_label("Value", exact=True).fill(value)
    box.get_by_label("For consecutive points").fill(points)


def submit(page: Any, button: str) -> dict[str, list[str]]:
    """Click ``button``; the form's posted body, as ``parse_qs`` reads it."""
    with page.expect_request(lambda request: request.method == "POST") as posted:
        page.get_by_role("button", name=button).click()
    return parse_qs(posted.value.post_data or "", keep_blank_values=True)


def following(locator: Any) -> Any:
    """The element right after ``locator``: where a field's error goes."""
    return locator.locator("xpath=following-sibling::*[1]")


def test_the_rule_form_shows_only_the_chosen_triggers_fields(page, live, owner, project):
    open_new_rule(page, live, owner, project)
    expect_trigger_shown(page, "run_failed")  # the default, before any change
    for trigger in [*TRIGGERS, "run_failed"]:
        page.get_by_label("Trigger").select_option(trigger)
        expect_trigger_shown(page, trigger)


def test_a_threshold_rule_is_saved_with_only_its_own_params(page, live, owner, project):
    open_new_rule(page, live, owner, project)
    trigger = page.get_by_label("Trigger")
    trigger.select_option("metric_nan")
    fieldset(page, "Metric is NaN or infinite").get_by_label("Metric key").fill("nan/key")
    trigger.select_option("run_stalled")
    # Below the input's min: were it still enabled, the browser would refuse to submit.
    fieldset(page, "Run stalled").get_by_label("Silent for (seconds)").fill("5")
    trigger.select_option("metric_threshold")
    page.get_by_label("Name", exact=True).fill("loss too high")
    fill_threshold(page, key="val/loss", op=">=", value="0.25", points="3")

    body = submit(page, "Create rule")
    assert body["trigger"] == ["metric_threshold"]
    assert {name for name in body if "." in name} == THRESHOLD_INPUTS
    expect(page).to_have_url(f"{live.url}/{project}/alerts/rules/")
    expect(page.get_by_text("Saved the rule loss too high.")).to_be_visible()
    row = page.locator("tr", has_text="loss too high")
    expect(row).to_contain_text("Metric crosses a threshold")
    expect(row).to_contain_text("Fires when val/loss >= 0.25 for 3 points in a row")

    [rule] = rules_named(live, owner.token, "loss too high")
    assert rule["trigger"] == "metric_threshold"
    assert rule["params"] == {"key": "val/loss", "op": ">=", "value": 0.25, "for_points": 3}


def test_a_bad_threshold_comes_back_next_to_its_field_with_its_fieldset(page, live, owner, project):
    open_new_rule(page, live, owner, project)
    page.get_by_label("Trigger").select_option("metric_threshold")
    page.get_by_label("Name", exact=True).fill("bad threshold")
    fill_threshold(page, key="train/loss", op="<", value="lots", points="2")
    submit(page, "Create rule")

    box = fieldset(page, TRIGGERS["metric_threshold"][0])
    value = box.get_by_label("Value", exact=True)
    expect(following(value)).to_have_text("A number.")
    expect(value).to_have_attribute("aria-invalid", "true")
    expect(value).to_have_value("lots")
    expect(box.get_by_label("Metric key")).to_have_value("train/loss")
    expect(box.get_by_label("Operator")).to_have_value("<")
    expect_trigger_shown(page, "metric_threshold")  # applied again on the returned page

    box.get_by_label("Metric key").fill("")
    value.fill("0.5")
    submit(page, "Create rule")
    key = box.get_by_label("Metric key")
    expect(following(key)).to_have_text("A metric key must be a non-empty string.")
    expect(key).to_have_attribute("aria-invalid", "true")
    expect(box.locator(".field-error")).to_have_count(1)  # the value's error is gone
    expect_trigger_shown(page, "metric_threshold")
    assert rules_named(live, owner.token, "bad threshold") == []


def add_destination_form(page: Any) -> Any:
    return page.locator("form", has=page.get_by_role("button", name="Add destination"))


def test_the_destination_form_shows_only_the_chosen_kinds_fields(page, live, owner):
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/settings/teams/{TEAM}/destinations/")
    form = add_destination_form(page)
    kind = form.get_by_label("Kind")
    addresses = form.get_by_label("Addresses")
    everyone = form.get_by_label(f"All members of {TEAM} instead")
    url = form.get_by_label("URL", exact=True)
    secret = form.get_by_label("Secret")

    expect(kind).to_have_value("email")  # the default, before any change
    for shown in (addresses, everyone):
        expect_shown(shown)
    for gone in (url, secret):
        expect_gone(gone)
        expect(gone).to_be_disabled()

    kind.select_option("slack")
    expect_shown(url)
    expect_gone(secret)
    for gone in (addresses, everyone):
        expect_gone(gone)
        expect(gone).to_be_disabled()

    kind.select_option("webhook")
    for shown in (url, secret):
        expect_shown(shown)
    for gone in (addresses, everyone):
        expect_gone(gone)

    kind.select_option("email")
    expect_shown(addresses)
    expect_shown(everyone)
    expect_gone(url)
    expect_gone(secret)


def test_an_email_destination_is_added_through_the_form(page, live, owner):
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/settings/teams/{TEAM}/destinations/")
    form = add_destination_form(page)
    form.get_by_label("Kind").select_option("webhook")
    form.get_by_label("URL", exact=True).fill("https://hooks.example.com/labbook")
    form.get_by_label("Secret").fill("not-to-be-sent")
    form.get_by_label("Kind").select_option("email")
    form.get_by_label("Name", exact=True).fill("oncall mail")
    form.get_by_label("Addresses").fill("oncall@example.com, ml@example.com")

    body = submit(page, "Add destination")
    assert body["kind"] == ["email"]
    assert "url" not in body and "secret" not in body
    expect(page.get_by_text("Added the destination oncall mail.")).to_be_visible()
    row = page.locator("tr", has_text="oncall mail")
    expect(row).to_contain_text("Email")
    expect(row).to_contain_text("oncall@example.com, ml@example.com")

    found = api(live, owner.token, "GET", f"destinations?team={TEAM}")
    [destination] = [d for d in found if d["name"] == "oncall mail"]
    assert destination["kind"] == "email"
    assert destination["config"] == {"addresses": ["oncall@example.com", "ml@example.com"]}
