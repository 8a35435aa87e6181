"""SQLite under contention: writers wait their turn, and a lock held too long is a 503.

The embedded default keeps everything in one SQLite file, where one writer
holds the lock at a time and the others wait (``SQLITE_BUSY_TIMEOUT``). These
tests run a real server on its own SQLite file: eight concurrent writers all
get through, every point once; a lock held past the timeout answers 503 with
Retry-After (never 500, nothing half-written), which the SDK waits out.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import orjson
import pytest
from django.db import OperationalError

from labbook.database_busy import busy_response, is_database_busy
from tests.sdk.server import LabbookServer
from tracking import sdk

pytestmark = pytest.mark.subprocess

WRITERS, BATCHES, POINTS = 8, 10, 1_000
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[LabbookServer]:
    """A server whose writers give up on the lock after one second."""
    with LabbookServer(tmp_path / "home", env={"SQLITE_BUSY_TIMEOUT": "1"}) as server:
        yield server


@contextmanager
def write_lock(server: LabbookServer) -> Iterator[None]:
    """Hold SQLite's write lock from another connection, as a long transaction would."""
    with closing(sqlite3.connect(server.home / "labbook.sqlite3", isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")


def batch(first_step: int, size: int = POINTS) -> bytes:
    steps = range(first_step, first_step + size)
    return orjson.dumps({"points": [{"key": "loss", "step": s, "value": s / 8} for s in steps]})


def test_eight_concurrent_writers_all_get_through_exactly_once(tmp_path: Path):
    statuses: Counter[int] = Counter()
    with LabbookServer(tmp_path / "home") as server:
        runs = [server.create_run("lab/contention") for _ in range(WRITERS)]

        def write(run_id: int) -> None:
            with server.client() as client:
                for b in range(BATCHES):
                    answer = client.post(
                        f"/api/v1/runs/{run_id}/metrics", content=batch(b * POINTS), headers=JSON
                    )
                    statuses[answer.status_code] += 1

        threads = [threading.Thread(target=write, args=(run_id,)) for run_id in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts = [server.metric_keys(run_id).get("loss") for run_id in runs]
    assert set(statuses) <= {200, 201}, statuses  # no 500, no 503: every writer waited its turn
    assert statuses.total() == WRITERS * BATCHES
    assert counts == [BATCHES * POINTS] * WRITERS


def test_a_lock_held_past_the_timeout_is_a_503_with_retry_after(impatient: LabbookServer):
    run_id = impatient.create_run("lab/contention")
    with impatient.client() as client, write_lock(impatient):
        answer = client.post(f"/api/v1/runs/{run_id}/metrics", content=batch(0), headers=JSON)
        mlflow = client.post(
            "/api/2.0/mlflow/runs/log-metric",
            json={"run_id": str(run_id), "key": "acc", "value": 0.5, "timestamp": 1, "step": 0},
        )
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "2"
    assert answer.json()["error"]["code"] == "database_busy"
    assert (mlflow.status_code, mlflow.json()["error_code"]) == (503, "TEMPORARILY_UNAVAILABLE")
    assert impatient.metric_keys(run_id) == {}  # nothing half-written


def test_the_sdk_waits_out_a_busy_database(impatient: LabbookServer, tmp_path: Path):
    run = sdk.init(project="lab/contention", url=impatient.url, token=impatient.token)
    released = threading.Event()

    def hold() -> None:
        with write_lock(impatient):
            time.sleep(4)  # several of the SDK's sends meet the lock
        released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)
    for step in range(500):
        run.log({"loss": step / 8}, step=step)
    run.finish()
    holder.join()
    assert released.is_set()
    assert impatient.history(run.id, "loss") == (list(range(500)), [s / 8 for s in range(500)])
    log = impatient.output()
    assert "Traceback" not in log and " 500 " not in log


def test_a_page_gets_a_plain_text_503(rf):
    response = busy_response(rf.get("/acme/mnist/"))
    assert (response.status_code, response["Content-Type"]) == (503, "text/plain; charset=utf-8")
    assert response["Retry-After"] == "2"


def test_only_a_lock_timeout_counts_as_busy():
    assert is_database_busy(OperationalError("database is locked"))
    assert not is_database_busy(OperationalError("no such table: tracking_run"))
    assert not is_database_busy(ValueError("database is locked"))
