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
import re
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
RUNS = 40  # a sweep: every control keeps every one of its lines
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
    """40 runs, three keys each; ``val/acc`` of the first run has a single point."""
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
        # A function, not an expression: Playwright polls an expression with eval, which the
        # page's Content-Security-Policy refuses once the wait outlasts its first check.
        f"() => Labbook.grid.renders >= {before + loaded}",
        timeout=WAIT_MS,
        polling="raf",
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
        f"() => JSON.stringify({widths}) !== {json.dumps(json.dumps(before))}", timeout=WAIT_MS
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


RESETS = 3  # double-clicks a person would try before giving up


def reset_zoom(page: Any, plot: Any) -> None:
    """Double-click the plot, as a person resets a zoom, and wait for the full axis.

    Plotly takes two clicks for a double click only when it handles them within 300 ms of
    each other; on a busy machine (the hover list of 40 lines runs between them) it may
    not, and sees two single clicks. A person then double-clicks again: so does this, up to
    RESETS times, each waiting its share of the suite's ceiling."""
    box = plot.locator(".nsewdrag").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    whole = "(p) => p.layout.xaxis.autorange !== false"
    for _ in range(RESETS):
        page.mouse.dblclick(x, y)
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_function(
                whole, arg=plot.element_handle(), timeout=WAIT_MS / RESETS, polling="raf"
            )
            return
    assert plot.evaluate(whole), f"{RESETS} double-clicks left the plot zoomed"


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
        ("x: metric lr", lambda: redrawn(page, lambda: x_axis.select_option("metric:lr")), plain),
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


def test_the_plot_keeps_its_height_and_its_legend_stays_beside_it_with_40_runs(
    page, live, owner, sweep
):
    log_in(page, live, owner.username, owner.password)
    area = "(p) => p._fullLayout._size"
    heights = []
    for ids in (sweep[:2], sweep):
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


TOOLTIP = """(plot) => {
  const tip = plot.querySelector('.chart-tooltip');
  const dimmed = [...plot.querySelectorAll('.scatterlayer .trace')]
    .filter((trace) => trace.style.opacity === '0.15').length;
  if (!tip || tip.hidden) return {shown: false, dimmed};
  const rows = [...tip.querySelectorAll('li')];
  return {
    shown: true,
    dimmed,
    names: rows.map((row) => row.querySelector('.name').textContent),
    values: rows.map((row) => Number(row.querySelector('.value').textContent)),
    nearest: rows.filter((row) => row.classList.contains('is-nearest'))
      .map((row) => row.querySelector('.name').textContent),
    highlighted: plot.dataset.highlighted,
  };
}"""


def hover_middle(page: Any, plot: Any) -> dict:
    """Move the mouse over the middle of ``plot`` and read the list of nearest runs."""
    box = plot.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.8, steps=4)
    page.wait_for_function(f"(p) => ({TOOLTIP})(p).shown", arg=plot.element_handle())
    return plot.evaluate(TOOLTIP)


def test_hovering_lists_the_nearest_runs_by_value_and_highlights_one(page, live, owner, sweep):
    body = f"```chart\nruns: {sweep}\nmetrics: [val/loss]\nsmoothing: 0.5\n```"
    report = api(live, owner.token, "POST", "reports", project=PROJECT, title="Hover", body=body)
    log_in(page, live, owner.username, owner.password)
    compare = page.locator('.chart-card[data-key="val/loss"] .plot')
    for url, selector in (
        (f"{live.url}/{PROJECT}/compare?runs={','.join(map(str, sweep))}", compare),
        (f"{live.url}/reports/{report['id']}/", page.locator('[data-figure="0"]')),
    ):
        page.goto(url)
        selector.scroll_into_view_if_needed()
        expect(selector.locator(".main-svg").first).to_be_visible()
        seen = hover_middle(page, selector)
        assert 1 < len(seen["names"]) <= 8
        assert seen["values"] == sorted(seen["values"], reverse=True)
        assert seen["nearest"] == [seen["highlighted"]]
        assert seen["dimmed"] >= len(sweep) - 1  # every other run's line is dimmed
        page.mouse.move(0, 0)
        page.wait_for_function(f"(p) => !({TOOLTIP})(p).shown", arg=selector.element_handle())
        assert selector.evaluate(TOOLTIP)["dimmed"] == 0


def test_a_chart_opens_over_the_whole_window_and_escape_closes_it(page, live, owner, sweep):
    body = f"```chart\nruns: {sweep[:2]}\nmetrics: [val/loss]\n```"
    report = api(live, owner.token, "POST", "reports", project=PROJECT, title="Big", body=body)
    log_in(page, live, owner.username, owner.password)
    for url, box in (
        (f"{live.url}/{PROJECT}/runs/{sweep[0]}", '.chart-card[data-key="val/loss"]'),
        (f"{live.url}/reports/{report['id']}/", "#block-0"),
    ):
        page.goto(url)
        card = page.locator(box)
        plot = card.locator("[data-plot], [data-figure]")
        card.scroll_into_view_if_needed()
        expect(plot.locator(".main-svg").first).to_be_visible()
        before = plot.evaluate("(p) => p._fullLayout.height")
        card.get_by_role("button", name="Expand").click()
        expect(card).to_have_class(re.compile(r"\bis-expanded\b"))
        page.wait_for_function("(p) => p._fullLayout.height > 600", arg=plot.element_handle())
        expect(card.locator(".scatterlayer .trace")).not_to_have_count(0)
        page.keyboard.press("Escape")
        expect(card).not_to_have_class(re.compile(r"\bis-expanded\b"))
        page.wait_for_function(
            f"(p) => p._fullLayout.height === {before}", arg=plot.element_handle()
        )


