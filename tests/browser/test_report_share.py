"""A report in a real browser: its live chart on the report page and through a share link.

The body carries XSS payloads too: none may open a dialog, in either view.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>alert('script')</script>",
    "<img src=x onerror=alert('img')>",
    "<svg onload=alert('svg')></svg>",
    "[link](javascript:alert('link'))",
    "<a href=javascript:alert('a')>a</a>",
    "<details open ontoggle=alert('details')>x</details>",
    "<iframe src=javascript:alert('iframe')></iframe>",
]


@pytest.fixture(scope="module")
def author(make_user: Any) -> Any:
    return make_user("rhea", team="papers")


def log(live: LabbookServer, token: str, run_id: int, steps: range) -> None:
    points = [{"key": "val/loss", "step": s, "value": 2.0 / (s + 1)} for s in steps]
    api(live, token, "POST", f"runs/{run_id}/metrics", points=points)


def watch_dialogs(page: Any) -> list[str]:
    fired: list[str] = []

    def dismiss(dialog: Any) -> None:
        fired.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    return fired


def test_a_shared_report_chart_extends_live_for_an_anonymous_reader(page, browser, live, author):
    run_id = api(live, author.token, "POST", "runs", project="papers/nmt", name="big-run")["id"]
    log(live, author.token, run_id, range(0, 10))
    body = "\n\n".join(
        [
            "# Results",
            f"run:{run_id} is the one.",
            f"```chart\nruns: [{run_id}]\nmetrics: [val/loss]\ntitle: Validation loss\n```",
            f"```chart\nruns: [{run_id}]\nmetrics: [val/loss]\nsmoothing: 0.6\n```",
            *PAYLOADS,
        ]
    )
    report = api(
        live, author.token, "POST", "reports", project="papers/nmt", title="NMT <b>x</b>", body=body
    )
    link = api(live, author.token, "POST", f"reports/{report['id']}/share-links")

    fired = watch_dialogs(page)
    log_in(page, live, author.username, author.password)
    page.goto(f"{live.url}/reports/{report['id']}/")
    plot = page.locator('[data-figure="0"]')
    expect(plot.locator(".main-svg").first).to_be_visible()
    expect(plot).to_have_attribute("data-points", "10")

    reader = browser.new_context()  # a fresh browser: no session, no cookies
    try:
        shared = reader.new_page()
        fired_shared = watch_dialogs(shared)
        shared.goto(link["url"].replace("http://127.0.0.1:8000", live.url))
        expect(shared.get_by_role("heading", name="Results")).to_be_visible()
        shared_plot = shared.locator('[data-figure="0"]')
        expect(shared_plot).to_have_attribute("data-points", "10")
        expect(shared.locator("[data-live-state]")).to_have_text("Live")
        expect(shared.locator("a.run-ref")).to_have_count(0)  # the run is named, not linked
        log(live, author.token, run_id, range(10, 25))
        expect(shared_plot).to_have_attribute("data-points", "25")
        expect(plot).to_have_attribute("data-points", "25")  # and on the report page too
        smoothed = page.locator('[data-figure="1"]')
        expect(smoothed).to_have_attribute("data-points", "25")
        lengths = "document.querySelector('[data-figure=\"1\"]').data.map(t => t.x.length)"
        assert page.evaluate(lengths) == [25, 25]  # the faint raw line and its smoothed twin
        assert fired_shared == []
    finally:
        reader.close()
    assert fired == []


@pytest.fixture(scope="module")
def teammate(make_user: Any, author: Any) -> Any:
    return make_user("tomas", team="papers", role="viewer")


def test_a_comment_on_a_heading_appears_live_for_a_teammate(page, browser, live, author, teammate):
    report = api(
        live,
        author.token,
        "POST",
        "reports",
        project="papers/nmt",
        title="Discuss",
        body="# Method",
    )
    url = f"{live.url}/reports/{report['id']}/"
    log_in(page, live, teammate.username, teammate.password)
    page.goto(url)
    expect(page.locator("[data-comments-status]")).to_be_hidden()
    other = browser.new_context()
    try:
        watcher = other.new_page()
        log_in(watcher, live, author.username, author.password)
        watcher.goto(url)
        expect(watcher.locator("[data-comments-status]")).to_be_hidden()
        page.get_by_role("button", name="Comment on “Method”").click()
        expect(page.locator("[data-comment-anchor]")).to_contain_text("Method")
        page.get_by_label("Add a comment").fill(
            "Is **this** the final setup? <img src=x onerror=alert(1)>"
        )
        page.get_by_role("button", name="Comment", exact=True).click()
        thread = watcher.locator("[data-comment-threads] li").first
        expect(thread).to_contain_text("Is this the final setup?")  # live, no reload
        expect(thread.locator("strong:not(.comment-author)")).to_have_text("this")
        expect(thread.locator("img[onerror]")).to_have_count(0)
        expect(thread).to_contain_text("Method")
    finally:
        other.close()


def test_the_export_opens_offline_with_its_charts(page, browser, live, author, tmp_path):
    run_id = api(live, author.token, "POST", "runs", project="papers/nmt", name="exported")["id"]
    log(live, author.token, run_id, range(0, 30))
    body = f"```chart\nruns: [{run_id}]\nmetrics: [val/loss]\n```"
    report = api(
        live, author.token, "POST", "reports", project="papers/nmt", title="Archive", body=body
    )
    log_in(page, live, author.username, author.password)
    exported = page.request.get(f"{live.url}/reports/{report['id']}/export.html")
    assert exported.ok
    path = tmp_path / "archive.html"
    path.write_bytes(exported.body())
    offline = browser.new_context(offline=True)
    try:
        requested: list[str] = []
        viewer = offline.new_page()
        viewer.on("request", lambda request: requested.append(request.url))
        viewer.goto(path.as_uri())
        plot = viewer.locator('[data-figure="0"]')
        expect(plot.locator(".main-svg").first).to_be_visible()
        expect(plot).to_have_attribute("data-points", "30")
        assert [url for url in requested if not url.startswith("file:")] == []
    finally:
        offline.close()
