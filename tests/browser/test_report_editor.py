"""The report editor in a real browser: write with the chart builder, preview, save, conflict.

Runs and points are logged through the HTTP API as a training job would; the
report is created from the project's reports page and written in the editor.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import NAVIGATION_MS, WAIT_MS, log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

TEAM = "writers"
PROJECT = f"{TEAM}/paper"
DRAWN = ".plot .main-svg"  # Plotly drew the figure


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("rita", team=TEAM)


@pytest.fixture(scope="module")
def teammate(make_user: Any, owner: Any) -> Any:
    return make_user("emil", team=TEAM, role="editor")


@pytest.fixture(scope="module")
def run_id(live: LabbookServer, owner: Any) -> int:
    """A run with 40 points of ``loss``; logging it creates the project too."""
    return new_run_with_points(live, owner.token, "baseline")


@pytest.fixture
def second_page(browser: Any) -> Iterator[Any]:
    """Another browser context: a teammate at another computer."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(NAVIGATION_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def new_run_with_points(live: LabbookServer, token: str, name: str) -> int:
    run_id = api(live, token, "POST", "runs", project=PROJECT, name=name)["id"]
    points = [{"key": "loss", "step": s, "value": 1.0 / (s + 1)} for s in range(40)]
    api(live, token, "POST", f"runs/{run_id}/metrics", points=points)
    return run_id


def open_editor(page: Any, live: LabbookServer, report_id: int) -> None:
    page.goto(f"{live.url}/reports/{report_id}/edit")
    expect(page.locator("[data-preview-state]")).to_have_text("Up to date")


def test_it_writes_a_report_with_a_chart_and_publishes_it(page, live, owner, run_id):
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/reports/")
    page.get_by_role("link", name="New report").click()
    page.get_by_label("Title").fill("Loss study")
    page.get_by_role("button", name="Create and edit").click()
    page.wait_for_url(re.compile(r"/reports/\d+/edit$"))
    expect(page.locator("[data-preview-state]")).to_have_text("Up to date")

    body = page.get_by_label("Markdown")
    body.fill("# Findings\n\nThe baseline converges.\n")
    body.press("Control+End")
    page.get_by_role("button", name="Insert chart").click()
    builder = page.locator("dialog[data-builder]")
    builder.get_by_label("baseline").check()
    builder.get_by_label("loss", exact=True).check()
    builder.get_by_label("Title optional").fill("Training loss")
    expect(builder.get_by_label("Block to insert")).to_have_value(
        re.compile(rf"```chart\nruns: \[{run_id}\]\nmetrics: \[loss\]\nx: step\n")
    )
    builder.get_by_role("button", name="Insert", exact=True).click()
    expect(builder).to_be_hidden()
    expect(body).to_have_value(re.compile(r"converges\.\n\n```chart\n[\s\S]*\n```\n$"))

    preview = page.locator("[data-preview]")
    expect(preview.get_by_role("heading", name="Findings")).to_be_visible()
    expect(preview.locator(DRAWN).first).to_be_visible()
    expect(page.locator("[data-draft-status]")).to_contain_text("Draft saved")

    page.get_by_role("button", name="Save and view").click()
    page.wait_for_url(re.compile(r"/reports/\d+/$"))
    expect(page.get_by_role("heading", name="Loss study")).to_be_visible()
    expect(page.locator(f".report-body {DRAWN}").first).to_be_visible()
    report_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    saved = api(live, owner.token, "GET", f"reports/{report_id}")
    assert saved["revision"] == 2
    assert "```chart" in saved["body"]


def test_a_second_save_of_the_same_revision_shows_the_conflict(
    page, second_page, live, owner, teammate
):
    report = api(
        live, owner.token, "POST", "reports", project=PROJECT, title="Shared notes", body="start\n"
    )
    log_in(page, live, owner.username, owner.password)
    log_in(second_page, live, teammate.username, teammate.password)
    open_editor(page, live, report["id"])
    open_editor(second_page, live, report["id"])

    page.get_by_label("Markdown").fill("start\nfrom rita\n")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("[data-status]")).to_contain_text("Saved revision 2")

    second_page.get_by_label("Markdown").fill("start\nfrom emil\n")
    second_page.keyboard.press("Control+s")
    conflict = second_page.locator("[data-conflict]")
    expect(conflict).to_be_visible()
    expect(conflict.get_by_role("heading", level=2)).to_have_text(
        "Your edit and rita's edit overlap"
    )
    (hunk,) = conflict.locator("[data-hunk]").all()
    expect(hunk.locator("legend")).to_have_text("Your line 2")
    expect(hunk.locator("[data-context-before]")).to_have_text("start")
    expect(hunk.locator("[data-hunk-theirs]")).to_have_text("from rita")
    expect(hunk.locator("[data-hunk-mine]")).to_have_text("from emil")
    expect(second_page.get_by_label("Markdown")).to_have_value("start\nfrom emil\n")  # kept
    theirs = api(live, owner.token, "GET", f"reports/{report['id']}")
    assert theirs["body"].strip() == "start\nfrom rita"

    save = conflict.get_by_role("button", name="Save the merge")
    expect(save).to_be_disabled()  # nothing is saved before each overlap has a choice
    hunk.get_by_label("Keep mine").check()
    save.click()
    expect(conflict).to_be_hidden()
    status = second_page.locator("[data-status]")
    expect(status).to_contain_text("Saved revision 3, merged with rita's edit")
    saved = api(live, owner.token, "GET", f"reports/{report['id']}")
    assert (saved["revision"], saved["body"].strip()) == (3, "start\nfrom emil")


