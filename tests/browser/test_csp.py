"""The Content-Security-Policy in a real browser: no page breaks it, and every page still works.

Each test watches for violations twice: the ``securitypolicyviolation`` events
of every document (an init script, which the policy does not govern) and
chromium's console messages about the policy. Charts must draw and the
scripts must still do their work under the policy.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

TEAM = "guarded"
PROJECT = f"{TEAM}/vision"
DRAWN = ".main-svg"  # Plotly drew the figure


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("nadia", team=TEAM)


@pytest.fixture(scope="module")
def runs(live: LabbookServer, owner: Any) -> list[int]:
    """Two runs with 30 points of ``loss`` each (logging them creates the project)."""
    ids = []
    for name in ("resnet", "vit"):
        run_id = api(live, owner.token, "POST", "runs", project=PROJECT, name=name)["id"]
        points = [{"key": "loss", "step": s, "value": 2.0 / (s + 1)} for s in range(30)]
        api(live, owner.token, "POST", f"runs/{run_id}/metrics", points=points)
        ids.append(run_id)
    return ids


@pytest.fixture(scope="module")
def report(live: LabbookServer, owner: Any, runs: list[int]) -> dict:
    body = f"# Results\n\n```chart\nruns: {runs}\nmetrics: [loss]\n```\n"
    return api(live, owner.token, "POST", "reports", project=PROJECT, title="Results", body=body)


def shared_url(live: LabbookServer, link: dict) -> str:
    return re.sub(r"^https?://[^/]+", live.url, link["url"])


def test_the_pages_without_charts_break_no_policy(watched, live, owner, runs):
    log_in(watched, live, owner.username, owner.password)
    watched.locator("summary", has_text=owner.username).click()  # the user menu
    expect(watched.get_by_role("link", name="API tokens")).to_be_visible()
    watched.goto(f"{live.url}/{PROJECT}/")
    expect(watched.get_by_role("link", name="resnet")).to_be_visible()
    watched.goto(f"{live.url}/settings/tokens/")
    watched.get_by_label("Name").fill("csp token")
    watched.get_by_role("button", name="Create token").click()
    expect(watched.get_by_label("New API token")).to_have_value(re.compile(r"^lb_"))
    watched.goto(f"{live.url}/api/docs/")
    expect(watched.get_by_text("/api/v1/runs").first).to_be_visible()


def test_the_alert_rule_form_switches_its_fields_under_the_policy(watched, live, owner, runs):
    log_in(watched, live, owner.username, owner.password)
    watched.goto(f"{live.url}/{PROJECT}/alerts/rules/new")
    threshold = watched.locator('fieldset[data-trigger="metric_threshold"]')
    expect(threshold).to_be_hidden()
    watched.get_by_label("Trigger").select_option("metric_threshold")
    expect(threshold).to_be_visible()


def test_the_run_and_compare_charts_draw_under_the_policy(watched, live, owner, runs):
    log_in(watched, live, owner.username, owner.password)
    watched.goto(f"{live.url}/{PROJECT}/runs/{runs[0]}")
    card = watched.locator('.chart-card[data-key="loss"]')
    expect(card).to_have_attribute("data-points", "30")
    expect(card.locator(DRAWN).first).to_be_visible()
    expect(watched.locator("[data-live-state]")).to_have_text("Live")  # the websocket
    trace = "document.querySelector('[data-key=\"loss\"] .plot').data[0].type"
    assert watched.evaluate(trace) == "scatter"
    watched.goto(f"{live.url}/{PROJECT}/compare?runs={runs[0]},{runs[1]}")
    plot = watched.locator('.chart-card[data-key="loss"] .plot')
    expect(plot.locator(".legendtext")).to_have_count(2)


def test_the_report_and_its_editor_preview_work_under_the_policy(watched, live, owner, report):
    log_in(watched, live, owner.username, owner.password)
    watched.goto(f"{live.url}/reports/{report['id']}/")
    expect(watched.locator(f".report-body .plot {DRAWN}").first).to_be_visible()
    watched.goto(f"{live.url}/reports/{report['id']}/edit")
    preview = watched.locator("[data-preview]")
    expect(preview.locator(f".plot {DRAWN}").first).to_be_visible()
    body = watched.get_by_label("Markdown")
    body.fill(body.input_value() + "\n## Written under the policy\n")
    expect(preview.get_by_role("heading", name="Written under the policy")).to_be_visible()


def test_the_share_page_and_a_shared_report_work_under_the_policy(
    watched, browser, live, owner, report
):
    log_in(watched, live, owner.username, owner.password)
    watched.goto(f"{live.url}/reports/{report['id']}/share")
    watched.get_by_label("Allow embedding on other sites").check()
    watched.get_by_role("button", name="Create link").click()
    expect(watched.get_by_label("Embed code")).to_have_value(re.compile(r"^<iframe src="))
    url = shared_url(live, {"url": watched.locator("#new-link-url").input_value()})
    context = browser.new_context()  # nobody logged in
    try:
        reader = context.new_page()
        reader.goto(url)
        expect(reader.locator(f".report-body .plot {DRAWN}").first).to_be_visible()
        expect(reader.locator("[data-live-state]")).to_have_text("Live")
    finally:
        context.close()


class Embedder:
    """Another site on loopback (``localhost``, not ``127.0.0.1``) whose page frames ``url``.

    A real server, not a routed answer: chromium lets only a page from a local
    address frame a local address.
    """

    def __init__(self) -> None:
        self.url = ""
        embedder = self

        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f'<!doctype html><title>Blog</title><iframe src="{embedder.url}"'
                body += ' width="900" height="700"></iframe>'
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.address = f"http://localhost:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def embedder() -> Iterator[Embedder]:
    site = Embedder()
    try:
        yield site
    finally:
        site.close()


def test_only_an_embeddable_share_link_shows_inside_another_site(
    page, live, owner, report, embedder
):
    path = f"reports/{report['id']}/share-links"
    embedder.url = shared_url(live, api(live, owner.token, "POST", path, embeddable=True))
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(embedder.address)
    frame = page.frame_locator("iframe")
    expect(frame.locator(".report-head h1")).to_have_text("Results")
    expect(frame.locator(f".report-body .plot {DRAWN}").first).to_be_visible()
    assert not [text for text in console if "frame-ancestors" in text], console

    embedder.url = shared_url(live, api(live, owner.token, "POST", path))  # not embeddable
    refused = "frame-ancestors 'none'"
    with page.expect_console_message(lambda message: refused in message.text):
        page.goto(embedder.address)
    expect(page.frame_locator("iframe").locator(".report-head h1")).to_have_count(0)
