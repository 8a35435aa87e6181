"""A report in a real browser: its live chart on the report page and through a share link.

The body carries XSS payloads too: none may open a dialog, in either view.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
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


def call(live: LabbookServer, token: str, method: str, path: str, **body: Any) -> dict:
    response = httpx.request(
        method,
        f"{live.url}/api/v1/{path}",
        json=body or None,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code < 300, response.text
    return response.json()


def log(live: LabbookServer, token: str, run_id: int, steps: range) -> None:
    points = [{"key": "val/loss", "step": s, "value": 2.0 / (s + 1)} for s in steps]
    call(live, token, "POST", f"runs/{run_id}/metrics", points=points)


def watch_dialogs(page: Any) -> list[str]:
    fired: list[str] = []

    def dismiss(dialog: Any) -> None:
        fired.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    return fired


def test_a_shared_report_chart_extends_live_for_an_anonymous_reader(page, browser, live, author):
    run_id = call(live, author.token, "POST", "runs", project="papers/nmt", name="big-run")["id"]
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
    report = call(
        live, author.token, "POST", "reports", project="papers/nmt", title="NMT <b>x</b>", body=body
    )
    link = call(live, author.token, "POST", f"reports/{report['id']}/share-links")

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
