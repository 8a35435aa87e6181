"""Every main page at 390 px (a phone held upright): nothing scrolls the page sideways,
charts stay inside their cards, and the runs table's filters fold under one line.

Wide content (a table, a parallel-coordinates panel, a long code line) scrolls inside
its own box instead; the page itself never does."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

TEAM = "phones"
PROJECT = f"{TEAM}/pocket-sized-experiments-with-a-long-name"
PHONE = {"width": 390, "height": 844}
LONG = "a-run-name-long-enough-to-push-any-careless-layout-off-the-side-of-a-phone"

# Elements that stick out of the page's 390 px, unless a scrolling box holds them.
SPILLS = """(limit) => [...document.querySelectorAll('body *')].filter((element) => {
  if (element.getBoundingClientRect().right <= limit + 1) return false;
  for (let box = element.parentElement; box; box = box.parentElement) {
    const style = getComputedStyle(box);
    if (['auto', 'scroll', 'hidden'].includes(style.overflowX)) return false;
  }
  return true;
}).slice(0, 5).map((element) => element.tagName + '.' + element.className)"""

# Plots wider than the card they are drawn in (charts spilling out under the toolbar).
PLOTS_OUT = """() => [...document.querySelectorAll('.chart-card .plot')].filter((plot) => {
  const card = plot.closest('.chart-card').getBoundingClientRect();
  return plot.getBoundingClientRect().right > card.right + 1;
}).length"""


@pytest.fixture(scope="module")
def pages(live: LabbookServer, make_user: Any) -> tuple[Any, dict[str, str]]:
    """A user, and the path of each page to look at."""
    user = make_user("pia", team=TEAM)
    ids = []
    for index in range(6):
        config = {"optimizer": {"name": "adam", "betas": [0.9, 0.999]}, "lr": 10**-index}
        run = api(
            live, user.token, "POST", "runs", project=PROJECT, name=f"{LONG}-{index}",
            config=config, tags=["a-rather-long-tag-name", "sweep"],
        )["id"]  # fmt: skip
        points = [{"key": "train/loss", "step": s, "value": 1 / (s + 1 + index)} for s in range(40)]
        api(live, user.token, "POST", f"runs/{run}/metrics", points=points)
        ids.append(run)
    api(live, user.token, "PATCH", f"runs/{ids[0]}", status="failed", error="CUDA out of memory")
    report = api(
        live, user.token, "POST", "reports", project=PROJECT, title="Sweep review " + LONG,
        body="# Results\n\n```chart\nmetric: train/loss\nruns: all\n```\n\n"
        "| a | b | c | d | e | f | g | h |\n|---|---|---|---|---|---|---|---|\n"
        f"| {LONG} | 2 | 3 | 4 | 5 | 6 | 7 | 8 |\n\n    {LONG} {LONG}\n",
    )  # fmt: skip
    paths = {
        "home": "/",
        "team": f"/{TEAM}/",
        "runs table": f"/{PROJECT}/",
        "run": f"/{PROJECT}/runs/{ids[0]}",
        "compare": f"/{PROJECT}/compare?runs={','.join(map(str, ids))}",
        "report": report["url"].removeprefix(live.url),
        "alerts": f"/{PROJECT}/alerts/",
    }
    return user, paths


def test_no_page_scrolls_sideways_on_a_phone(page, live, pages):
    """Home, team, runs table, run, compare, report and alerts pages, in one login."""
    user, paths = pages
    log_in(page, live, user.username, user.password)
    page.set_viewport_size(PHONE)
    found = {}
    for name, path in paths.items():
        page.goto(f"{live.url}{path}")
        if page.locator(".chart-card .plot").count():  # charts draw as they come into view
            page.locator(".chart-card .plot").first.scroll_into_view_if_needed()
            page.locator(".chart-card .plot .main-svg").first.wait_for()
        width = page.evaluate("document.documentElement.scrollWidth")
        spills = page.evaluate(SPILLS, PHONE["width"])
        plots_out = page.evaluate(PLOTS_OUT)
        if width > PHONE["width"] or spills or plots_out:
            found[name] = {"width": width, "spills": spills, "plots out of their card": plots_out}
    assert found == {}


def test_the_runs_filters_fold_on_a_phone_and_open_on_a_tap(page, live, pages):
    user, paths = pages
    log_in(page, live, user.username, user.password)
    page.set_viewport_size(PHONE)
    page.goto(f"{live.url}{paths['runs table']}?status=running")
    filters = page.locator("details.filters")
    expect(filters).not_to_have_attribute("open", "")
    expect(filters.locator("summary")).to_contain_text("1 active")
    expect(page.get_by_label("Values")).to_be_hidden()
    filters.locator("summary").click()
    expect(page.get_by_label("Values")).to_be_visible()
