"""Every chart control redraws without losing a line, on the run, compare, report and share pages.

Each step moves one control the way a person does (the slider, the x-axis menu,
the log checkbox, a drag-zoom and its double-click reset, points arriving live,
a window resize) and then counts, in the SVG Plotly drew, the lines of every
chart on the page. A redraw that empties a chart drops its count to 0; a
series of one point must still be drawn (as a marker).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.browser.conftest import WAIT_MS, log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

PROJECT = "curves/sweep"
RUNS = 6
KEYS = ("train/loss", "val/loss", "lr")

# Lines (or markers) Plotly drew in each chart of the page, by chart: a trace counts when
# its line has a segment ("L": a lone "M…Z" shows nothing) or it has a marker. Charts are
# found by the plot element of the page's kind.
DRAWN = """(selector) => [...document.querySelectorAll(selector)].map((plot) =>
  [...plot.querySelectorAll('.scatterlayer .trace')].filter((trace) =>
    [...trace.querySelectorAll('path.js-line')].some(
      (path) => (path.getAttribute('d') || '').includes('L')) ||
    trace.querySelectorAll('path.point').length > 0).length)"""
RUN_PLOTS = ".chart-card .plot"
REPORT_PLOTS = "[data-figure]"


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("curtis", team="curves")


@pytest.fixture(scope="module")
def sweep(live: LabbookServer, owner: Any) -> list[int]:
    """Six runs, three keys each; ``val/acc`` of the first run has a single point."""
    ids = []
    for i in range(RUNS):
        run = api(live, owner.token, "POST", "runs", project=PROJECT, name=f"lr-{i}")["id"]
        points = [
            {"key": key, "step": s, "value": (i + 1) / (s + 1) + (0.01 * s if key == "lr" else 0)}
            for key in KEYS
            for s in range(0, 200, 5)
        ]
        api(live, owner.token, "POST", f"runs/{run}/metrics", points=points)
        ids.append(run)
    api(live, owner.token, "POST", f"runs/{ids[0]}/metrics", points=[
        {"key": "val/acc", "step": 3, "value": 0.91}
    ])  # fmt: skip
    return ids


def drawn(page: Any, selector: str) -> list[int]:
    return page.evaluate(DRAWN, selector)


def expect_drawn(page: Any, selector: str, expected: list[int], step: str) -> None:
    """Wait (up to the suite's ceiling) until every chart shows ``expected`` lines."""
    condition = f"([s, e]) => JSON.stringify(({DRAWN})(s)) === JSON.stringify(e)"
    with contextlib.suppress(PlaywrightTimeout):  # the assertion says what was drawn instead
        page.wait_for_function(condition, arg=[selector, expected], timeout=WAIT_MS)
    assert drawn(page, selector) == expected, f"after {step}"


def redrawn(page: Any, act: Callable[[], Any]) -> None:
    """Do ``act`` and wait until every loaded chart of the grid has been drawn again."""
    before = page.evaluate("Labbook.grid.renders")
    loaded = page.evaluate("[...Labbook.grid.charts.values()].filter((c) => c.loaded).length")
    act()
    page.wait_for_function(
        f"Labbook.grid.renders >= {before + loaded}", timeout=WAIT_MS, polling="raf"
    )


def relaid(page: Any, selector: str, act: Callable[[], Any], condition: str) -> None:
    """Do ``act`` and wait until ``condition(plot)`` holds for every plot of the page."""
    act()
    page.wait_for_function(
        f"(s) => [...document.querySelectorAll(s)].every({condition})",
        arg=selector,
        timeout=WAIT_MS,
    )


def resized(page: Any, selector: str, width: int) -> None:
    """Resize the window and wait until Plotly has drawn every plot at its new width."""
    widths = f"[...document.querySelectorAll('{selector}')].map((p) => p._fullLayout.width)"
    before = page.evaluate(widths)
    page.set_viewport_size({"width": width, "height": 900})
    page.wait_for_function(
        f"JSON.stringify({widths}) !== {json.dumps(json.dumps(before))}", timeout=WAIT_MS
    )


def set_slider(page: Any, value: float) -> None:
    page.locator("[data-chart-smoothing]").fill(str(value))  # fires input, as a drag does


def drag_zoom(page: Any, plot: Any) -> None:
    """Drag across the middle third of ``plot``'s plotting area, as a person zooms, and wait
    for the zoomed axis."""
    box = plot.locator(".nsewdrag").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, y, steps=5)
    page.mouse.move(box["x"] + 2 * box["width"] / 3, y, steps=5)
    page.mouse.up()
    page.wait_for_function(
        "(p) => p.layout.xaxis.autorange === false", arg=plot.element_handle(), timeout=WAIT_MS
    )


def reset_zoom(page: Any, plot: Any) -> None:
    """Double-click the plot, as a person resets a zoom, and wait for the full axis."""
    box = plot.locator(".nsewdrag").first.bounding_box()
    page.mouse.dblclick(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "(p) => p.layout.xaxis.autorange !== false", arg=plot.element_handle(), timeout=WAIT_MS
    )


