"""The links of a real email act on the alert: real server, worker, SMTP server and client.

A run fails; the worker emails the alert through an SMTP server on loopback;
the test takes the acknowledge and silence links out of the message it
received and opens them as a logged-in member: GET shows the confirmation,
POST acts. Then the alert is acknowledged, its rule is silenced, and the
rule's next alert is logged as silenced instead of sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.sdk.server import LabbookServer, manage
from tests.smtp import SmtpServer
from tests.support import wait_until
from tests.workers import celery_worker

pytestmark = pytest.mark.subprocess

DELIVERY_TIMEOUT = 60
PASSWORD = "a-long-password-for-the-acting-test"
SET_PASSWORD = (
    "from django.contrib.auth import get_user_model\n"
    "user = get_user_model().objects.get(username='sdk-tester')\n"
    f"user.set_password({PASSWORD!r})\n"
    "user.save(update_fields=['password'])\n"
)
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def server(tmp_path: Path, smtp: SmtpServer) -> Iterator[LabbookServer]:
    env = {"EMAIL_URL": smtp.url, "ALERTS_RETRY_BASE_SECONDS": "1"}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL  # deliver through Redis on CI's second pass
    labbook = LabbookServer(tmp_path / "home", env=env)
    manage(labbook.home, "shell", "--no-imports", "-c", SET_PASSWORD)
    with labbook:
        yield labbook


def logged_in(server: LabbookServer) -> httpx.Client:
    """A client holding sdk-tester's session cookie, logged in through the form."""
    browser = httpx.Client(base_url=server.url, trust_env=False, timeout=30)
    token = CSRF.search(browser.get("/login/").text)[1]  # type: ignore[index]
    form = {"username": "sdk-tester", "password": PASSWORD, "csrfmiddlewaretoken": token}
    assert browser.post("/login/", data=form).status_code == 302
    return browser


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def link(text: str, label: str) -> str:
    found = re.search(rf"^{label}:\s+(\S+)", text, re.MULTILINE)
    assert found, f"no {label} link in:\n{text}"
    return found[1]


def confirm_and_post(browser: httpx.Client, url: str, button: str) -> None:
    """Open the link (the confirmation page, which changes nothing), then press its button."""
    page = browser.get(url)
    assert page.status_code == 200, page.text[:500]
    assert f">{button}</button>" in page.text
    done = browser.post(url, data={"csrfmiddlewaretoken": CSRF.search(page.text)[1]})  # type: ignore[index]
    assert done.status_code == 302, done.text[:500]
    assert re.fullmatch(r"/alerts/\d+/", done.headers["location"])


def test_the_emailed_links_acknowledge_and_silence(server: LabbookServer, smtp: SmtpServer) -> None:
    with celery_worker(server) as worker, server.client() as api:
        destination = api.post(
            "/api/v1/destinations",
            json={
                "team": "lab",
                "kind": "email",
                "name": "oncall",
                "config": {"addresses": ["oncall@example.org"]},
            },
        ).raise_for_status()
        first = server.create_run("lab/acting")
        rule = api.post(
            "/api/v1/alert-rules",
            json={
                "project": "lab/acting",
                "name": "failures",
                "trigger": "run_failed",
                "destinations": [destination.json()["id"]],
                "group_wait": 0,
            },
        ).raise_for_status()
        api.patch(f"/api/v1/runs/{first}", json={"status": "failed"}).raise_for_status()
        arrived = wait_until(lambda: smtp.inbox.messages, timeout=DELIVERY_TIMEOUT)
        assert arrived, f"no email arrived; the worker's log:\n{worker.output()}"

        (_, message), *_ = smtp.inbox.messages
        text = text_of(message)
        acknowledge, silence = link(text, "Acknowledge"), link(text, "Silence 1 h")
        assert acknowledge.startswith(server.url + "/alerts/act/")
        html = message.get_body(preferencelist=("html",))
        assert html is not None and f'href="{acknowledge}"' in html.get_content()

        [alert] = api.get("/api/v1/alerts", params={"project": "lab/acting"}).json()
        assert alert["acknowledged_at"] is None  # the email's arrival acted on nothing
        browser = logged_in(server)
        try:
            confirm_and_post(browser, acknowledge, "Acknowledge")
            confirm_and_post(browser, silence, "Silence failures for 1 hour")
        finally:
            browser.close()

        [alert] = api.get("/api/v1/alerts", params={"project": "lab/acting"}).json()
        assert alert["acknowledged_by"] == "sdk-tester" and alert["acknowledged_at"]
        [muted] = api.get("/api/v1/silences", params={"project": "lab/acting"}).json()
        assert (muted["rule"], muted["active"]) == (rule.json()["id"], True)
        assert muted["reason"] == "from a notification link"

        second = server.create_run("lab/acting")
        api.patch(f"/api/v1/runs/{second}", json={"status": "failed"}).raise_for_status()
        newer = [a for a in api.get("/api/v1/alerts").json() if a["run"] == second]
        assert len(newer) == 1 and newer[0]["state"] == "firing"
        [logged] = api.get("/api/v1/notifications", params={"alert": newer[0]["id"]}).json()
        assert logged["status"] == "silenced"
        assert len(smtp.inbox.messages) == 1  # only the first alert's email
