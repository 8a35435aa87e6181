"""With the Celery worker dead, Labbook still ingests and serves pages; only deliveries wait.

Real processes: a uvicorn server and a Celery worker sharing a home (and Redis in CI's second
pass). The worker is SIGKILLed once /healthz has seen its heartbeat; then a training job's
writes, an alert firing and every page a team reads must work as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.sdk.server import LabbookServer, manage
from tests.support import wait_until
from tests.workers import celery_worker

pytestmark = pytest.mark.subprocess

PASSWORD = "a-long-password-for-the-worker-down-test"
SET_PASSWORD = (
    "from django.contrib.auth import get_user_model\n"
    "user = get_user_model().objects.get(username='sdk-tester')\n"
    f"user.set_password({PASSWORD!r})\n"
    "user.save(update_fields=['password'])\n"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LabbookServer]:
    env = {"REDIS_URL": settings.REDIS_URL} if settings.REDIS_URL else {}  # CI's second pass
    labbook = LabbookServer(tmp_path / "home", env=env)
    manage(labbook.home, "shell", "--no-imports", "-c", SET_PASSWORD)
    with labbook:
        yield labbook


def worker_check(server: LabbookServer) -> str:
    return httpx.get(f"{server.url}/healthz", trust_env=False).json()["checks"]["worker"]


def logged_in(server: LabbookServer) -> httpx.Client:
    """A client holding the session cookie of sdk-tester, logged in through the form."""
    browser = httpx.Client(base_url=server.url, trust_env=False, timeout=30)
    login = browser.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)[1]
    form = {"username": "sdk-tester", "password": PASSWORD, "csrfmiddlewaretoken": token}
    assert browser.post("/login/", data=form).status_code == 302
    return browser


def test_ingestion_alerts_and_pages_work_with_the_worker_killed(server: LabbookServer) -> None:
    with celery_worker(server) as worker:
        assert wait_until(lambda: worker_check(server).startswith("ok: "), timeout=90), (
            worker.output()
        )
        worker.kill()

    with server.client() as api:
        destination = api.post(
            "/api/v1/destinations",
            json={
                "team": "lab",
                "kind": "email",
                "name": "oncall",
                "config": {"addresses": ["oncall@example.org"]},
            },
        ).raise_for_status()
        rule = {
            "project": "lab/no-worker",
            "name": "failures",
            "trigger": "run_failed",
            "destinations": [destination.json()["id"]],
            "group_wait": 0,
        }
        run_id = server.create_run("lab/no-worker")
        api.post("/api/v1/alert-rules", json=rule).raise_for_status()
        points = [{"key": "loss", "step": step, "value": 1 / (step + 1)} for step in range(100)]
        ingested = api.post(f"/api/v1/runs/{run_id}/metrics", json={"points": points})
        assert ingested.status_code == 200, ingested.text
        assert ingested.json()["accepted"] == 100
        api.patch(f"/api/v1/runs/{run_id}", json={"status": "failed"}).raise_for_status()
        [alert] = api.get("/api/v1/alerts", params={"project": "lab/no-worker"}).json()
        [queued] = api.get("/api/v1/notifications", params={"alert": alert["id"]}).json()

    assert alert["state"] == "firing"
    assert queued["status"] == "pending"  # waiting in the broker for a worker
    assert server.metric_keys(run_id) == {"loss": 100}
    browser = logged_in(server)
    try:
        for path in (
            "/",
            "/lab/",
            "/lab/no-worker/",
            f"/lab/no-worker/runs/{run_id}",
            "/alerts/",
            f"/alerts/{alert['id']}/",
        ):
            page = browser.get(path)
            assert page.status_code == 200, (path, page.text[:500])
    finally:
        browser.close()
    health = httpx.get(f"{server.url}/healthz", trust_env=False)
    assert health.status_code == 200
