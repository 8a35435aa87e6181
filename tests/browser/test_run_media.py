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
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import httpx
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


# --- Texts (issue 21) ----------------------------------------------------------------------------


def text_at(step: int, key: str = "generated", **more: Any) -> dict[str, Any]:
    text = f"  step {step}: the model wrote\n\tindented <b>not bold</b>\nlast line"
    return {"key": key, "step": step, "kind": "text", "text": text, **more}


def test_texts_move_by_step_json_is_indented_and_a_long_text_is_cut(watched, live, owner):
    page = watched
    run = api(live, owner.token, "POST", "runs", project=PROJECT, name="texts")["id"]
    config = '{"seed":12345678901234567890,"lr":1e-3,"layers":[64,32],"empty":{},"s":"a,b:{"}'
    long_text = "".join(f"line {n:06d} " + "x" * 87 + "\n" for n in range(2_500))  # 250,000
    items = [text_at(0), text_at(100, caption="epoch 1")]
    items += [
        {"key": "config.json", "step": 0, "kind": "text", "format": "json", "text": config},
        {"key": "train.log", "step": 0, "kind": "text", "text": long_text},
    ]
    log_media(live, owner.token, run, items)
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run}")
    expect(page.locator("[data-live-state]")).to_have_text("Live")

    generated = panel(page, "generated")
    generated.scroll_into_view_if_needed()
    pre = generated.locator("[data-media-text]")
    expect(pre).to_contain_text("step 100: the model wrote")  # the newest step
    assert pre.evaluate("p => p.textContent") == text_at(100)["text"]  # exactly, not as HTML
    expect(generated.locator("figcaption")).to_have_text("epoch 1 · 3 lines")
    generated.locator("[data-media-slider]").focus()
    page.keyboard.press("Home")
    expect(pre).to_contain_text("step 0: the model wrote")
    log_media(live, owner.token, run, [text_at(200)])  # the reader moved off the newest step
    expect(generated.locator("[data-media-position]")).to_have_text("1 of 3")
    generated.locator("[data-media-latest]").click()
    expect(pre).to_contain_text("step 200: the model wrote")

    shown = panel(page, "config.json").locator("[data-media-text]")
    shown.scroll_into_view_if_needed()
    expect(shown).to_contain_text("12345678901234567890")  # as written: not rounded by a parse
    assert shown.evaluate("p => p.textContent") == (
        '{\n  "seed": 12345678901234567890,\n  "lr": 1e-3,\n  "layers": [\n    64,\n    32\n  ],'
        '\n  "empty": {},\n  "s": "a,b:{"\n}'
    )

    log = panel(page, "train.log")
    log.scroll_into_view_if_needed()
    expect(log.locator("[data-media-text-cut]")).to_contain_text("The first 200,000 of 250,000")
    assert log.locator("[data-media-text]").evaluate("p => p.textContent.length") == 200_000
    box = log.locator("[data-media-text]").bounding_box()
    assert box is not None and box["height"] < 600  # it scrolls inside its box
    link = log.locator("[data-media-text-cut] a")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_text() == long_text
    assert download.value.suggested_filename.endswith(".txt")

    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        panel(page, "config.json").scroll_into_view_if_needed()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"texts-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways page


def test_a_json_file_that_becomes_a_table_changes_its_panel_live(watched, live, owner):
    """MLflow's log_table uploads its file (a text) before the tag that makes it a table."""
    page = watched
    run = api(live, owner.token, "POST", "runs", project=PROJECT, name="text-to-table")["id"]
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run}")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    table = json.dumps({"columns": ["a", "b"], "data": [[1, "x"]]})
    with httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {owner.token}"}, trust_env=False
    ) as http:
        got = http.get("/api/2.0/mlflow/runs/get", params={"run_id": run}).raise_for_status()
        experiment = got.json()["run"]["info"]["experiment_id"]
        path = f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/t.json"
        http.put(path, content=table.encode()).raise_for_status()
        expect(panel(page, "t.json")).to_have_attribute("data-kind", "text")
        panel(page, "t.json").scroll_into_view_if_needed()
        expect(panel(page, "t.json").locator("[data-media-text]")).to_contain_text('"columns": [')
        tag = json.dumps([{"path": "t.json", "type": "table"}])
        body = {"run_id": str(run), "key": "mlflow.loggedArtifacts", "value": tag}
        http.post("/api/2.0/mlflow/runs/set-tag", json=body).raise_for_status()
    expect(panel(page, "t.json")).to_have_attribute("data-kind", "table")
    expect(panel(page, "t.json")).to_have_count(1)
    panel(page, "t.json").scroll_into_view_if_needed()
    expect(panel(page, "t.json").locator("tbody td").first).to_have_text("1")
