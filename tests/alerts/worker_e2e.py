"""A failed run delivered to a destination through a real server, broker and Celery worker.

The same path as ``test_worker_delivery.py`` (status change over HTTP, the
outbox, the task through the broker, a worker process posting to a receiver
on loopback), for any destination kind: each transport's tests call
``deliver_a_failed_run`` once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from tests.alerts.receiver import Received, Receiver, Reply
from tests.sdk.server import LabbookServer
from tests.support import wait_until
from tests.workers import celery_worker

DELIVERY_TIMEOUT = 60
QUIET = 3.0  # after the first request: long enough to see an unwanted second one


@dataclass(frozen=True)
class Delivered:
    requests: list[Received]
    run_id: int
    alerts: list[dict[str, Any]]
    notifications: list[dict[str, Any]]


def deliver_a_failed_run(
    tmp_path: Path,
    kind: str,
    config: Callable[[Receiver], dict[str, Any]],
    *,
    reply: Reply | None = None,
    expected: int = 1,
) -> Delivered:
    """Make a ``kind`` destination (``config(receiver)``) and a run_failed rule, fail a run,
    and wait for ``expected`` requests at the receiver (answered with ``reply``)."""
    env = {"ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1", "ALERTS_RETRY_BASE_SECONDS": "1"}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL  # deliver through Redis on CI's second pass
    with (
        LabbookServer(tmp_path / "home", env=env) as server,
        Receiver() as receiver,
        celery_worker(server) as worker,
        server.client() as client,
    ):
        if reply is not None:
            receiver.script(*[reply] * expected)
        body = {"team": "lab", "kind": kind, "name": kind, "config": config(receiver)}
        destination = client.post("/api/v1/destinations", json=body).raise_for_status().json()
        run_id = server.create_run("lab/alerts")  # makes the project
        rule = {
            "project": "lab/alerts",
            "name": "failures",
            "trigger": "run_failed",
            "destinations": [destination["id"]],
            "group_wait": 0,
        }
        client.post("/api/v1/alert-rules", json=rule).raise_for_status()
        client.patch(f"/api/v1/runs/{run_id}", json={"status": "failed"}).raise_for_status()
        arrived = wait_until(lambda: len(receiver.requests) >= expected, timeout=DELIVERY_TIMEOUT)
        assert arrived, f"nothing arrived; the worker's log:\n{worker.output()}"
        time.sleep(QUIET)
        return Delivered(
            requests=list(receiver.requests),
            run_id=run_id,
            alerts=client.get("/api/v1/alerts").raise_for_status().json(),
            notifications=client.get("/api/v1/notifications").raise_for_status().json(),
        )
