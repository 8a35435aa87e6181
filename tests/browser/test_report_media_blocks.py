"""Media, table, histogram and logs blocks of a report in a real browser (issue 21).

A run logs images, a table, histograms and console lines through the HTTP API as a
training job would; a report shows each in its block. The member's page, the share link
opened by a fresh browser (no session) and the exported file opened offline each draw
every block: the images load (their pixels decoded by the browser), the heatmap is an
SVG, the table and the console lines are there. Screenshots go to a temporary folder
to be looked at, never kept.
"""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api

pytestmark = pytest.mark.browser

PROJECT = "mediablocks/vision"
SCREENSHOTS = Path(tempfile.gettempdir()) / "labbook-report-media-screens"
# Every image of the page has loaded and decoded: the browser knows its pixel size.
IMAGES_LOADED = (
    "Array.from(document.querySelectorAll('img.report-media-img'))"
    ".every(i => i.complete && i.naturalWidth > 0)"
)


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("ines", team="mediablocks")


def png(shade: int, size: int = 64) -> str:
    image = Image.new("RGB", (size, size), (shade, 90, 255 - shade))
    for x in range(size):
        image.putpixel((x, x), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def logged_run(live: Any, token: str, name: str, shade: int) -> int:
    run_id = api(live, token, "POST", "runs", project=PROJECT, name=name)["id"]
    images = [
        {"key": "samples", "step": step, "kind": "image", "caption": f"{name} {step}#{i}"}
        | {"image": png(shade + 40 * i)}
        for step in (10, 20)
        for i in range(2)
    ]
    table = {
        "key": "preds",
        "step": 20,
        "kind": "table",
        "columns": ["id", "label", "p"],
        "rows": [[i, ["cat", "dog", "bird"][i % 3], round(i / 50, 2)] for i in range(40)],
    }
    histograms = [
        {
            "key": "grad/w1",
            "step": step,
            "kind": "histogram",
            "counts": [1, 4 + step % 7, 9, 4, 1],
            "edges": [e * (1 + step / 40) for e in (-2.0, -1.0, -0.3, 0.3, 1.0, 2.0)],
        }
        for step in range(0, 40, 2)
    ]
    api(live, token, "POST", f"runs/{run_id}/media", items=[*images, table, *histograms])
    lines = [
        {"number": n, "stream": "stderr" if n == 7 else "stdout", "text": text}
        for n, text in enumerate(
            [f"\x1b[32mepoch {n}\x1b[0m loss={1 / (n + 1):.3f}" for n in range(12)]
        )
    ]
    api(live, token, "POST", f"runs/{run_id}/console", lines=lines)
    return run_id


def check_blocks(page: Any, name: str) -> None:
    """Every block drawn: images loaded, the heatmap's SVG, the table's rows, the lines."""
    media = page.locator("[data-media-block='samples']")
    expect(media.locator("img.report-media-img")).to_have_count(4)  # 2 runs x newest step's 2
    expect(media).to_contain_text("step 20")
    page.wait_for_function(IMAGES_LOADED, timeout=30_000)
    heatmap = page.locator(".report-histogram [data-figure]")
    expect(heatmap.locator(".main-svg").first).to_be_visible()
    expect(heatmap.locator(".hm, .heatmaplayer image, image").first).to_be_attached()
    table = page.locator("[data-table-block='preds']")
    expect(table.locator("tbody tr")).to_have_count(5)
    expect(table).to_contain_text("The first 5 of 40 rows.")
    logs = page.locator(".report-logs [data-line]")
    expect(logs).to_have_count(4)
    expect(logs.first).to_contain_text("epoch 8 loss=0.111")
    expect(page.locator(".report-logs")).not_to_contain_text("[32m")
    expect(page.locator(".block-error")).to_have_count(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_report_draws_media_blocks_for_members_share_links_and_the_export(
    page, browser, live, owner, tmp_path
):
    first = logged_run(live, owner.token, "resnet-a", 30)
    second = logged_run(live, owner.token, "resnet-b", 180)
    body = "\n\n".join(
        [
            "# Samples",
            f"```media\nruns: [{first}, {second}]\nkey: samples\nmax_images: 2\n```",
            f"```histogram\nruns: [{first}, {second}]\nkey: grad/w1\n```",
            f"```table\nrun: {first}\nkey: preds\nmax_rows: 5\ncolumns: [label, p]\n```",
            f"```logs\nrun: {first}\ntail: 4\n```",
        ]
    )
    report = api(live, owner.token, "POST", "reports", project=PROJECT, title="Vision", body=body)
    link = api(live, owner.token, "POST", f"reports/{report['id']}/share-links")

    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/reports/{report['id']}/")
    check_blocks(page, "member")
    sources = page.eval_on_selector_all("img.report-media-img", "e => e.map(i => i.src)")
    assert all("/api/v1/media/" in src for src in sources)

    reader = browser.new_context()  # no session: what an anonymous reader sees
    try:
        shared = reader.new_page()
        shared.goto(link["url"].replace("http://127.0.0.1:8000", live.url))
        check_blocks(shared, "shared")
        shown = shared.eval_on_selector_all("img.report-media-img", "e => e.map(i => i.src)")
        assert all("/s/" in src and "/media/" in src for src in shown)
        hidden = shown[0].rsplit("/", 1)[0] + f"/{int(shown[0].rsplit('/', 1)[1]) - 1}"
        assert shared.request.get(hidden).status == 404  # step 10's image: not in the report
    finally:
        reader.close()

    exported = page.request.get(f"{live.url}/reports/{report['id']}/export.html")
    assert exported.ok
    path = tmp_path / "vision.html"
    path.write_bytes(exported.body())
    offline = browser.new_context(offline=True)
    try:
        requested: list[str] = []
        viewer = offline.new_page()
        viewer.on("request", lambda request: requested.append(request.url))
        viewer.goto(path.as_uri())
        check_blocks(viewer, "export")
        sources = viewer.eval_on_selector_all("img.report-media-img", "e => e.map(i => i.src)")
        assert all(src.startswith("data:image/png;base64,") for src in sources)
        outside = [u for u in requested if not u.startswith(("file:", "data:"))]
        assert outside == []
    finally:
        offline.close()