def show_every_chart(page: Any, count: int) -> None:
    """Scroll each chart card into view (charts load when near) until all are drawn."""
    cards = page.locator(".chart-card")
    expect(cards).to_have_count(count)
    for i in range(count):
        cards.nth(i).scroll_into_view_if_needed()
        expect(cards.nth(i).locator(".main-svg").first).to_be_visible()


def grid_steps(page: Any, smoothed: list[int], plain: list[int]) -> list[tuple]:
    """The grid's controls, in the order a person tries them, with the lines each leaves."""
    x_axis = page.locator("[data-chart-x]")
    log = page.locator("[data-chart-log]")
    log_is = "(p) => p.layout.yaxis.type === '{}'"
    return [
        ("smoothing 0.6", lambda: redrawn(page, lambda: set_slider(page, 0.6)), smoothed),
        ("smoothing 0.9", lambda: redrawn(page, lambda: set_slider(page, 0.9)), smoothed),
        ("x: relative", lambda: redrawn(page, lambda: x_axis.select_option("relative")), smoothed),
        ("smoothing 0", lambda: redrawn(page, lambda: set_slider(page, 0)), plain),
        ("x: wall time", lambda: redrawn(page, lambda: x_axis.select_option("time")), plain),
        ("x: step", lambda: redrawn(page, lambda: x_axis.select_option("step")), plain),
        ("log on", lambda: relaid(page, RUN_PLOTS, log.check, log_is.format("log")), plain),
        ("log off", lambda: relaid(page, RUN_PLOTS, log.uncheck, log_is.format("linear")), plain),
        ("resize", lambda: resized(page, RUN_PLOTS, 900), plain),
        ("resize back", lambda: resized(page, RUN_PLOTS, 1440), plain),
    ]


def test_every_control_of_the_run_page_keeps_every_line(page, live, owner, sweep):
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{sweep[0]}")
    show_every_chart(page, len(KEYS) + 1)
    plain = [1] * (len(KEYS) + 1)
    expect_drawn(page, RUN_PLOTS, plain, "loading (val/acc has one point)")
    expect(page.locator('.chart-card[data-key="val/acc"] path.point')).to_have_count(1)
    for name, act, expected in grid_steps(page, [2] * len(plain), plain):
        act()
        expect_drawn(page, RUN_PLOTS, expected, name)
    loss = page.locator('.chart-card[data-key="train/loss"]')
    plot = loss.locator(".plot")
    loss.scroll_into_view_if_needed()
    drag_zoom(page, plot)
    expect_drawn(page, RUN_PLOTS, plain, "drag-zoom")
    reset_zoom(page, plot)
    expect_drawn(page, RUN_PLOTS, plain, "zoom reset")
    redrawn(page, lambda: set_slider(page, 0.5))
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    points = [{"key": "train/loss", "step": s, "value": 0.001} for s in range(200, 260)]
    api(live, owner.token, "POST", f"runs/{sweep[0]}/metrics", points=points)
    expect(loss).to_have_attribute("data-points", str(40 + 60))
    expect_drawn(page, RUN_PLOTS, [2] * len(plain), "live points while smoothed")
    redrawn(page, lambda: set_slider(page, 0))


def test_the_header_stats_follow_live_points(page, live, owner, sweep):
    run_id = api(live, owner.token, "POST", "runs", project=PROJECT, name="stats")["id"]
    first = [{"key": "loss", "step": s, "value": 1.0 + s} for s in range(7)]
    api(live, owner.token, "POST", f"runs/{run_id}/metrics", points=first)
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    card = page.locator('.chart-card[data-key="loss"]')
    expect(card.locator("[data-stat-count]")).to_have_text("7 pts")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    more = [{"key": "loss", "step": s, "value": 0.5 if s == 30 else 9.0} for s in range(7, 80)]
    more.append({"key": "loss", "step": 80, "value": "NaN"})
    api(live, owner.token, "POST", f"runs/{run_id}/metrics", points=more)
    expect(card.locator("[data-stat-count]")).to_have_text("81 pts")
    expect(card.locator("[data-stat-min]")).to_have_text("0.5")
    expect(card.locator("[data-stat-max]")).to_have_text("9")
    expect(card.locator("[data-stat-last]")).to_have_text("NaN")
    page.reload()  # the server says the same
    expect(card.locator("[data-stat-count]")).to_have_text("81 pts")
    expect(card.locator("[data-stat-min]")).to_have_text("0.5")
    expect(card.locator("[data-stat-max]")).to_have_text("9")


def test_every_control_of_the_compare_page_keeps_every_line(page, live, owner, sweep):
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/compare?runs={','.join(map(str, sweep))}")
    show_every_chart(page, len(KEYS) + 1)
    keys = page.evaluate("[...document.querySelectorAll('.chart-card')].map(c => c.dataset.key)")
    plain = [1 if key == "val/acc" else RUNS for key in keys]
    expect_drawn(page, RUN_PLOTS, plain, "loading")
    for name, act, expected in grid_steps(page, [2 * n for n in plain], plain):
        act()
        expect_drawn(page, RUN_PLOTS, expected, name)
    plot = page.locator('.chart-card[data-key="val/loss"] .plot')
    plot.scroll_into_view_if_needed()
    drag_zoom(page, plot)
    expect_drawn(page, RUN_PLOTS, plain, "drag-zoom")
    reset_zoom(page, plot)
    expect_drawn(page, RUN_PLOTS, plain, "zoom reset")


