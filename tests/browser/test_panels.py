"""Report panels with a 40-run sweep, in chromium: scatter, bars, parallel coordinates and
parameter importance draw on the report page, a share link and the offline export, under
the Content-Security-Policy (parallel coordinates draw with WebGL); a click on a run's
point opens the run; a new run of the sweep joins the live panels."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import WAIT_MS, log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

PROJECT = "panels/sweep"
RUNS = 40
OPTIMIZERS = ("adam", "sgd", "lion")
SELECTOR = f"runs: {{project: {PROJECT}, tags: [sweep], limit: 200}}"
PANELS = {
    "scatter": "x: config.lr\ny: summary.val/acc\ncolor: config.opt.name\nlog_x: true",
    "bar": "value: summary.val/acc",
    "grouped": "value: summary.val/acc\ngroup_by: config.opt.name",
    "parallel": "columns: [config.lr, config.batch_size, config.opt.name, summary.val/acc]\n"
    "color: summary.val/acc",
    "importance": "metric: summary.val/acc",
}
BODY = "\n\n".join(
    f"## {name}\n\n```{name if name != 'grouped' else 'bar'}\n{SELECTOR}\n{options}\n```"
    for name, options in PANELS.items()
)
SCATTER, BARS, GROUPED, PARALLEL, IMPORTANCE = range(5)

# What each panel drew, read from the SVG and from Plotly's own state of the plot.
MARKS = """(plot) => ({
  points: plot.querySelectorAll('.scatterlayer path.point').length,
  bars: plot.querySelectorAll('.barlayer .point').length,
  errorBars: plot.querySelectorAll('.errorbar').length,
  axes: plot.querySelectorAll('.parcoords .y-axis').length,
  lines: plot._fullData && plot._fullData[0].type === 'parcoords'
    ? plot._fullData[0].dimensions[0].values.length : 0,
})"""


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("petra", team="panels")


def _run(live: LabbookServer, token: str, index: int) -> int:
    lr = 10 ** (-5 + 4 * (index % 10) / 9)
    optimizer = OPTIMIZERS[index % 3]
    acc = 0.97 - 0.04 * abs(math.log10(lr) + 3) - (0.02 if optimizer == "sgd" else 0)
    return api(
        live, token, "POST", "runs",
        project=PROJECT, name=f"sweep-{index:02d}", tags=["sweep"],
        config={"lr": f"{lr:.3g}", "batch_size": 32 * 2 ** (index % 4), "opt": {"name": optimizer}},
        summary={"val/acc": acc},
    )["id"]  # fmt: skip


@pytest.fixture(scope="module")
def sweep(live: LabbookServer, owner: Any) -> list[int]:
    return [_run(live, owner.token, index) for index in range(RUNS)]


@pytest.fixture(scope="module")
def report(live: LabbookServer, owner: Any, sweep: list[int]) -> dict:
    return api(live, owner.token, "POST", "reports", project=PROJECT, title="Sweep", body=BODY)


def marks(page: Any, index: int) -> dict[str, int]:
    return page.locator(f'[data-figure="{index}"]').evaluate(MARKS)


def expect_marks(page: Any, index: int, **expected: int) -> None:
    """Wait until panel ``index`` drew what ``expected`` says, then compare all of it."""
    condition = f"""([i, e]) => {{
      const plot = document.querySelector(`[data-figure="${{i}}"]`);
      const got = plot && ({MARKS})(plot);
      return got && Object.entries(e).every(([k, v]) => got[k] === v);
    }}"""
    page.wait_for_function(condition, arg=[index, expected], timeout=WAIT_MS)
    got = marks(page, index)
    assert {key: got[key] for key in expected} == expected


def expect_every_panel(page: Any, runs: int = RUNS) -> None:
    expect_marks(page, SCATTER, points=runs)
    expect_marks(page, BARS, bars=runs)
    expect_marks(page, GROUPED, bars=len(OPTIMIZERS), errorBars=len(OPTIMIZERS))
    expect_marks(page, PARALLEL, axes=4, lines=runs)
    expect_marks(page, IMPORTANCE, bars=2 * 3)  # lr, batch_size, opt.name: score and r


def test_every_panel_draws_40_runs_under_the_policy_and_a_point_opens_its_run(
    watched, live, owner, sweep, report
):
    log_in(watched, live, owner.username, owner.password)
    watched.goto(f"{live.url}/reports/{report['id']}/")
    expect_every_panel(watched)
    plot = watched.locator(f'[data-figure="{IMPORTANCE}"]')
    ranked = plot.evaluate("(p) => p.data[0].y.slice().reverse()")
    assert ranked[0] == "config.lr"  # the key the sweep's accuracy follows
    assert plot.evaluate("(p) => p.getBoundingClientRect().height") >= 300
    point = watched.locator(f'[data-figure="{SCATTER}"] .scatterlayer path.point').first
    box = point.bounding_box()
    watched.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(watched.locator(".hoverlayer .hovertext")).to_have_count(1)
    watched.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    watched.wait_for_url(re.compile(rf"/{PROJECT}/runs/\d+$"), timeout=WAIT_MS)
    expect(watched.locator("h1")).to_contain_text("sweep-")


def test_a_share_link_and_the_offline_export_draw_every_panel(
    page, browser, live, owner, sweep, report
):
    link = api(live, owner.token, "POST", f"reports/{report['id']}/share-links")
    reader = browser.new_context()
    try:
        shared = reader.new_page()
        shared.goto(re.sub(r"^https?://[^/]+", live.url, link["url"]))
        expect_every_panel(shared)
        links = shared.locator(f'[data-figure="{SCATTER}"]').evaluate(
            "(p) => p.data.flatMap((t) => t.customdata)"
        )
        assert set(links) == {None}  # a reader of a share link gets no run pages
    finally:
        reader.close()

    log_in(page, live, owner.username, owner.password)
    exported = page.request.get(f"{live.url}/reports/{report['id']}/export.html")
    assert exported.ok
    offline = browser.new_context(offline=True)
    try:
        viewer = offline.new_page()
        requested: list[str] = []
        viewer.on("request", lambda request: requested.append(request.url))
        viewer.set_content(exported.text())
        expect_every_panel(viewer)
        assert [url for url in requested if not url.startswith(("file:", "about:"))] == []
    finally:
        offline.close()


def test_a_new_run_of_the_sweep_joins_the_live_panels(page, live, owner, sweep, report):
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/reports/{report['id']}/")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    expect_every_panel(page)
    _run(live, owner.token, RUNS)
    expect_every_panel(page, RUNS + 1)


def test_the_builder_inserts_each_panel_over_the_whole_project(page, live, owner, sweep):
    draft = api(live, owner.token, "POST", "reports", project=PROJECT, title="Built", body="")
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/reports/{draft['id']}/edit")
    expect(page.locator("[data-preview-state]")).to_have_text("Up to date")
    builder = page.locator("dialog[data-builder]")
    output = builder.get_by_label("Block to insert")
    acc, lr, optimizer = "summary.val/acc", "config.lr", "config.opt.name"
    steps = [
        ("scatter", {"X": lr, "Y": acc}, [], f"x: {lr}\ny: {acc}\n"),
        ("bar", {"Value": acc, "Group by optional": optimizer}, [],
         f"value: {acc}\ngroup_by: {optimizer}\n"),
        ("parallel", {}, [lr, "config.batch_size"], f"columns: [{lr}, config.batch_size]\n"),
        ("importance", {"Metric": acc}, [], f"metric: {acc}\n"),
    ]  # fmt: skip
    for kind, menus, ticks, expected in steps:
        page.get_by_role("button", name="Insert panel").click()
        builder.get_by_label("Every run of the project").check()
        builder.get_by_label("Kind").select_option(kind)
        for label, value in menus.items():
            builder.get_by_label(label, exact=True).select_option(value)
        for name in ticks:
            builder.get_by_role("list", name="Axes").get_by_label(name, exact=True).check()
        whole = f"```{kind}\nruns: {{project: {PROJECT}, limit: 200}}\n"
        expect(output).to_have_value(whole + expected + "```")
        builder.get_by_role("button", name="Insert", exact=True).click()
        expect(builder).to_be_hidden()
    preview = page.locator("[data-preview]")
    expect(preview.locator("[data-figure] .main-svg").first).to_be_visible()
    expect(preview.locator("[data-panel]")).to_have_count(4)
    assert page.locator("[data-preview-errors]").is_hidden()
