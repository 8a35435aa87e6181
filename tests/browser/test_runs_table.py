"""The runs table in chromium with a 40-run sweep and 15 other runs: the column picker
(find, tick, reorder), a value filter, grouping with aggregates, select all matching, and a
saved view a teammate reopens from its link."""

from __future__ import annotations

import re
import statistics
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

TEAM = "tables"
PROJECT = f"{TEAM}/sweep"
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")  # ten runs each
SWEEP = 40
OTHERS = 15  # evaluation runs: no optimizer; 55 runs in all, more than a page of 50


def accuracy(index: int) -> float:
    return round(0.6 + 0.01 * index, 4)


@pytest.fixture(scope="module")
def editor(make_user: Any) -> Any:
    return make_user("tess", team=TEAM)


@pytest.fixture(scope="module")
def teammate(make_user: Any, editor: Any) -> Any:
    return make_user("theo", team=TEAM, role="viewer")


@pytest.fixture(scope="module")
def runs(live: LabbookServer, editor: Any) -> dict[str, Any]:
    """The sweep's and the other runs' ids, and each sweep run's optimizer and accuracy."""
    sweep = {}
    for index in range(SWEEP):
        optimizer = OPTIMIZERS[index % len(OPTIMIZERS)]
        config = {"optimizer": {"name": optimizer, "lr": 10 ** -(1 + index % 3)}, "seed": index}
        run = api(
            live, editor.token, "POST", "runs", project=PROJECT,
            name=f"{optimizer}-seed-{index:02d}-with-a-long-descriptive-name", config=config,
        )["id"]  # fmt: skip
        points = [
            {"key": "val/acc", "step": 0, "value": accuracy(index)},
            {"key": "train/loss", "step": 0, "value": 1 - accuracy(index)},
        ]
        api(live, editor.token, "POST", f"runs/{run}/metrics", points=points)
        sweep[run] = (optimizer, accuracy(index))
    others = [
        api(live, editor.token, "POST", "runs", project=PROJECT, name=f"eval-{i}")["id"]
        for i in range(OTHERS)
    ]
    return {"sweep": sweep, "others": others}


def open_table(page: Any, live: LabbookServer, user: Any, query: str = "") -> None:
    log_in(page, live, user.username, user.password)
    page.goto(f"{live.url}/{PROJECT}/{query}")


def headers(page: Any) -> list[str]:
    return page.locator("table.runs th.column").evaluate_all(
        "(cells) => cells.map((cell) => cell.title)"
    )


def test_the_picker_finds_ticks_and_orders_columns_and_a_value_filter_narrows(
    page, live, editor, runs
):
    open_table(page, live, editor)
    assert headers(page) == ["summary.train/loss", "summary.val/acc"]  # the defaults
    page.locator("[data-column-picker] > summary").click()
    search = page.get_by_placeholder("Find a column")
    search.fill("optimizer")
    visible = page.locator("[data-column-list] li[data-column]:visible")
    expect(visible).to_have_count(2)  # config.optimizer.lr, config.optimizer.name
    page.get_by_label("config.optimizer.name", exact=True).check()
    search.fill("")
    # Ticked, it joined the end of the chosen columns; drag it to the top of the list.
    chosen = page.locator('[data-column-list] li[draggable="true"]')
    expect(chosen).to_have_count(3)
    page.locator('li[data-column="config.optimizer.name"]').drag_to(chosen.first)
    expect(chosen.first).to_have_attribute("data-column", "config.optimizer.name")
    page.get_by_role("button", name="Move summary.val/acc up").click()  # the arrows move too
    page.get_by_role("button", name="Show these columns").click()
    expect(page.locator("table.runs th.column").first).to_have_attribute(
        "title", "config.optimizer.name"
    )
    assert headers(page) == ["config.optimizer.name", "summary.val/acc", "summary.train/loss"]

    page.get_by_label("Values").fill("summary.val/acc >= 0.9 and config.optimizer.name = adam")
    page.get_by_role("button", name="Apply").click()
    wanted = sorted(
        run for run, (opt, acc) in runs["sweep"].items() if opt == "adam" and acc >= 0.9
    )
    rows = page.locator("table.runs tbody tr[data-run-id]")
    expect(rows).to_have_count(len(wanted))
    got = rows.evaluate_all("(rows) => rows.map((row) => Number(row.dataset.runId))")
    assert sorted(got) == wanted
    expect(page.locator("h1")).to_contain_text(f"{len(wanted)} runs matching")

    page.get_by_label("Values").fill("summary.val/acc > high")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#filter-values-error")).to_contain_text("compares numbers")


