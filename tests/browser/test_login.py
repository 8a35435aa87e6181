"""Logging in and out in a real browser, and the API docs served with nothing from outside."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

LOGIN_URL = re.compile(r"/login/")


@pytest.fixture(scope="module")
def alice(make_user: Any) -> Any:
    return make_user("alice", team="acme")


def log_in(page: Any, live: LabbookServer, username: str, password: str) -> None:
    page.goto(f"{live.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_it_sends_anonymous_visitors_to_the_login_page(page, live):
    page.goto(f"{live.url}/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_it_says_so_when_the_password_is_wrong(page, live, alice):
    log_in(page, live, alice.username, "not-the-password")
    expect(page).to_have_url(LOGIN_URL)
    expect(page.get_by_text("didn't match")).to_be_visible()


def test_it_logs_in_to_my_projects_and_runs_and_logs_out(page, live, alice):
    import httpx

    created = httpx.post(
        f"{live.url}/api/v1/runs",
        json={"project": "acme/mnist", "name": "resnet-baseline"},
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=60,
        trust_env=False,
    )
    assert created.status_code == 201, created.text

    log_in(page, live, alice.username, alice.password)
    expect(page).to_have_url(f"{live.url}/")
    expect(page.get_by_text("acme/mnist").first).to_be_visible()
    expect(page.get_by_text("resnet-baseline").first).to_be_visible()

    page.locator("summary", has_text=alice.username).click()  # the user menu
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(LOGIN_URL)
    page.goto(f"{live.url}/")
    expect(page).to_have_url(LOGIN_URL)


def test_the_api_docs_load_without_leaving_the_machine(page, live):
    requested: list[str] = []
    failed: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("response", lambda response: response.ok or failed.append(response.url))

    page.goto(f"{live.url}/api/docs/")
    expect(page.get_by_text("Labbook API").first).to_be_visible()
    expect(page.get_by_text("/api/v1/runs").first).to_be_visible()
    page.wait_for_load_state("networkidle")

    fetched = [url for url in requested if urlsplit(url).scheme not in ("data", "blob")]
    assert fetched, "the docs page made no requests at all"
    outside = [url for url in fetched if urlsplit(url).hostname != "127.0.0.1"]
    assert not outside, f"requests left 127.0.0.1: {outside}"
    assert not failed, f"the docs page could not load: {failed}"
