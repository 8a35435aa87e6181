"""Grouped lines with bands, in chromium, with a 40-run sweep: on the compare page (the Group
by and Band menus, kept in the URL) and as a report chart block (report, share link, offline
export, live points). Each group is drawn as its mean line inside a filled band; the band is
the runs' min to max, or ±1 standard deviation of them, checked against the values logged."""

from __future__ import annotations

import re
import statistics
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import WAIT_MS, log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

PROJECT = "bands/sweep"
RUNS = 40
RATES = ("0.0001", "0.001", "0.01", "0.1")  # ten runs each
STEPS = range(0, 50, 5)


def value(index: int, step: int) -> float:
    """The loss of run ``index`` at ``step``: its rate's curve, shifted by the run's seed."""
    return (RATES.index(rate_of(index)) + 1) / (step + 1) + (index // len(RATES)) * 0.01


def rate_of(index: int) -> str:
    return RATES[index % len(RATES)]


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("gina", team="bands")


@pytest.fixture(scope="module")
def sweep(live: LabbookServer, owner: Any) -> list[int]:
    ids = []
    for index in range(RUNS):
        run = api(
            live, owner.token, "POST", "runs", project=PROJECT, name=f"seed-{index:02d}",
            tags=["sweep"], config={"lr": rate_of(index), "seed": index},
        )["id"]  # fmt: skip
        points = [{"key": "loss", "step": s, "value": value(index, s)} for s in STEPS]
        api(live, owner.token, "POST", f"runs/{run}/metrics", points=points)
        ids.append(run)
    return ids


# What a grouped chart drew: its groups' names, how many band fills Plotly drew, each
# group's mean and band edges at the first step, and the plot's height.
GROUPS = """(plot) => {
  const data = plot.data || [];
  const means = data.filter((t, i) => i % 3 === 2);
  return {
    names: means.map((t) => t.name),
    fills: plot.querySelectorAll('.scatterlayer .trace path.js-fill').length,
    first: means.map((t, i) => [data[3 * i].y[0], t.y[0], data[3 * i + 1].y[0]]),
    height: plot.getBoundingClientRect().height,
  };
}"""
NAMES = [f"{rate} (10 runs)" for rate in RATES]


def expected_first(band: str) -> list[list[float]]:
    """[low, mean, high] of each group at step 0, as the band should be."""
    rows = []
    for rate in RATES:
        values = [value(i, 0) for i in range(RUNS) if rate_of(i) == rate]
        mean = statistics.fmean(values)
        if band == "minmax":
            rows.append([min(values), mean, max(values)])
        else:
            spread = statistics.stdev(values)
            rows.append([mean - spread, mean, mean + spread])
    return rows


def groups_of(page: Any, selector: str) -> dict:
    return page.locator(selector).evaluate(GROUPS)


def expect_groups(page: Any, selector: str, band: str) -> None:
    """Wait until the plot shows the four groups with ``band``, then check their values."""
    fills = 0 if band == "none" else len(RATES)
    page.wait_for_function(
        f"""(s) => {{
          const plot = document.querySelector(s);
          if (!plot || !plot.data) return false;
          const got = ({GROUPS})(plot);
          return got.names.length === {len(RATES)} && got.fills === {fills};
        }}""",
        arg=selector,
        timeout=WAIT_MS,
    )
    got = groups_of(page, selector)
    assert got["names"] == NAMES
    assert got["height"] > 200
    if band == "none":
        return
    for drawn, wanted in zip(got["first"], expected_first(band), strict=True):
        assert drawn == pytest.approx(wanted, rel=1e-9)


def test_the_compare_page_groups_40_runs_into_bands_kept_in_its_url(page, live, owner, sweep):
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/compare?runs={','.join(map(str, sweep))}")
    plot = '.chart-card[data-key="loss"] .plot'
    card = page.locator('.chart-card[data-key="loss"]')
    expect(card).to_have_attribute("data-traces", str(2 * RUNS), timeout=WAIT_MS)
    # 40 runs ungrouped: the plot keeps its height, the legend beside it (scrolling)
    layout = page.locator(plot).evaluate(
        "(p) => ({height: p._fullLayout._size.h, legendX: p._fullLayout.legend.x})"
    )
    assert layout["height"] > 200 and layout["legendX"] > 1
    band = page.locator("[data-chart-band]")
    expect(band).to_be_disabled()
    group = page.locator("[data-chart-group]")
    assert group.locator("option").all_text_contents() == ["No grouping", "tags", "config.lr"]

    group.select_option("config.lr")
    expect_groups(page, plot, "std")
    expect(card).to_have_attribute("data-groups", str(len(RATES)))
    assert re.search(r"[?&]group_by=config\.lr&band=std", page.url)
    band.select_option("minmax")
    expect_groups(page, plot, "minmax")
    mean = "(s) => JSON.stringify(document.querySelector(s).data[2].y)"
    page.evaluate(f"(s) => {{ window.unsmoothed = ({mean})(s); }}", plot)
    page.locator("[data-chart-smoothing]").fill("0.6")
    page.wait_for_function(  # a function: an expression would be polled with eval (CSP)
        f"(s) => ({mean})(s) !== window.unsmoothed", arg=plot, timeout=WAIT_MS
    )
    # Smoothing redraws the groups from the smoothed lines and loses none; a debiased
    # average starts at the first value, so the band at the first step stays as logged.
    expect_groups(page, plot, "minmax")
    page.locator("[data-chart-smoothing]").fill("0")
    band.select_option("none")
    expect_groups(page, plot, "none")

    page.reload()  # the URL holds the grouping
    expect(group).to_have_value("config.lr")
    expect(band).to_have_value("none")
    expect_groups(page, plot, "none")
    group.select_option("")
    expect(card).to_have_attribute("data-traces", str(2 * RUNS), timeout=WAIT_MS)
    expect(band).to_be_disabled()
    assert "group_by" not in page.url


BLOCK = (
    f"```chart\nruns: {{project: {PROJECT}, tags: [sweep], limit: 200}}\nmetrics: [loss]\n"
    "group_by: config.lr\nband: minmax\ntitle: Loss by learning rate\n```"
)


def test_a_grouped_chart_block_draws_on_the_report_its_share_link_and_the_export(
    page, browser, live, owner, sweep
):
    report = api(live, owner.token, "POST", "reports", project=PROJECT, title="Bands", body=BLOCK)
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/reports/{report['id']}/")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    expect_groups(page, '[data-figure="0"]', "minmax")

    # A live point of one run moves its group's line: the mean now reaches step 60.
    api(live, owner.token, "POST", f"runs/{sweep[0]}/metrics", points=[
        {"key": "loss", "step": 60, "value": 5.0}
    ])  # fmt: skip
    page.wait_for_function(
        "() => { const d = document.querySelector('[data-figure=\"0\"]').data;"
        " return d.some((t) => t.x.length && t.x[t.x.length - 1] === 60); }",
        timeout=WAIT_MS,
    )

    link = api(live, owner.token, "POST", f"reports/{report['id']}/share-links")
    reader = browser.new_context()
    try:
        shared = reader.new_page()
        shared.goto(re.sub(r"^https?://[^/]+", live.url, link["url"]))
        expect_groups(shared, '[data-figure="0"]', "minmax")
    finally:
        reader.close()

    exported = page.request.get(f"{live.url}/reports/{report['id']}/export.html")
    assert exported.ok
    offline = browser.new_context(offline=True)
    try:
        viewer = offline.new_page()
        viewer.set_content(exported.text())
        expect_groups(viewer, '[data-figure="0"]', "minmax")
    finally:
        offline.close()
