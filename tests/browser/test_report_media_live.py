"""Live media and logs blocks in a real browser (issue 21).

A member's report page and a share link opened by a fresh browser (no session) are both
open while a run logs a new image step and console lines through the HTTP API, as a
training job would. Each page draws the block again by itself: the member's from the
run's media and console messages, the share link's from its socket's bare
``block.changed``. Screenshots go to a temporary folder to be looked at, never kept.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.browser.test_report_media_blocks import IMAGES_LOADED, png

pytestmark = pytest.mark.browser

PROJECT = "medialive/vision"
SCREENSHOTS = Path(tempfile.gettempdir()) / "labbook-report-media-live-screens"
MEDIA = "[data-drawn-block='0']"
LOGS = "[data-drawn-block='1']"


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("oona", team="medialive")


def log_image(live: Any, token: str, run_id: int, step: int, shade: int) -> None:
    item = {"key": "samples", "step": step, "kind": "image", "caption": f"step {step} sample"}
    api(live, token, "POST", f"runs/{run_id}/media", items=[item | {"image": png(shade)}])


def log_histogram(live: Any, token: str, run_id: int, step: int) -> None:
    item = {"key": "grad/w1", "step": step, "kind": "histogram", "counts": [1, 5, 2]}
    item["edges"] = [-1.0 - step / 10, 0.0, 0.5, 1.0 + step / 10]
    api(live, token, "POST", f"runs/{run_id}/media", items=[item])


# The steps the histogram block's heatmap draws, as Plotly holds them.
HEATMAP_STEPS = "() => Array.from(document.querySelector('[data-figure=\"2\"]').data[0].x)"


def log_lines(live: Any, token: str, run_id: int, first: int, texts: list[str]) -> None:
    lines = [{"number": first + n, "stream": "stdout", "text": t} for n, t in enumerate(texts)]
    api(live, token, "POST", f"runs/{run_id}/console", lines=lines)


def shows_step(page: Any, step: int, name: str) -> list[str]:
    """The page's media block shows ``step`` (its image loaded) and the new console line."""
    block = page.locator(MEDIA)
    expect(block).to_contain_text(f"step {step}", timeout=60_000)
    expect(block.locator("img.report-media-img")).to_have_count(1)
    page.wait_for_function(IMAGES_LOADED, timeout=30_000)
    expect(page.locator(LOGS)).to_contain_text("epoch 3 done", timeout=60_000)
    page.wait_for_function(f"({HEATMAP_STEPS})().includes({step})", timeout=60_000)
    assert page.evaluate(HEATMAP_STEPS) == [0, 1, step]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    sources: list[str] = block.locator("img.report-media-img").evaluate_all(
        "e => e.map(i => i.src)"
    )
    return sources


def test_a_new_image_step_shows_live_for_a_member_and_a_share_link(watched, browser, live, owner):
    page = watched
    run_id = api(live, owner.token, "POST", "runs", project=PROJECT, name="vit-live")["id"]
    log_image(live, owner.token, run_id, 10, 30)
    log_lines(live, owner.token, run_id, 0, ["epoch 1 done", "epoch 2 done"])
    for step in (0, 1):
        log_histogram(live, owner.token, run_id, step)
    body = "\n\n".join(
        [
            "# Samples as they come",
            f"```media\nruns: [{run_id}]\nkey: samples\nmax_images: 1\n```",
            f"```logs\nrun: {run_id}\ntail: 3\n```",
            f"```histogram\nruns: [{run_id}]\nkey: grad/w1\n```",
        ]
    )
    report = api(live, owner.token, "POST", "reports", project=PROJECT, title="Live", body=body)
    link = api(live, owner.token, "POST", f"reports/{report['id']}/share-links")

    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/reports/{report['id']}/")
    expect(page.locator(MEDIA)).to_contain_text("step 10")
    expect(page.locator("[data-live-state]")).to_have_attribute("data-live-state", "live")
    reader = browser.new_context()  # no session: what an anonymous reader sees
    try:
        shared = reader.new_page()
        shared.goto(link["url"].replace("http://127.0.0.1:8000", live.url))
        expect(shared.locator(MEDIA)).to_contain_text("step 10")
        expect(shared.locator("[data-live-state]")).to_have_attribute(
            "data-live-state", "live", timeout=30_000
        )

        log_image(live, owner.token, run_id, 20, 220)
        log_lines(live, owner.token, run_id, 2, ["epoch 3 done"])
        log_histogram(live, owner.token, run_id, 20)

        member_sources = shows_step(page, 20, "member")
        assert all("/api/v1/media/" in src for src in member_sources)
        shared_sources = shows_step(shared, 20, "shared")
        assert all("/s/" in src and "/media/" in src for src in shared_sources)
        expect(shared.locator(MEDIA)).not_to_contain_text("step 10")
        assert shared.locator("a[href*='/runs/']").count() == 0  # runs named, not linked
    finally:
        reader.close()
