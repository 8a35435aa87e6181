"""Faults between a failed run and its notification, with real processes.

A real server writes the outbox; real Celery workers and beat deliver through
a real broker to a real receiver or SMTP server on loopback. Each test breaks
one part the way it breaks in production — a worker killed with SIGKILL mid
delivery, the broker down when a run fails, the mail server down, a Slack
webhook that was deleted — and shows the notification is delivered once, or
recorded as failed with the reason; never lost, never sent twice.

Leases and the outbox sweep are shortened (seconds, not minutes) so the
recoveries happen within the test.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from tests.alerts.receiver import Receiver, Reply
from tests.sdk.server import LabbookServer
from tests.smtp import SmtpServer
from tests.support import skip_or_fail, wait_until
from tests.workers import RedisServer, celery_beat, celery_worker

pytestmark = pytest.mark.subprocess

DELIVERY_TIMEOUT = 60
QUIET = 3.0  # seconds to wait before concluding that nothing more arrives
FAST_RECOVERY = {
    "ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1",
    "ALERTS_RETRY_BASE_SECONDS": "1",
    "ALERTS_LEASE_SECONDS": "3",
    "ALERTS_SWEEP_SECONDS": "1",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LabbookServer]:
    env = {"REDIS_URL": settings.REDIS_URL} if settings.REDIS_URL else {}  # CI's second pass
    with LabbookServer(tmp_path / "home", env={**FAST_RECOVERY, **env}) as running:
        yield running


def arm(client: httpx.Client, server: LabbookServer, kind: str, config: dict[str, Any]) -> int:
    """A destination and a ``run_failed`` rule sending to it; answers a running run's id."""
    destination = client.post(
        "/api/v1/destinations", json={"team": "lab", "kind": kind, "name": kind, "config": config}
    )
    destination.raise_for_status()
    run_id = server.create_run("lab/faults")
    rule = {
        "project": "lab/faults",
        "name": "failures",
        "trigger": "run_failed",
        "destinations": [destination.json()["id"]],
        "group_wait": 0,
    }
    client.post("/api/v1/alert-rules", json=rule).raise_for_status()
    return run_id


def fail(client: httpx.Client, run_id: int) -> None:
    client.patch(f"/api/v1/runs/{run_id}", json={"status": "failed"}).raise_for_status()


def notification(client: httpx.Client) -> dict[str, Any]:
    (logged,) = client.get("/api/v1/notifications").raise_for_status().json()
    return logged


def test_a_worker_killed_mid_delivery_leaves_it_to_the_next_and_it_goes_out_once(
    server: LabbookServer,
):
    arrived = threading.Event()
    with Receiver() as receiver, server.client() as client:
        receiver.script(Reply(delay=60, on_request=arrived.set))  # the first attempt hangs
        run_id = arm(client, server, "webhook", {"url": receiver.url("/hook"), "secret": "s" * 32})
        with celery_worker(server) as first:
            fail(client, run_id)
            assert arrived.wait(DELIVERY_TIMEOUT), f"no attempt; the worker:\n{first.output()}"
            first.kill()  # mid-request: its message is gone and its row stays "sending"
        assert notification(client)["status"] == "sending"
        with celery_worker(server) as second, celery_beat(server) as beat:
            retried = receiver.wait_for(2, timeout=DELIVERY_TIMEOUT)
            assert retried, f"not retried; worker:\n{second.output()}\nbeat:\n{beat.output()}"
            assert wait_until(lambda: notification(client)["status"] == "sent", timeout=60)
            time.sleep(QUIET)
        logged = notification(client)
    hanging, delivered = receiver.requests  # and nothing after
    assert hanging.headers["idempotency-key"] == delivered.headers["idempotency-key"]
    assert hanging.body == delivered.body
    assert (logged["attempts"], logged["response_code"]) == (2, 200)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        skip_or_fail("needs the redis-server program (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis") as redis:
        yield redis


def test_a_run_failing_while_the_broker_is_down_is_delivered_when_it_returns(
    tmp_path: Path, redis_server: RedisServer
):
    env = {**FAST_RECOVERY, "REDIS_URL": redis_server.url}
    with (
        LabbookServer(tmp_path / "home", env=env) as server,
        Receiver() as receiver,
        server.client() as client,
    ):
        run_id = arm(client, server, "webhook", {"url": receiver.url("/hook"), "secret": "s" * 32})
        with celery_worker(server) as worker, celery_beat(server) as beat:
            redis_server.stop()
            fail(client, run_id)  # answers: the alert is in the outbox, the queueing failed
            assert notification(client)["status"] == "pending"
            time.sleep(QUIET)
            assert receiver.requests == []
            redis_server.start()  # empty: whatever was queued before is gone
            delivered = receiver.wait_for(1, timeout=DELIVERY_TIMEOUT)
            assert delivered, f"not delivered; worker:\n{worker.output()}\nbeat:\n{beat.output()}"
            assert wait_until(lambda: notification(client)["status"] == "sent", timeout=60)
            time.sleep(QUIET)
        assert notification(client)["attempts"] == 1
    assert len(receiver.requests) == 1


