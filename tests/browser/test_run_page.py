"""The run page in a real browser: its state follows the run live, and notes are Markdown.

A run is logged through the HTTP API while its page is open, as a training job
would; once it ends, every field that shows its state reads what a reload
reads. The page's clock is Playwright's (``page.clock``): moved on by the
test, it shows whether the duration ticks without waiting for real seconds.
It runs while the run ends, so the page's own re-read of the state (every
15 s) still corrects a live message a loaded server dropped, as it would for
a reader.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

PROJECT = "runpage/state"


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("rhea", team="runpage")


@pytest.fixture(scope="module")
def viewer(make_user: Any, owner: Any) -> Any:
    return make_user("ravi", team="runpage", role="viewer")


def new_run(live: LabbookServer, token: str, name: str, **fields: Any) -> int:
    return api(live, token, "POST", "runs", project=PROJECT, name=name, **fields)["id"]


def open_run(page: Any, live: LabbookServer, run_id: int) -> None:
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    page.evaluate("window.__loaded = true")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.__loaded === true"), "the page reloaded"


def state_fields(page: Any) -> dict[str, str]:
    """Every field of the page that shows the run's state, as the reader sees it."""
    facts = page.locator('[data-run-part="facts"]')
    return {
        "badge": page.locator('h1 [data-run-part="badge"]').inner_text(),
        "status": facts.locator("[data-run-status]").inner_text(),
        "duration": facts.locator("[data-run-duration]").inner_text(),
        "ended": facts.locator("[data-run-ended]").inner_text(),
        "last seen": facts.locator("[data-run-last-seen]").inner_text(),
        "overview": facts.inner_text(),
        "failure": page.locator('[data-run-part="failure"]').inner_text(),
    }


def watch_until_it_ticks(page: Any, live: LabbookServer, run_id: int) -> None:
    """Open the run's page, pause its clock and see the duration tick as the clock moves."""
    page.clock.install()
    open_run(page, live, run_id)
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    page.clock.pause_at(int(page.evaluate("Date.now()")) + 1_000)  # an int: milliseconds
    duration = page.locator("[data-run-duration]")
    started = duration.inner_text()
    page.clock.run_for(3_000)
    expect(duration).not_to_have_text(started)  # a running run's duration grows
    page.clock.resume()


def assert_frozen_and_as_reloaded(page: Any) -> None:
    ended = state_fields(page)
    page.clock.fast_forward(5_000)  # a ticking duration would show 5 s more
    assert state_fields(page) == ended, "the page still moves after the run ended"
    assert_not_reloaded(page)
    page.reload()
    expect(page.locator('[data-run-part="facts"] [data-run-ended]')).to_be_visible()
    assert state_fields(page) == ended


def test_a_run_that_finishes_while_its_page_is_open_shows_what_a_reload_shows(page, live, owner):
    run_id = new_run(live, owner.token, "finishes-live")
    log_in(page, live, owner.username, owner.password)
    watch_until_it_ticks(page, live, run_id)
    points = [{"key": "loss", "step": s, "value": 1.0 / (s + 1)} for s in range(5)]
    api(live, owner.token, "POST", f"runs/{run_id}/metrics", points=points)
    api(live, owner.token, "PATCH", f"runs/{run_id}", status="finished", exit_code=0)
    expect(page.locator(f'h1 [data-status-run="{run_id}"]')).to_have_text("finished")
    facts = page.locator('[data-run-part="facts"]')
    expect(facts.locator("[data-run-status]")).to_have_text("Finished")
    expect(facts.locator("[data-run-ended]")).to_be_visible()
    expect(facts).to_contain_text("Exit code")
    assert_frozen_and_as_reloaded(page)


def test_a_run_that_fails_while_its_page_is_open_shows_why_as_a_reload_does(page, live, owner):
    run_id = new_run(live, owner.token, "fails-live")
    log_in(page, live, owner.username, owner.password)
    watch_until_it_ticks(page, live, run_id)
    expect(page.locator(".failure")).to_have_count(0)
    error = "ValueError: boom"
    failure = {"status": "failed", "exit_code": 3, "error": error, "traceback": f"  f()\n{error}"}
    api(live, owner.token, "PATCH", f"runs/{run_id}", **failure)
    expect(page.locator(".failure h2")).to_have_text("The run failed")
    expect(page.locator(".failure-error")).to_have_text("ValueError: boom")
    expect(page.locator('[data-run-part="facts"] [data-run-status]')).to_have_text("Failed")
    assert_frozen_and_as_reloaded(page)


HOSTILE = (
    "## Findings\n\n**lr** too high <script>window.__pwned = 1</script>\n\n"
    "[click me](javascript:window.__pwned=2)"
)


def test_a_viewer_reads_notes_rendered_and_cannot_edit_them(page, live, owner, viewer):
    run_id = new_run(live, owner.token, "noted", notes=HOSTILE)
    log_in(page, live, viewer.username, viewer.password)
    open_run(page, live, run_id)
    notes = page.locator("[data-notes-view]")
    expect(notes.get_by_role("heading", name="Findings")).to_be_visible()
    expect(notes.locator("strong")).to_have_text("lr")
    expect(notes.get_by_text("click me")).to_be_visible()
    expect(notes.locator("script")).to_have_count(0)
    expect(notes.locator('a[href*="javascript"]')).to_have_count(0)
    notes.get_by_text("click me").click()
    assert page.evaluate("window.__pwned === undefined")
    expect(page.get_by_role("button", name="Edit notes")).to_have_count(0)
    expect(page.locator("#run-notes")).to_have_count(0)


def test_an_editor_edits_notes_in_place(page, live, owner):
    run_id = new_run(live, owner.token, "edited", notes="First **try**")
    log_in(page, live, owner.username, owner.password)
    open_run(page, live, run_id)
    notes = page.locator("[data-notes-view]")
    textarea = page.get_by_label("Notes (Markdown)")
    edit = page.get_by_role("button", name="Edit notes")
    expect(notes.locator("strong")).to_have_text("try")
    expect(textarea).to_be_hidden()
    edit.click()
    expect(textarea).to_be_visible()
    expect(notes).to_be_hidden()
    textarea.fill("thrown away")
    page.get_by_role("button", name="Cancel").click()
    expect(notes.locator("strong")).to_have_text("try")
    expect(textarea).to_be_hidden()
    edit.click()
    expect(textarea).to_have_value("First **try**")  # what Cancel threw away is gone
    textarea.fill("## Verdict\n\nlr=1e-3 is *better*")
    page.get_by_role("button", name="Save notes").click()
    expect(notes.get_by_role("heading", name="Verdict")).to_be_visible()
    expect(notes.locator("em")).to_have_text("better")
    expect(textarea).to_be_hidden()
    expect(edit).to_be_visible()
    assert_not_reloaded(page)
    page.reload()
    expect(notes.get_by_role("heading", name="Verdict")).to_be_visible()
    expect(notes.locator("em")).to_have_text("better")
