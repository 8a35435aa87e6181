"""Runs in a real browser: the table, the run page's live charts, compare, and a viewer's view.

Runs are logged through the HTTP API as a training job would; the browser
sees them appear and grow without reloading. ``window.__loaded`` is set once
per page load, so a test can prove a change arrived without a reload.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import WAIT_MS, log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

PROJECT = "lab/vision"


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("olivia", team="lab")


@pytest.fixture(scope="module")
def viewer(make_user: Any, owner: Any) -> Any:
    return make_user("victor", team="lab", role="viewer")


def log_points(live: LabbookServer, token: str, run_id: int, key: str, steps: range) -> None:
    points = [{"key": key, "step": s, "value": 1.0 / (s + 1)} for s in steps]
    api(live, token, "POST", f"runs/{run_id}/metrics", points=points)


def new_run(live: LabbookServer, token: str, name: str, **fields: Any) -> int:
    return api(live, token, "POST", "runs", project=PROJECT, name=name, **fields)["id"]


def mark_loaded(page: Any) -> None:
    page.evaluate("window.__loaded = true")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.__loaded === true"), "the page reloaded"


def chart(page: Any, key: str) -> Any:
    return page.locator(f'.chart-card[data-key="{key}"]')


def test_a_logged_run_appears_in_the_table_and_its_status_changes_live(page, live, owner):
    first = new_run(live, owner.token, "warmup")
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/")
    mark_loaded(page)
    expect(page.locator("[data-live-state]")).to_have_count(0)  # the table has no pill
    second = new_run(live, owner.token, "resnet50-a")
    expect(page.get_by_text("1 new run")).to_be_visible()
    page.get_by_role("link", name="Show them").click()
    row = page.locator(f'tr[data-run-id="{second}"]')
    expect(row).to_contain_text("resnet50-a")
    mark_loaded(page)
    api(live, owner.token, "PATCH", f"runs/{first}", status="failed")
    expect(page.locator(f'[data-status-run="{first}"]')).to_have_text("failed")
    assert_not_reloaded(page)


def held_socket(page: Any) -> dict[str, Any]:
    """Route the page's live socket through the test: what the server says is kept in
    ``messages`` and reaches the page only through ``page_side.send``."""
    held: dict[str, Any] = {"messages": []}

    def route(socket: Any) -> None:
        held["page_side"] = socket
        socket.connect_to_server().on_message(lambda message: held["messages"].append(message))

    page.route_web_socket(re.compile(r"/ws/live/$"), route)
    return held


def wait_for_message(page: Any, held: dict[str, Any], kind: str) -> str:
    """The first held message of type ``kind``, waiting for it up to the suite's ceiling."""
    for _ in range(WAIT_MS // 100):
        for message in held["messages"]:
            if json.loads(message)["type"] == kind:
                return message
        page.wait_for_timeout(100)  # lets Playwright deliver what the server sends
    raise AssertionError(f"no {kind!r} message within {WAIT_MS} ms: {held['messages']}")


def test_a_change_made_before_the_socket_subscribed_still_shows(page, live, owner):
    run_id = new_run(live, owner.token, "raced")
    log_in(page, live, owner.username, owner.password)
    held = held_socket(page)
    page.goto(f"{live.url}/{PROJECT}/")
    badge = page.locator(f'tr[data-run-id="{run_id}"] [data-status-run="{run_id}"]')
    expect(badge).to_have_text("running")
    subscribed = wait_for_message(page, held, "subscribed")
    api(live, owner.token, "PATCH", f"runs/{run_id}", status="failed")
    wait_for_message(page, held, "project.run")  # the page never gets it: as if it came early
    held["page_side"].send(subscribed)
    expect(badge).to_have_text("failed")  # re-read from the API once subscribed


def test_the_run_page_draws_a_chart_that_extends_without_reload(page, live, owner):
    run_id = new_run(live, owner.token, "extend-me", config={"lr": 0.1})
    log_points(live, owner.token, run_id, "train/loss", range(0, 50))
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    mark_loaded(page)
    card = chart(page, "train/loss")
    expect(card.locator(".plot .main-svg").first).to_be_visible()  # Plotly drew it
    expect(card).to_have_attribute("data-points", "50")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    log_points(live, owner.token, run_id, "train/loss", range(50, 80))
    expect(card).to_have_attribute("data-points", "80")
    expect(card.locator("[data-stat-last]")).to_have_text(str(round(1 / 80, 6))[:6])
    log_points(live, owner.token, run_id, "val/acc", range(0, 3))  # a new key: a new chart
    expect(chart(page, "val/acc")).to_have_attribute("data-points", "3")
    assert (
        page.evaluate("document.querySelector('[data-key=\"train/loss\"] .plot').data[0].x.length")
        == 80
    )
    assert_not_reloaded(page)


def test_the_run_page_catches_up_after_the_socket_drops(page, live, owner):
    run_id = new_run(live, owner.token, "flaky-network")
    log_points(live, owner.token, run_id, "loss", range(0, 10))
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    mark_loaded(page)
    card = chart(page, "loss")
    expect(card).to_have_attribute("data-points", "10")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    page.evaluate("Labbook.grid.socket.drop()")
    # Logged while the socket is down: only the catch-up read can bring these.
    log_points(live, owner.token, run_id, "loss", range(10, 25))
    expect(card).to_have_attribute("data-points", "25")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    assert_not_reloaded(page)


def test_zooming_in_refetches_the_visible_range_at_full_resolution(page, live, owner):
    run_id = new_run(live, owner.token, "long-run")
    for start in range(0, 5000, 2500):
        log_points(live, owner.token, run_id, "loss", range(start, start + 2500))
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    card = chart(page, "loss")
    expect(card.locator(".plot .main-svg").first).to_be_visible()
    drawn = "document.querySelector('[data-key=\"loss\"] .plot').data[0].x"
    assert page.evaluate(f"{drawn}.length") < 1100  # downsampled to about max_points
    page.evaluate(
        "Plotly.relayout(document.querySelector('[data-key=\"loss\"] .plot'), "
        "{'xaxis.range[0]': 1000, 'xaxis.range[1]': 1200})"
    )
    expect(card).to_have_attribute("data-zoomed", "1")
    steps = page.evaluate(drawn)
    assert steps[0] <= 1000 and steps[-1] >= 1200
    assert steps[1] - steps[0] == 1  # every step of the range: full resolution


def test_runs_ticked_in_the_table_open_side_by_side(page, live, owner):
    a = new_run(live, owner.token, "cmp-sgd", config={"optimizer": "sgd", "lr": 0.1})
    b = new_run(live, owner.token, "cmp-adam", config={"optimizer": "adam", "lr": 0.1})
    for run_id in (a, b):
        log_points(live, owner.token, run_id, "val/loss", range(0, 20))
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/")
    page.get_by_label("Select cmp-sgd").check()
    page.get_by_label("Select cmp-adam").check()
    page.get_by_role("button", name="Compare selected").click()
    expect(page).to_have_url(re.compile(r"/compare\?runs="))
    expect(page.get_by_role("heading", name=re.compile("Compare runs"))).to_be_visible()
    plot = chart(page, "val/loss").locator(".plot")
    expect(plot.locator(".legendtext")).to_have_count(2)
    differs = page.locator("tr.differs")
    expect(differs).to_have_count(1)
    expect(differs).to_contain_text("optimizer")
    page.get_by_label("Only differing keys").check()
    expect(page.locator("tr.same").first).to_be_hidden()


def test_a_viewer_sees_no_edit_controls(page, live, owner, viewer):
    run_id = new_run(live, owner.token, "read-only", notes="a note")
    log_in(page, live, viewer.username, viewer.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    expect(page.get_by_text("a note")).to_be_visible()
    expect(page.get_by_role("button", name="Save notes")).to_have_count(0)
    expect(page.get_by_role("button", name="Save tags")).to_have_count(0)
    page.goto(f"{live.url}/{PROJECT}/")
    expect(page.get_by_role("button", name="Compare selected")).to_be_visible()
    expect(page.get_by_role("button", name="Add tag")).to_have_count(0)
