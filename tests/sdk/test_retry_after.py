"""The SDK against a real server's per-token rate limit: it waits as told, and only so long.

Each test runs a server of its own with a tiny ``INGEST_THROTTLE_RATE``, behind
a fault proxy that injects nothing and only records what the server answered.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.conftest import script_env
from tests.sdk.proxy import FaultProxy
from tests.sdk.server import ROOT, LabbookServer

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(120)]

METRICS = r"/api/v1/runs/\d+/metrics$"


@pytest.fixture
def throttled(tmp_path: Path) -> Iterator[LabbookServer]:
    """A server whose tokens may send a burst of 2 ingest requests, then 2 a second."""
    with LabbookServer(tmp_path / "home", env={"INGEST_THROTTLE_RATE": "2/s"}) as labbook:
        yield labbook


def test_it_waits_out_the_throttle_and_loses_nothing(
    throttled: LabbookServer, start_run: Callable[..., Any], spool_dir: Path
) -> None:
    with FaultProxy(throttled.url) as proxy:
        run = start_run(url=proxy.url, token=throttled.token)
        for step in range(40):
            run.log({"loss": 1 / (step + 1)}, step=step)
            time.sleep(0.02)  # batches leave every 0.2 s: faster than 2 a second
        run.finish()
    posts = proxy.counters.where(method="POST", path=METRICS)
    refused = [i for i, r in enumerate(posts) if r.status == 429]
    assert refused, [r.status for r in posts]
    for index in refused:
        again = posts[index + 1]
        assert again.batch_id == posts[index].batch_id, "the refused batch is sent again"
        assert again.at - posts[index].at >= 0.9, "retried before Retry-After (1 s) elapsed"
    assert throttled.history(run.id, "loss")[0] == list(range(40))
    assert throttled.run(run.id)["status"] == "finished"
    assert not list(spool_dir.iterdir()), "nothing had to be spooled"


SCRIPT = """
import time
from tracking import sdk
run = sdk.init(project="lab/throttled")
print(run.id, flush=True)
for step in range(5):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
started = time.monotonic()
run.finish()
print(f"{time.monotonic() - started:.1f}", flush=True)
"""


def test_it_waits_no_longer_than_its_retry_budget_and_keeps_the_data(
    tmp_path: Path, server: LabbookServer, spool_dir: Path
) -> None:
    env = {"INGEST_THROTTLE_RATE": "1/min"}  # the run is created, then Retry-After: 60
    with LabbookServer(tmp_path / "home", env=env) as strict:
        env = script_env(server, spool_dir, LABBOOK_URL=strict.url, LABBOOK_TOKEN=strict.token)
        env.update(LABBOOK_RETRY_SECONDS="2", LABBOOK_FINISH_TIMEOUT="10")
        (tmp_path / "train.py").write_text(SCRIPT)
        done = subprocess.run(
            [sys.executable, str(tmp_path / "train.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        run_id, finish_seconds = done.stdout.split()
        assert float(finish_seconds) < 15, "finish() waited past its budgets"
        assert "limiting this token's requests" in done.stderr
        assert "python -m tracking.sdk sync" in done.stderr
        assert strict.metric_keys(int(run_id)) == {}
        strict.stop()
        strict.env = {}  # the operator raises the limit
        strict.start()
        synced = subprocess.run(
            [sys.executable, "-m", "tracking.sdk", "sync", str(spool_dir)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert synced.returncode == 0, synced.stderr
        assert strict.history(int(run_id), "loss")[0] == [0, 1, 2, 3, 4]
        assert strict.run(int(run_id))["status"] == "finished"