def test_report_and_share_charts_keep_every_line_through_zoom_live_points_and_resize(
    page, browser, live, owner, sweep
):
    body = "\n\n".join(
        [
            "# Sweep",
            f"```chart\nruns: {sweep}\nmetrics: [val/loss]\n```",
            f"```chart\nruns: {sweep}\nmetrics: [train/loss]\nsmoothing: 0.6\n```",
            f"```chart\nruns: [{sweep[0]}]\nmetrics: [val/acc]\n```",
        ]
    )
    report = api(live, owner.token, "POST", "reports", project=PROJECT, title="Sweep", body=body)
    link = api(live, owner.token, "POST", f"reports/{report['id']}/share-links")
    expected = [RUNS, 2 * RUNS, 1]
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/reports/{report['id']}/")
    reader = browser.new_context()
    try:
        shared = reader.new_page()
        shared.goto(link["url"].replace("http://127.0.0.1:8000", live.url))
        for view in (page, shared):
            expect(view.locator("[data-live-state]")).to_have_text("Live")
            expect_drawn(view, REPORT_PLOTS, expected, "loading")
            expect(view.locator('[data-figure="2"] path.point')).to_have_count(1)  # one point
            plot = view.locator('[data-figure="0"]')
            drag_zoom(view, plot)
            expect_drawn(view, REPORT_PLOTS, expected, "drag-zoom")
            reset_zoom(view, plot)
            expect_drawn(view, REPORT_PLOTS, expected, "zoom reset")
            resized(view, REPORT_PLOTS, 800)
            expect_drawn(view, REPORT_PLOTS, expected, "resize")
        points = [{"key": "train/loss", "step": s, "value": 0.01} for s in range(200, 230)]
        api(live, owner.token, "POST", f"runs/{sweep[1]}/metrics", points=points)
        for view in (page, shared):
            smoothed = view.locator('[data-figure="1"]')
            lengths = "(p) => p.data.map((t) => t.x.length)"
            view.wait_for_function(
                f"(p) => ({lengths})(p)[2] === 70", arg=smoothed.element_handle(), timeout=WAIT_MS
            )
            expect_drawn(view, REPORT_PLOTS, expected, "live points")
    finally:
        reader.close()


def test_a_run_is_drawn_in_one_colour_on_every_page(page, live, owner, sweep):
    log_in(page, live, owner.username, owner.password)
    run_id = sweep[3]
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    show_every_chart(page, len(KEYS))
    line = "(p) => p.data[0].line.color"
    color = page.locator('.chart-card[data-key="val/loss"] .plot').evaluate(line)
    page.goto(f"{live.url}/{PROJECT}/compare?runs={run_id},{sweep[0]}")  # second here
    show_every_chart(page, len(KEYS) + 1)
    traces = page.locator('.chart-card[data-key="val/loss"] .plot').evaluate(
        "(p) => p.data.filter((t) => t.line.width === 1.5).map((t) => t.line.color)"
    )
    assert traces[0] == color and traces[1] != color
    page.goto(f"{live.url}/{PROJECT}/")
    swatch = page.locator(f'[data-run-color="{run_id}"]')
    rgb = swatch.evaluate("(s) => getComputedStyle(s).backgroundColor")
    assert rgb == "rgb({}, {}, {})".format(*(int(color[i : i + 2], 16) for i in (1, 3, 5)))


def test_the_plot_keeps_its_height_and_its_legend_stays_beside_it_with_20_runs(
    page, live, owner, sweep
):
    more = []
    for i in range(20 - len(sweep)):
        run = api(live, owner.token, "POST", "runs", project=PROJECT, name=f"wide-{i}")["id"]
        points = [{"key": "val/loss", "step": s, "value": 1 / (s + i + 1)} for s in range(40)]
        api(live, owner.token, "POST", f"runs/{run}/metrics", points=points)
        more.append(run)
    log_in(page, live, owner.username, owner.password)
    area = "(p) => p._fullLayout._size"
    heights = []
    for ids in (sweep[:2], sweep + more):
        page.goto(f"{live.url}/{PROJECT}/compare?runs={','.join(map(str, ids))}")
        plot = page.locator('.chart-card[data-key="val/loss"] .plot')
        plot.scroll_into_view_if_needed()
        expect(plot.locator(".legendtext")).to_have_count(len(ids))
        heights.append(plot.evaluate(area)["h"])
        legend = plot.locator(".legend").bounding_box()
        drawn_area = plot.locator(".nsewdrag").first.bounding_box()
        assert legend["x"] >= drawn_area["x"] + drawn_area["width"], "the legend covers the plot"
        title = plot.locator(".xtitle").bounding_box()
        assert title["y"] >= drawn_area["y"] + drawn_area["height"], "the axis title moved up"
    assert heights[0] == heights[1] >= 200
