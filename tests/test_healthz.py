"""`/healthz`: 200 when the database and the broker answer, 503 naming the one that doesn't."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from reports_app.celery import app as celery_app
from tests.support import free_port, require_redis

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

    ``check_broker`` connects through the Celery app, whose broker URL was read
    from settings once, so the app's configuration is switched too.
    """
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings.REDIS_URL = url
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = url
    try:
        yield url
    finally:
        celery_app.conf.broker_url = saved


def test_it_reports_ok_for_the_embedded_shape(client: Client, filesystem_broker: Path) -> None:
    status, body = healthz(client)

    assert status == 200
    assert body == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_it_reports_ok_with_the_configured_shape(client: Client) -> None:
    status, body = healthz(client)

    assert status == 200
    assert body["checks"] == {"database": "ok", "broker": "ok"}


def test_it_reports_ok_with_redis(client: Client) -> None:
    require_redis()

    status, body = healthz(client)

    assert status == 200
    assert body["checks"]["broker"] == "ok"


def test_it_answers_503_when_the_queue_folder_is_missing(
    client: Client, filesystem_broker: Path, settings
) -> None:
    settings.QUEUE_DIR = filesystem_broker / "gone"

    status, body = healthz(client)

    assert status == 503
    assert body["status"] == "error"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")
    assert "gone" in body["checks"]["broker"]


def test_it_answers_503_when_redis_does_not_answer(client: Client, dead_redis: str) -> None:
    status, body = healthz(client)

    assert status == 503
    assert body["status"] == "error"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")
    assert dead_redis.split("/")[2] in body["checks"]["broker"]  # "127.0.0.1:<port>"


def test_it_is_never_cached(client: Client, filesystem_broker: Path) -> None:
    response = client.get("/healthz")

    assert "no-cache" in response["Cache-Control"]
