"""A report past its page budget, through a share link: the notes are there and fit a phone."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

RUNS, METRICS, STEPS = 3, 10, 5_000  # 30 lines a chart, each asking for 5,000 points
CHARTS = 34  # at 100 points a line, 32 charts fill the page's 100,000 points


@pytest.fixture(scope="module")
def author(make_user: Any) -> Any:
    return make_user("petra", team="budget")


@pytest.fixture(scope="module")
def sweep(live: LabbookServer, author: Any) -> str:
    """The share link of a report of 34 charts of 30 lines each (150,000 points stored)."""
    fields = {"project": "budget/sweep", "title": "Sweep", "body": _body(_seed(live, author.token))}
    report = api(live, author.token, "POST", "reports", **fields)
    link = api(live, author.token, "POST", f"reports/{report['id']}/share-links")
    return link["url"].replace("http://127.0.0.1:8000", live.url)


def _seed(live: LabbookServer, token: str) -> list[int]:
    runs = []
    for r in range(RUNS):
        run_id = api(live, token, "POST", "runs", project="budget/sweep", name=f"sweep-{r}")["id"]
        for k in range(METRICS):
            points = [{"key": f"m{k}", "step": s, "value": 1 / (s + 1)} for s in range(STEPS)]
            api(live, token, "POST", f"runs/{run_id}/metrics", points=points)
        runs.append(run_id)
    return runs


def _body(runs: list[int]) -> str:
    keys = ", ".join(f"m{k}" for k in range(METRICS))
    chart = f"```chart\nruns: {runs}\nmetrics: [{keys}]\nmax_points: 5000\n```"
    return "# Sweep\n\n" + "\n\n".join(f"## Chart {c}\n\n{chart}" for c in range(CHARTS))


@pytest.mark.parametrize("width", [1440, 390])
def test_it_says_what_the_budget_thinned_and_left_out(browser, sweep, width, tmp_path):
    reader = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = reader.new_page()
        page.goto(sweep)
        summary = page.locator("[data-budget-note]")
        expect(summary).to_be_visible()
        expect(summary).to_contain_text("thinned 32 charts and left out 2 charts")
        thinned = page.locator(".chart-thinned").first
        expect(thinned).to_have_text(
            "Thinned to 102 points per line to keep this page under its budget (asked for 5,000)."
        )
        expect(page.locator(".block-note")).to_have_count(2)
        expect(page.locator('[data-figure="0"] .main-svg').first).to_be_visible()
        overflow = "document.documentElement.scrollWidth > document.documentElement.clientWidth"
        assert page.evaluate(overflow) is False  # nothing wider than a phone's screen
        page.screenshot(path=str(tmp_path / f"top-{width}.png"))
        page.locator(".block-note").first.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / f"left-out-{width}.png"))
    finally:
        reader.close()
