"""What a chart page weighs in a real browser: plotly.js compressed once, then from the cache."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from kernel.charts import PLOTLY_JS
from tests.browser.conftest import log_in
from tests.browser.support import Transfers, api
from tests.sdk.server import ROOT, LabbookServer

pytestmark = pytest.mark.browser

TEAM = "weighed"
PROJECT = f"{TEAM}/vision"
DRAWN = ".main-svg"
PLOTLY = "/static/plotly/plotly-strict.min."
HASHED = re.compile(r"/static/plotly/plotly-strict\.min\.[0-9a-f]{12}\.js$")


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("wendy", team=TEAM)


@pytest.fixture(scope="module")
def run_url(live: LabbookServer, owner: Any) -> str:
    run_id = api(live, owner.token, "POST", "runs", project=PROJECT, name="resnet")["id"]
    points = [{"key": "loss", "step": s, "value": 2.0 / (s + 1)} for s in range(30)]
    api(live, owner.token, "POST", f"runs/{run_id}/metrics", points=points)
    return f"{live.url}/{PROJECT}/runs/{run_id}"


def test_a_chart_page_loads_plotly_compressed_and_a_reload_takes_it_from_the_cache(
    page, live, owner, run_url
):
    log_in(page, live, owner.username, owner.password)
    transfers = Transfers(page)
    responses: list[Any] = []
    page.on("response", lambda response: PLOTLY in response.url and responses.append(response))

    page.goto(run_url)
    expect(page.locator(DRAWN).first).to_be_visible()
    (first,) = responses
    assert HASHED.search(first.url), first.url
    asked = first.request.all_headers()["accept-encoding"]
    headers = first.all_headers()
    assert headers["content-encoding"] == ("br" if "br" in asked else "gzip")
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    (fetched,) = transfers.of(PLOTLY)
    bundle = (ROOT / "kernel" / "static" / PLOTLY_JS).stat().st_size
    assert not fetched.from_cache and 0 < fetched.bytes < bundle / 3

    transfers.clear()
    page.reload()
    expect(page.locator(DRAWN).first).to_be_visible()
    (again,) = transfers.of(PLOTLY)
    assert again.url == fetched.url
    assert again.from_cache and again.bytes == 0
