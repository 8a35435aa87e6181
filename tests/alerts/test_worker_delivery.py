"""A failed run reaches a webhook through a real server, a real broker and a real worker.

The server takes the status change over HTTP and writes the alert and its
notification (the outbox); the task queued after commit goes through the
broker (the filesystem queue, or Redis in CI's second pass) to a worker
process that signs and posts the payload to a receiver on loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.alerts.receiver import Receiver
from tests.sdk.server import LabbookServer
from tests.support import wait_until
from tests.workers import celery_worker

pytestmark = pytest.mark.subprocess

SECRET = "a-webhook-secret-of-32-characters!"
DELIVERY_TIMEOUT = 60
QUIET = 3.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LabbookServer]:
    env = {"ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1", "ALERTS_RETRY_BASE_SECONDS": "1"}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL  # deliver through Redis on CI's second pass
    with LabbookServer(tmp_path / "home", env=env) as running:
        yield running


def test_a_failed_run_is_posted_to_the_webhook_once(server: LabbookServer, tmp_path: Path):
    with Receiver() as receiver, celery_worker(server) as worker, server.client() as client:
        destination = (
            client.post(
                "/api/v1/destinations",
                json={
                    "team": "lab",
                    "kind": "webhook",
                    "name": "hook",
                    "config": {"url": receiver.url("/hook"), "secret": SECRET},
                },
            )
            .raise_for_status()
            .json()
        )
        run_id = server.create_run("lab/alerts")  # makes the project
        client.post(
            "/api/v1/alert-rules",
            json={
                "project": "lab/alerts",
                "name": "failures",
                "trigger": "run_failed",
                "destinations": [destination["id"]],
                "group_wait": 0,
            },
        ).raise_for_status()
        client.patch(f"/api/v1/runs/{run_id}", json={"status": "failed"}).raise_for_status()
        arrived = wait_until(lambda: receiver.requests, timeout=DELIVERY_TIMEOUT)
        assert arrived, f"nothing arrived; the worker's log:\n{worker.output()}"
        time.sleep(QUIET)
        (request,) = receiver.requests
        signature = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-labbook-signature"] == f"sha256={signature}"
        assert json.loads(request.body)["run"]["id"] == run_id
        (logged,) = client.get("/api/v1/notifications").json()
        assert (logged["status"], logged["attempts"], logged["response_code"]) == ("sent", 1, 200)
