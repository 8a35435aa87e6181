"""The link the mlflow client prints after a run, opened in a real browser: the run page.

The client prints ``<tracking uri>/#/experiments/<id>/runs/<run id>``; the part after the
``#`` never reaches the server, so the home page's script (``labbook/mlflow_links.js``)
takes the browser on to the server's redirect. The link here is the one the unmodified
client printed, read from its output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

TEAM = "mlinks"
EXPERIMENT = f"{TEAM}/links"
PRINTED = re.compile(r"View run (?P<name>\S+) at: (?P<url>\S+)")
CLIENT = f"""
import mlflow
mlflow.set_experiment({EXPERIMENT!r})
with mlflow.start_run(run_name="linked"):
    pass
"""


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("mira", team=TEAM)


@pytest.fixture(scope="module")
def printed(live: LabbookServer, owner: Any) -> str:
    """The run link the mlflow client printed when its run ended."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": live.url,
        "MLFLOW_TRACKING_TOKEN": owner.token,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", None)
    done = subprocess.run(
        [sys.executable, "-c", CLIENT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    match = PRINTED.search(done.stdout)
    assert match, done.stdout
    assert match["url"].startswith(f"{live.url}/#/experiments/")
    return match["url"]


def run_page(live: LabbookServer, link: str) -> re.Pattern[str]:
    run_id = link.rsplit("/", 1)[1]
    return re.compile(re.escape(f"{live.url}/{EXPERIMENT}/runs/{run_id}") + "$")


def test_the_printed_link_opens_the_run_page(watched, live, owner, printed):
    log_in(watched, live, owner.username, owner.password)
    watched.goto("about:blank")  # a new load, as from a terminal
    watched.goto(printed)
    expect(watched).to_have_url(run_page(live, printed))
    expect(watched.get_by_role("heading", level=1)).to_contain_text("linked")


def test_the_printed_link_pasted_over_the_home_page_opens_the_run_page(
    watched, live, owner, printed
):
    log_in(watched, live, owner.username, owner.password)
    watched.goto(printed)  # the home page is open: only its hash changes
    expect(watched).to_have_url(run_page(live, printed))


def test_the_link_without_the_hash_opens_the_run_page(page, live, owner, printed):
    log_in(page, live, owner.username, owner.password)
    page.goto(printed.replace("/#/", "/", 1))
    expect(page).to_have_url(run_page(live, printed))


def test_an_anonymous_visitor_logs_in_and_lands_on_the_run_page(watched, live, owner, printed):
    watched.goto(printed)
    expect(watched).to_have_url(re.compile(r"/login/\?next=/experiments/\d+/runs/\d+$"))
    watched.get_by_label("Username").fill(owner.username)
    watched.get_by_label("Password").fill(owner.password)
    watched.get_by_role("button", name="Log in").click()
    expect(watched).to_have_url(run_page(live, printed))