def test_grouping_shows_counts_and_aggregates_and_folds(page, live, editor, runs):
    open_table(page, live, editor, "?columns=config.optimizer.name,summary.val/acc")
    page.get_by_label("Group by").select_option("config.optimizer.name")
    page.get_by_label("Aggregate").select_option("summary.val/acc")
    page.get_by_role("button", name="Apply").click()
    groups = page.locator("tbody.run-group")
    expect(groups).to_have_count(len(OPTIMIZERS) + 1)  # and the runs without an optimizer
    labels = groups.evaluate_all("(bodies) => bodies.map((body) => body.dataset.group)")
    assert labels == [*sorted(OPTIMIZERS), "(none)"]
    for optimizer in OPTIMIZERS:
        group = page.locator(f'tbody.run-group[data-group="{optimizer}"]')
        values = [acc for opt, acc in runs["sweep"].values() if opt == optimizer]
        expect(group.locator("[data-group-count]")).to_have_text("10 runs")
        mean = group.locator('[data-stat="mean"]').inner_text()
        assert float(mean) == pytest.approx(statistics.fmean(values), rel=1e-3)
        assert float(group.locator('[data-stat="max"]').inner_text()) == max(values)
        expect(group.locator("tr[data-run-id]")).to_have_count(10)
    adam = page.locator('tbody.run-group[data-group="adam"]')
    adam.get_by_role("button", name="adam").click()
    expect(adam.locator("tr[data-run-id]").first).to_be_hidden()
    expect(adam.get_by_role("button", name="adam")).to_have_attribute("aria-expanded", "false")
    page.locator('tbody.run-group[data-group="sgd"]').get_by_role("link", name="only these").click()
    expect(page.locator("table.runs tbody tr[data-run-id]")).to_have_count(10)
    expect(page.get_by_label("Values")).to_have_value("config.optimizer.name = 'sgd'")


def test_select_all_matching_reaches_past_the_page(page, live, editor, runs):
    open_table(page, live, editor, "?sort=name")
    rows = page.locator("table.runs tbody tr[data-run-id]")
    expect(rows).to_have_count(50)
    page.get_by_label("Select every run on this page").check()
    banner = page.locator("[data-select-all-matching]")
    expect(banner).to_contain_text("All 50 runs on this page are selected.")
    banner.get_by_role("button", name=f"Select all {SWEEP + OTHERS} matching runs").click()
    expect(banner).to_contain_text(f"All {SWEEP + OTHERS} matching runs are selected.")
    page.get_by_placeholder("tag").fill("reviewed")
    page.get_by_role("button", name="Add tag").click()
    expect(page.locator(".flash-success")).to_contain_text(
        f"Tags updated on {SWEEP + OTHERS} runs."
    )
    tagged = api(live, editor.token, "GET", f"runs?project={PROJECT}&tag=reviewed&page_size=100")
    assert len(tagged["results"]) == SWEEP + OTHERS


def test_a_saved_view_opens_for_a_teammate_from_its_link(
    page, browser, live, editor, teammate, runs
):
    query = "?columns=summary.val/acc,config.optimizer.lr&group_by=tags&sort=name"
    open_table(page, live, editor, query)
    page.get_by_label("Values").fill("config.optimizer.name = rmsprop")
    page.get_by_role("button", name="Apply").click()
    page.get_by_placeholder("Name this view").fill("RMSprop sweep")
    page.get_by_role("button", name="Save view").click()
    expect(page.locator(".flash-success")).to_contain_text("View “RMSprop sweep” saved")
    link = page.get_by_role("link", name="Link to this view").get_attribute("href")
    assert link is not None and re.fullmatch(rf"/{PROJECT}/\?view=\d+", link)

    other = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        theirs = other.new_page()
        log_in(theirs, live, teammate.username, teammate.password)
        theirs.goto(f"{live.url}{link}")
        expect(theirs.get_by_label("View", exact=True)).to_have_value(link.rsplit("=", 1)[1])
        expect(theirs.get_by_label("Values")).to_have_value("config.optimizer.name = rmsprop")
        assert headers(theirs) == ["summary.val/acc", "config.optimizer.lr"]
        expect(theirs.locator("tbody.run-group")).to_have_count(1)  # by tag: all "reviewed"
        expect(theirs.locator("table.runs tbody tr[data-run-id]")).to_have_count(10)
        expect(theirs.get_by_role("button", name="Save view")).to_have_count(0)  # a viewer
    finally:
        other.close()
