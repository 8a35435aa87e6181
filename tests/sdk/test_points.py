"""What the SDK logs is what the server keeps: no point moved, replaced or stored twice."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.server import LabbookServer, manage
from tests.sdk.test_outage import sync
from tracking import sdk

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(120)]

FORGET_BATCH_IDS = (
    "from datetime import timedelta; from tracking.ingest import ingest_batches_prune;"
    " ingest_batches_prune(older_than=timedelta(0))"
)


def read_back(server: LabbookServer, run_id: int, key: str) -> list[tuple[int, float]]:
    history = sdk.Api(server.url, server.token).history(run_id, key)
    return list(zip(history["steps"], history["values"], strict=True))


def test_a_step_logged_twice_keeps_both_values(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    run = start_run()
    run.log({"loss": 1.0}, step=3)
    run.log({"loss": 2.0}, step=3)  # the same step again: kept beside the first
    run.log({"loss": 0.5})  # no step: the next one
    run.finish()
    assert read_back(server, run.id, "loss") == [(3, 1.0), (3, 2.0), (4, 0.5)]
    assert server.metric_keys(run.id) == {"loss": 3}


def test_a_resumed_run_goes_on_after_its_last_step_and_keeps_what_it_logs_again(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    first = start_run()
    for step in range(5):
        first.log({"loss": float(step)})
    first.finish()
    resumed = start_run(resume=first.id)
    resumed.log({"loss": 9.0})  # no step: after the key's last one
    resumed.log({"loss": 7.0}, step=2)  # an old step with a new value: kept
    resumed.finish()
    assert read_back(server, first.id, "loss") == [
        (0, 0.0), (1, 1.0), (2, 2.0), (2, 7.0), (3, 3.0), (4, 4.0), (5, 9.0)
    ]  # fmt: skip


def test_history_pages_through_a_crowded_step(
    server: LabbookServer, start_run: Callable[..., Any]
) -> None:
    run = start_run()
    for n in range(7):
        run.log({"loss": float(n)}, step=0)
    run.finish()
    api = sdk.Api(server.url, server.token)
    path = f"/api/v1/runs/{run.id}/metrics/loss"
    page = api._get(path, {"limit": 3})
    assert (page["values"], page["next_step"]) == ([0.0, 1.0, 2.0], 0)
    assert api.history(run.id, "loss")["values"] == [float(n) for n in range(7)]


def test_a_spool_sent_again_after_the_server_forgot_its_batch_ids_stores_nothing_twice(
    own_server: LabbookServer,
    project: str,
    spool_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LABBOOK_RETRY_SECONDS", "1")
    monkeypatch.setenv("LABBOOK_FINISH_TIMEOUT", "5")
    run = sdk.init(project=project, url=own_server.url, token=own_server.token)
    try:
        own_server.stop()
        for step in range(50):
            run.log({"loss": step / 50})
        time.sleep(2.5)  # past LABBOOK_RETRY_SECONDS: the batches go to the spool
    finally:
        run.finish()
    kept = tmp_path / "spool-copy"
    shutil.copytree(spool_dir, kept)
    own_server.start()
    done = sync(own_server, spool_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert own_server.metric_keys(run.id) == {"loss": 50}

    manage(own_server.home, "shell", "-c", FORGET_BATCH_IDS)  # as 7 days later
    shutil.rmtree(spool_dir)
    shutil.copytree(kept, spool_dir)
    again = sync(own_server, spool_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert own_server.metric_keys(run.id) == {"loss": 50}  # exact duplicates: dropped
    assert read_back(own_server, run.id, "loss") == [(s, s / 50) for s in range(50)]