LINES = "\n".join(f"line {n}" for n in range(1, 7))


def edit_line(page: Any, old: str, new: str) -> None:
    body = page.get_by_label("Markdown")
    body.fill(body.input_value().replace(old, new))


def test_edits_to_different_lines_merge_and_overlapping_ones_are_chosen_side_by_side(
    page, second_page, live, owner, teammate
):
    report = api(live, owner.token, "POST", "reports", project=PROJECT, title="Plan", body=LINES)
    url = f"reports/{report['id']}"
    log_in(page, live, owner.username, owner.password)
    log_in(second_page, live, teammate.username, teammate.password)
    open_editor(page, live, report["id"])
    open_editor(second_page, live, report["id"])

    edit_line(page, "line 1", "line 1 by rita")
    page.keyboard.press("Control+s")
    expect(page.locator("[data-status]")).to_contain_text("Saved revision 2")

    edit_line(second_page, "line 5", "line 5 by emil")
    second_page.get_by_role("button", name="Save", exact=True).click()
    conflict = second_page.locator("[data-conflict]")
    expect(conflict.get_by_role("heading", level=2)).to_have_text("Merged with rita's edit")
    merged = conflict.get_by_label("Merged text")
    expect(merged.locator(".merge-from-theirs")).to_have_text(["line 1\n", "line 1 by rita\n"])
    expect(merged.locator("span.merge-from-mine")).to_have_text(["line 5 by emil\n"])
    expect(second_page.locator("[data-status]")).to_contain_text(
        "Not saved yet: merged with rita's edit"
    )
    assert api(live, owner.token, "GET", url)["revision"] == 2  # not before emil says so
    conflict.get_by_role("button", name="Save the merge").click()
    expect(second_page.locator("[data-status]")).to_contain_text(
        "Saved revision 3, merged with rita's edit"
    )
    both = LINES.replace("line 1", "line 1 by rita").replace("line 5", "line 5 by emil")
    expect(second_page.get_by_label("Markdown")).to_have_value(both)
    assert api(live, owner.token, "GET", url)["body"] == both

    edit_line(second_page, "line 3", "line 3 by emil")  # emil, now at revision 3
    second_page.keyboard.press("Control+s")
    expect(second_page.locator("[data-status]")).to_contain_text("Saved revision 4")

    edit_line(page, "line 3", "line 3 by rita")  # rita, still at revision 2
    page.keyboard.press("Control+s")
    conflict = page.locator("[data-conflict]")
    expect(conflict.get_by_role("heading", level=2)).to_have_text(
        "Your edit and emil's edit overlap"
    )
    expect(conflict).to_contain_text("You both changed the same lines in 1 place.")
    (hunk,) = conflict.locator("[data-hunk]").all()
    expect(hunk.locator("legend")).to_have_text("Your line 3")
    expect(hunk.locator("[data-hunk-mine]")).to_have_text("line 3 by rita")
    expect(hunk.locator("[data-hunk-theirs]")).to_have_text("line 3 by emil")
    expect(hunk.locator("[data-context-after]")).to_have_text("line 4\nline 5 by emil")
    hunk.get_by_label("Both: mine, then theirs").check()
    conflict.get_by_role("button", name="Save the merge").click()
    expect(page.locator("[data-status]")).to_contain_text(
        "Saved revision 5, merged with emil's edit"
    )
    saved = api(live, owner.token, "GET", url)
    assert saved["body"] == both.replace("line 3", "line 3 by rita\nline 3 by emil")
    expect(page.get_by_label("Markdown")).to_have_value(saved["body"])


def test_it_offers_the_autosaved_draft_after_a_reload(page, live, owner, run_id):
    report = api(live, owner.token, "POST", "reports", project=PROJECT, title="Drafty", body="v1")
    log_in(page, live, owner.username, owner.password)
    open_editor(page, live, report["id"])
    page.get_by_label("Markdown").fill("v1 and unsaved thoughts")
    expect(page.locator("[data-draft-status]")).to_contain_text("Draft saved")
    open_editor(page, live, report["id"])
    expect(page.get_by_label("Markdown")).to_have_value("v1")
    offer = page.locator("[data-draft-offer]")
    expect(offer).to_contain_text("You have an unsaved draft from")
    offer.get_by_role("button", name="Restore").click()
    expect(offer).to_be_hidden()
    expect(page.get_by_label("Markdown")).to_have_value("v1 and unsaved thoughts")
    expect(page.locator("[data-preview]")).to_contain_text("unsaved thoughts")