def shown_sections(page: Any) -> list[str]:
    titles = ".chart-section:not([hidden]) > summary .chart-section-title"
    return page.locator(titles).all_inner_texts()


def test_charts_are_grouped_by_prefix_collapsible_and_pinnable(page, live, owner, sweep):
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{sweep[0]}")
    expect(page.locator(".chart-section")).to_have_count(3)
    assert shown_sections(page) == ["Charts", "train/", "val/"]  # lr has no prefix
    val = page.locator('.chart-section[data-section="val"]')
    expect(val.locator(".chart-card")).to_have_count(2)
    expect(val.locator("summary")).to_contain_text("2")

    val.locator("summary").click()  # collapse: remembered across pages
    expect(val.locator('.chart-card[data-key="val/loss"]')).to_be_hidden()
    page.reload()
    expect(val.locator('.chart-card[data-key="val/loss"]')).to_be_hidden()
    assert val.evaluate("(d) => d.open") is False
    val.locator("summary").click()
    expect(val.locator('.chart-card[data-key="val/loss"] .main-svg').first).to_be_visible()

    page.locator('.chart-card[data-key="val/loss"]').get_by_role("button", name="Pin").click()
    assert shown_sections(page) == ["Pinned", "Charts", "train/", "val/"]
    page.reload()
    pinned = page.locator('.chart-section[data-section="pinned"] .chart-card')
    expect(pinned).to_have_attribute("data-key", "val/loss")
    expect(pinned.locator(".main-svg").first).to_be_visible()

    page.get_by_label("Filter charts").fill("loss")
    assert shown_sections(page) == ["Pinned", "train/"]  # nothing of Charts or val/ matches
    expect(page.locator("[data-chart-count]")).to_have_text("2 of 4 charts")
    page.get_by_label("Filter charts").fill("")
    pinned.get_by_role("button", name="Unpin").click()
    assert shown_sections(page) == ["Charts", "train/", "val/"]


def test_any_metric_can_be_the_x_axis(page, live, owner):
    """Each point goes where the x metric stood at its step (interpolated between the steps
    it was logged at), live points too; the choice is remembered."""
    run = api(live, owner.token, "POST", "runs", project=PROJECT, name="by-epoch")["id"]
    points = [{"key": "loss", "step": s, "value": 1 / (s + 1)} for s in range(0, 100, 5)]
    points += [{"key": "epoch", "step": s, "value": s / 20} for s in range(0, 100, 20)]
    api(live, owner.token, "POST", f"runs/{run}/metrics", points=points)
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run}")
    show_every_chart(page, 2)
    redrawn(page, lambda: page.locator("[data-chart-x]").select_option("metric:epoch"))
    plot = page.locator('.chart-card[data-key="loss"] .plot')
    assert plot.evaluate("(p) => p._fullLayout.xaxis.title.text") == "epoch"
    xs = plot.evaluate("(p) => p.data[0].x")
    assert xs == pytest.approx([s / 20 for s in range(0, 81, 5)] + [4.0] * 3)  # held past 80
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    more = [
        {"key": "epoch", "step": 100, "value": 5.0},
        {"key": "loss", "step": 100, "value": 0.01},
    ]
    api(live, owner.token, "POST", f"runs/{run}/metrics", points=more)
    page.wait_for_function("(p) => p.data[0].x.at(-1) === 5", arg=plot.element_handle())
    page.reload()
    show_every_chart(page, 2)
    expect(page.locator("[data-chart-x]")).to_have_value("metric:epoch")
    expect_drawn(page, RUN_PLOTS, [1, 1], "x: epoch after a reload")


def test_a_report_chart_can_take_a_metric_as_its_x_axis(page, live, owner):
    """``x: epoch`` in a chart block: the same placement as on the run page, in the report
    and its live points (an epoch point and a loss point of one batch)."""
    run = api(live, owner.token, "POST", "runs", project=PROJECT, name="block-epoch")["id"]
    points = [{"key": "loss", "step": s, "value": 1 / (s + 1)} for s in range(0, 100, 5)]
    points += [{"key": "epoch", "step": s, "value": s / 20} for s in range(0, 100, 20)]
    api(live, owner.token, "POST", f"runs/{run}/metrics", points=points)
    body = f"```chart\nruns: [{run}]\nmetrics: [loss]\nx: epoch\nsmoothing: 0.5\n```"
    report = api(live, owner.token, "POST", "reports", project=PROJECT, title="Epochs", body=body)
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/reports/{report['id']}/")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    plot = page.locator('[data-figure="0"]')
    expect(plot.locator(".main-svg").first).to_be_visible()
    assert plot.evaluate("(p) => p._fullLayout.xaxis.title.text") == "epoch"
    placed = [s / 20 for s in range(0, 81, 5)] + [4.0] * 3
    assert plot.evaluate("(p) => p.data[0].x") == pytest.approx(placed)  # raw
    assert plot.evaluate("(p) => p.data[1].x") == pytest.approx(placed)  # its smoothed twin
    more = [
        {"key": "epoch", "step": 100, "value": 5.0},
        {"key": "loss", "step": 100, "value": 0.01},
    ]
    api(live, owner.token, "POST", f"runs/{run}/metrics", points=more)
    page.wait_for_function(
        "(p) => p.data[0].x.at(-1) === 5 && p.data[1].x.at(-1) === 5",
        arg=plot.element_handle(),
        timeout=WAIT_MS,
    )
