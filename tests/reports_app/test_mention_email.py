"""A mention reaches a real SMTP server through a real Celery worker, end to end.

A real server (uvicorn) takes the comment over HTTP; the task it queues after
commit goes through the filesystem broker to a real worker process, which
sends through Django's SMTP backend to an aiosmtpd server on loopback. Server
and worker share one LABBOOK_HOME: its SQLite database and its queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.sdk.server import LabbookServer, manage
from tests.smtp import Inbox, SmtpServer
from tests.support import wait_until
from tests.workers import CeleryProcess, celery_worker

pytestmark = pytest.mark.subprocess

DELIVERY_TIMEOUT = 60
QUIET = 3.0  # seconds to wait before concluding that no second email comes

SETUP = """
from django.contrib.auth import get_user_model

for name in ("sdk-tester", "bob", "mallory"):
    get_user_model().objects.filter(username=name).update(email=f"{name}@example.com")
"""


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    with SmtpServer() as smtp:
        yield smtp.inbox, smtp.port


@pytest.fixture
def env(inbox: tuple[Inbox, int]) -> dict[str, str]:
    return {"EMAIL_URL": f"smtp://127.0.0.1:{inbox[1]}"}


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str]) -> Iterator[LabbookServer]:
    home = tmp_path / "home"
    server = LabbookServer(home, env=env)  # migrates; its token is an owner of team "lab"
    manage(home, "createtoken", "bob", "--team", "lab", "--role", "viewer")
    manage(home, "createtoken", "mallory", "--team", "rival")
    manage(home, "shell", "-c", SETUP)
    with server:
        yield server


@pytest.fixture
def worker(server: LabbookServer, env: dict[str, str]) -> Iterator[CeleryProcess]:
    with celery_worker(server, env) as running:
        yield running


def test_it_emails_a_mentioned_teammate_once_and_nobody_else(
    server: LabbookServer, worker: CeleryProcess, inbox: tuple[Inbox, int]
) -> None:
    handler, _ = inbox
    run_id = server.create_run("lab/demo")
    with server.client() as client:
        response = client.post(
            "/api/v1/comments",
            json={"target": f"run:{run_id}", "body": "@bob see this; @mallory and @nobody too"},
        )
    assert response.status_code == 201, response.text
    comment = response.json()

    delivered = wait_until(lambda: handler.messages, timeout=DELIVERY_TIMEOUT)
    assert delivered, f"no email arrived; the worker's log:\n{worker.output()}"
    time.sleep(QUIET)
    assert [to for to, _ in handler.messages] == [["bob@example.com"]]
    message = handler.messages[0][1]
    assert message["Subject"] == "sdk-tester mentioned you on run " + _run_name(server, run_id)
    text = message.get_body(("plain",)).get_content()
    assert f"{server.url}/lab/demo/runs/{run_id}#comment-{comment['id']}" in text
    assert "@bob see this" in text
    assert "reports.send_mention_email" in worker.log.read_text()


def _run_name(server: LabbookServer, run_id: int) -> str:
    return f"{server.run(run_id)['name']} in lab/demo"


def test_it_needs_no_worker_to_answer(server: LabbookServer) -> None:
    """The request only queues the email: it answers at once, even with no worker running."""
    run_id = server.create_run("lab/demo")
    started = time.monotonic()
    response = httpx.post(
        f"{server.url}/api/v1/comments",
        json={"target": f"run:{run_id}", "body": "@bob ping"},
        headers={"Authorization": f"Bearer {server.token}"},
        trust_env=False,
        timeout=30,
    )
    assert response.status_code == 201
    assert time.monotonic() - started < 10
    assert list((server.home / "queue").glob("*.msg")), "the mention task was not queued"
