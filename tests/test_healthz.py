"""`/healthz`: every part of Labbook. 503 naming the database or broker when one fails; 200 with
"degraded" when the worker or beat has gone silent (the web server still serves and ingests)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from labbook import health
from labbook.celery import app as celery_app
from labbook.models import Heartbeat
from tests.support import free_port, require_redis

STARTING = "starting: no heartbeat yet"

pytestmark = pytest.mark.django_db


def healthz(client: Client) -> tuple[int, dict]:
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


@pytest.fixture
def filesystem_broker(settings, tmp_path: Path) -> Path:
    queue = tmp_path / "queue"
    queue.mkdir()
    settings.REDIS_URL = ""
    settings.QUEUE_DIR = queue
    return queue


@pytest.fixture
def dead_redis(settings) -> Iterator[str]:
    """Point the broker at a loopback port nothing listens on.

    ``check_broker`` connects through the Celery app, whose broker URL (and
    transport) were read from settings once, so the app's configuration is
    switched too.
    """
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings.REDIS_URL = url
    saved = celery_app.conf.broker_url, celery_app.conf.broker_transport
    # The embedded shape names its own transport class, which would win over the URL.
    celery_app.conf.broker_url, celery_app.conf.broker_transport = url, None
    try:
        yield url
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_transport = saved


def test_it_reports_ok_for_the_embedded_shape(client: Client, filesystem_broker: Path) -> None:
    status, body = healthz(client)

    assert status == 200
    assert body == {
        "status": "ok",
        "checks": {
            "web": "ok",
            "database": "ok",
            "broker": "ok",
            "worker": STARTING,
            "beat": STARTING,
        },
    }


def test_it_reports_ok_with_the_configured_shape(client: Client) -> None:
    status, body = healthz(client)

    assert status == 200
    assert {name: body["checks"][name] for name in ("web", "database", "broker")} == dict.fromkeys(
        ("web", "database", "broker"), "ok"
    )


def test_it_reports_ok_with_redis(client: Client) -> None:
    require_redis()

    status, body = healthz(client)

    assert status == 200
    assert body["checks"]["broker"] == "ok"


def test_it_answers_503_when_the_queue_folder_is_missing(
    client: Client, filesystem_broker: Path, settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.QUEUE_DIR = filesystem_broker / "gone"

    status, body = healthz(client)

    assert status == 503
    assert body["status"] == "error"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")
    assert "gone" not in body["checks"]["broker"]  # paths, hosts, ports: the log only
    assert "gone" in caplog.text


def test_it_answers_503_when_redis_does_not_answer(
    client: Client, dead_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    status, body = healthz(client)

    assert status == 503
    assert body["status"] == "error"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")
    assert dead_redis.split("/")[2] not in body["checks"]["broker"]  # "127.0.0.1:<port>"
    assert dead_redis.split("/")[2] in caplog.text


def test_it_is_never_cached(client: Client, filesystem_broker: Path) -> None:
    response = client.get("/healthz")

    assert "no-cache" in response["Cache-Control"]


# --- Worker and beat, by their heartbeats -----------------------------------------------------


def test_fresh_heartbeats_are_ok_and_name_the_process(client: Client, filesystem_broker) -> None:
    health.heartbeat_record("worker", "celery@gpu-1")
    health.heartbeat_record("beat", "beat@gpu-1")

    status, body = healthz(client)

    assert (status, body["status"]) == (200, "ok")
    assert body["checks"]["worker"].startswith("ok: last seen ")
    assert body["checks"]["worker"].endswith(f" s ago (celery@gpu-1, pid {os.getpid()})")
    assert body["checks"]["beat"].startswith("ok: last seen ")


def test_a_silent_worker_degrades_the_status_but_keeps_200(
    client: Client, filesystem_broker
) -> None:
    seen = timezone.now() - timedelta(seconds=95)
    Heartbeat.objects.create(role="worker", name="celery@gpu-1", pid=4321, seen_at=seen)
    health.heartbeat_record("beat", "beat@gpu-1")

    status, body = healthz(client)

    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["worker"] == "stale: last seen 95 s ago (celery@gpu-1, pid 4321)"
    assert body["checks"]["beat"].startswith("ok: ")


def test_the_freshest_heartbeat_of_a_role_speaks_for_it(client: Client, filesystem_broker) -> None:
    """Several workers: one alive is enough; an old name left behind does not degrade."""
    seen = timezone.now() - timedelta(hours=3)
    Heartbeat.objects.create(role="worker", name="celery@old-host", pid=1, seen_at=seen)
    health.heartbeat_record("worker", "celery@new-host")

    _, body = healthz(client)

    assert "(celery@new-host, pid" in body["checks"]["worker"]
    assert body["status"] == "ok"


def test_a_heartbeat_overwrites_its_own_row(filesystem_broker) -> None:
    health.heartbeat_record("worker", "celery@gpu-1")
    health.heartbeat_record("worker", "celery@gpu-1")
    assert Heartbeat.objects.filter(role="worker").count() == 1


def test_a_failing_broker_is_503_even_with_live_heartbeats(
    client: Client, filesystem_broker: Path, settings
) -> None:
    health.heartbeat_record("worker", "celery@gpu-1")
    settings.QUEUE_DIR = filesystem_broker / "gone"

    status, body = healthz(client)

    assert (status, body["status"]) == (503, "error")
    assert body["checks"]["worker"].startswith("ok: ")


def test_the_beat_heartbeat_is_throttled() -> None:
    now = [100.0]
    throttle = health.Throttle(5, clock=lambda: now[0])
    answers = []
    for _ in range(12):  # a tick every second
        answers.append(throttle.due())
        now[0] += 1
    assert answers == [
        True,
        False,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
        True,
        False,
    ]
