"""The run page's Media section in a real browser: images by step, a table, histograms, live.

A run logs images at several steps, a table of 120 rows and histograms whose bins differ
from step to step, through the HTTP API as a training job would. The page shows each key
in its own panel; the reader moves the image slider, sorts, filters and pages the table and
sees the heatmap; new images logged while the page is open appear without a reload, and the
slider follows them only while the reader has not moved it.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

PROJECT = "mediateam/vision"
IMAGES_PER_STEP = 3
LABELS = ["cat", "dog", "bird"]
SCREENSHOTS = Path(tempfile.gettempdir()) / "labbook-media-screens"  # looked at, never kept
DASH = "\N{EN DASH}"  # between the first and last row shown


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("mira", team="mediateam")


def png(step: int, index: int, size: int = 48) -> str:
    """A small picture, different for each step and index, base64-encoded."""
    image = Image.new("RGB", (size, size), (40 + index * 70, (step * 3) % 256, 200 - index * 50))
    for x in range(size):
        image.putpixel((x, (x + step) % size), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def images_at(step: int) -> list[dict[str, Any]]:
    return [
        {
            "key": "samples",
            "step": step,
            "kind": "image",
            "caption": f"s{step} #{index + 1}",
            "image": png(step, index),
        }
        for index in range(IMAGES_PER_STEP)
    ]


def table_rows() -> list[list[Any]]:
    """120 rows: id 1..120, a label, and a score whose text order is not its number order."""
    return [[i, LABELS[i % 3], round(((i * 37) % 120) / 10, 1)] for i in range(1, 121)]


def histogram_at(step: int) -> dict[str, Any]:
    """A bell whose centre and bins move with the step (each step has its own edges)."""
    bins = 10 + step // 100
    low, high = -3.0 + step / 200, 3.0 + step / 100
    edges = [low + (high - low) * k / bins for k in range(bins + 1)]
    centre = (low + high) / 2
    counts = [
        round(100 * math.exp(-(((a + b) / 2 - centre) ** 2))) for a, b in itertools.pairwise(edges)
    ]
    key = "weights/w1"
    return {"key": key, "step": step, "kind": "histogram", "counts": counts, "edges": edges}


def log_media(live: LabbookServer, token: str, run_id: int, items: list[dict[str, Any]]) -> None:
    api(live, token, "POST", f"runs/{run_id}/media", items=items)


@pytest.fixture(scope="module")
def run_id(live: LabbookServer, owner: Any) -> int:
    run = api(live, owner.token, "POST", "runs", project=PROJECT, name="media-run")["id"]
    items = [item for step in (0, 100, 200) for item in images_at(step)]
    items.append(
        {
            "key": "predictions",
            "step": 200,
            "kind": "table",
            "caption": "validation predictions",
            "columns": ["id", "label", "score"],
            "rows": table_rows(),
        }
    )
    items += [histogram_at(step) for step in range(0, 800, 100)]
    log_media(live, owner.token, run, items)
    return int(run)


def panel(page: Any, key: str) -> Any:
    return page.locator(f'[data-media-key="{key}"]')


def captions(page: Any) -> Any:
    return panel(page, "samples").locator("figcaption")


def shoot(page: Any, name: str, width: int) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": 900})
    page.locator("#media").scroll_into_view_if_needed()
    # The heatmap is drawn again for the new width (its split of heatmap and bars too).
    page.wait_for_function(
        "() => { const plot = document.querySelector('[data-media-heatmap]');"
        " const svg = plot && plot.querySelector('.main-svg');"
        " return svg && Math.abs(svg.getBoundingClientRect().width - plot.clientWidth) <= 1; }"
    )
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)


def test_images_move_by_step_and_follow_new_steps_live(watched, live, owner, run_id):
    page = watched
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    expect(page.locator("#media")).to_be_visible()
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    images = panel(page, "samples")
    images.scroll_into_view_if_needed()
    expect(captions(page)).to_have_text(["s200 #1", "s200 #2", "s200 #3"])  # the newest step
    expect(images.locator("[data-media-position]")).to_have_text("3 of 3")
    first = images.locator("img").first
    expect(first).to_have_js_property("complete", True)
    assert first.evaluate("img => img.naturalWidth") == 48

    # A step logged while the page is open is shown: the slider was on the newest one.
    log_media(live, owner.token, run_id, images_at(300))
    expect(captions(page)).to_have_text(["s300 #1", "s300 #2", "s300 #3"])
    expect(images.locator("[data-media-position]")).to_have_text("4 of 4")

    # The reader moves back a step (keyboard), and a new step no longer moves the slider.
    slider = images.locator("[data-media-slider]")
    slider.focus()
    page.keyboard.press("ArrowLeft")
    expect(captions(page)).to_have_text(["s200 #1", "s200 #2", "s200 #3"])
    expect(images.locator("[data-media-step]")).to_have_text("step 200")
    page.keyboard.press("Home")
    expect(captions(page).first).to_have_text("s0 #1")
    log_media(live, owner.token, run_id, images_at(400))
    expect(images.locator("[data-media-position]")).to_have_text("1 of 5")
    expect(captions(page).first).to_have_text("s0 #1")
    images.locator("[data-media-latest]").click()
    expect(captions(page)).to_have_text(["s400 #1", "s400 #2", "s400 #3"])

    # A click shows the image at full size.
    images.locator(".media-thumb").nth(1).click()
    dialog = page.locator("[data-media-lightbox]")
    expect(dialog).to_be_visible()
    expect(dialog.locator("figcaption")).to_contain_text("s400 #2")
    expect(dialog.locator("img")).to_have_js_property("complete", True)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_the_table_sorts_filters_and_pages(watched, live, owner, run_id):
    page = watched
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    table = panel(page, "predictions")
    table.scroll_into_view_if_needed()
    rows = table.locator("[data-media-rows]")
    expect(rows).to_have_text(f"rows 1{DASH}50 of 120")
    body = table.locator("tbody tr")
    expect(body).to_have_count(50)
    expect(body.first.locator("td").first).to_have_text("1")

    table.locator("[data-media-next]").click()
    expect(rows).to_have_text(f"rows 51{DASH}100 of 120")
    expect(body.first.locator("td").first).to_have_text("51")
    table.locator("[data-media-next]").click()
    expect(rows).to_have_text(f"rows 101{DASH}120 of 120")
    expect(body).to_have_count(20)
    expect(table.locator("[data-media-next]")).to_be_disabled()

    # Sorting by score: numbers by value (10.5 after 9.9, not before 2), back to page one.
    score = table.get_by_role("button", name="score")
    score.click()
    expect(rows).to_have_text(f"rows 1{DASH}50 of 120")
    expect(table.locator("th").nth(2)).to_have_attribute("aria-sort", "ascending")
    expect(body.first.locator("td").nth(2)).to_have_text("0")
    scores = [float(t) for t in table.locator("tbody td:nth-child(3)").all_inner_texts()]
    assert scores == sorted(scores)
    score.click()
    expect(body.first.locator("td").nth(2)).to_have_text("11.9")
    scores = [float(t) for t in table.locator("tbody td:nth-child(3)").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)

    # Filtering: a substring of any cell.
    table.locator("[data-media-filter]").fill("bird")
    expect(rows).to_have_text(f"rows 1{DASH}40 of 40 (filtered from 120)")
    labels = set(table.locator("tbody td:nth-child(2)").all_inner_texts())
    assert labels == {"bird"}
    table.locator("[data-media-filter]").fill("no such thing")
    expect(table.locator("tbody")).to_contain_text("No row matches")


def test_histograms_draw_as_a_heatmap_that_grows_live(watched, live, owner, run_id):
    page = watched
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    histograms = panel(page, "weights/w1")
    histograms.scroll_into_view_if_needed()
    heatmap = histograms.locator("[data-media-heatmap]")
    expect(heatmap).to_have_attribute("data-steps", "8")
    expect(heatmap.locator(".heatmaplayer image")).to_have_count(1)  # the heatmap is drawn
    expect(heatmap.locator(".barlayer .point")).not_to_have_count(0)  # the latest as bars
    expect(heatmap).to_have_attribute("data-bars", "700")

    log_media(live, owner.token, run_id, [histogram_at(800)])
    expect(heatmap).to_have_attribute("data-steps", "9")
    expect(heatmap).to_have_attribute("data-bars", "800")

    for width in (1280, 390):
        shoot(page, "media", width)
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways page


def test_a_run_without_media_shows_no_section_until_its_first_item(watched, live, owner):
    page = watched
    run = api(live, owner.token, "POST", "runs", project=PROJECT, name="no-media")["id"]
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run}")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    expect(page.locator("#media")).to_be_hidden()
    log_media(live, owner.token, run, images_at(5))
    expect(page.locator("#media")).to_be_visible()
    panel(page, "samples").scroll_into_view_if_needed()
    expect(captions(page)).to_have_text(["s5 #1", "s5 #2", "s5 #3"])