def test_mail_server_down_then_up_the_email_goes_out_on_a_retry(tmp_path: Path):
    smtp = SmtpServer()  # not listening yet: connection refused
    env = {"EMAIL_URL": smtp.url}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    with (
        LabbookServer(tmp_path / "home", env={**FAST_RECOVERY, **env}) as server,
        server.client() as client,
        celery_worker(server) as worker,
    ):
        run_id = arm(client, server, "email", {"addresses": ["oncall@example.com"]})
        fail(client, run_id)
        refused = wait_until(lambda: notification(client)["last_error"], timeout=DELIVERY_TIMEOUT)
        assert refused, f"no attempt; the worker:\n{worker.output()}"
        assert notification(client)["status"] == "pending"  # to be retried
        with smtp:
            delivered = wait_until(lambda: smtp.inbox.messages, timeout=DELIVERY_TIMEOUT)
            assert delivered, f"not delivered; the worker:\n{worker.output()}"
            assert wait_until(lambda: notification(client)["status"] == "sent", timeout=60)
            time.sleep(QUIET)
        (recipients, message), *others = smtp.inbox.messages
        assert others == []
        assert recipients == ["oncall@example.com"]
        assert "failed" in message["Subject"]
        logged = notification(client)
        assert logged["attempts"] >= 2
        assert logged["last_error"] == ""


def test_a_deleted_slack_webhook_fails_at_once_and_marks_the_destination_broken(
    server: LabbookServer,
):
    with Receiver() as receiver, server.client() as client, celery_worker(server) as worker:
        receiver.script(Reply(status=404, body="no_service"))
        run_id = arm(client, server, "slack", {"url": receiver.url("/services/T0/B0/x")})
        fail(client, run_id)
        failed = wait_until(lambda: notification(client)["status"] == "failed", timeout=60)
        assert failed, f"not failed; the worker:\n{worker.output()}"
        time.sleep(QUIET)
        logged = notification(client)
        (destination,) = client.get("/api/v1/destinations").json()
    assert len(receiver.requests) == 1  # no retry: a gone webhook stays gone
    assert (logged["attempts"], logged["response_code"]) == (1, 404)
    assert "no_service" in logged["last_error"]
    assert destination["broken"] is True
    assert "no_service" in destination["last_error"]


def test_a_web_process_killed_right_after_the_commit_has_already_decided_the_alert(
    tmp_path: Path,
):
    """The alert is decided inside the transaction that fails the run, not after it.

    The server is armed to SIGKILL itself the moment the transaction that
    published the status change commits, before any after-commit work (the
    queueing of the delivery included). The alert and its notification are
    already written: the sweep queues it, and it goes out once.
    """
    env = {"REDIS_URL": settings.REDIS_URL} if settings.REDIS_URL else {}
    armed = {"LABBOOK_FAULT_KILL_AFTER_COMMIT": "RunStatusChanged"}
    server = LabbookServer(tmp_path / "home", env={**FAST_RECOVERY, **env, **armed})
    with Receiver() as receiver, server:
        with server.client() as client:
            run_id = arm(
                client, server, "webhook", {"url": receiver.url("/hook"), "secret": "s" * 32}
            )
            with pytest.raises(httpx.TransportError):  # the process died before answering
                fail(client, run_id)
        assert wait_until(lambda: server.process.poll() is not None, timeout=DELIVERY_TIMEOUT)
        server.kill()
        server.env = {**FAST_RECOVERY, **env}
        server.start()
        with server.client() as client:
            assert server.run(run_id)["status"] == "failed"  # the change committed
            assert notification(client)["status"] == "pending"  # and so did the decision
            with celery_worker(server) as worker, celery_beat(server) as beat:
                delivered = receiver.wait_for(1, timeout=DELIVERY_TIMEOUT)
                assert delivered, f"lost: worker:\n{worker.output()}\nbeat:\n{beat.output()}"
                assert wait_until(lambda: notification(client)["status"] == "sent", timeout=60)
                time.sleep(QUIET)
    assert len(receiver.requests) == 1
    assert json.loads(receiver.requests[0].body)["run"]["id"] == run_id
