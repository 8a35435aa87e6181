"""The server goes away mid-run: log() keeps going, points spool to disk, `sync` uploads them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.conftest import script_env
from tests.sdk.server import ROOT, LabbookServer
from tests.support import wait_until
from tracking import sdk

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(90)]

STEPS_UP, STEPS_DOWN = 100, 300
FINISH_BOUND = 15.0  # LABBOOK_FINISH_TIMEOUT below is 5 s


def sync(server: LabbookServer, spool_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tracking.sdk", "sync", str(spool_dir)],
        cwd=ROOT,
        env=script_env(server, spool_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def log_steps(run: Any, steps: range) -> float:
    """Log ``steps``; answer the slowest call in seconds."""
    slowest = 0.0
    for step in steps:
        started = time.perf_counter()
        run.log({"loss": 1 / (step + 1), "acc": step / 1000})
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


def arrived(server: LabbookServer, run_id: int) -> int:
    return server.metric_keys(run_id).get("loss", 0)


def assert_all_points(server: LabbookServer, run_id: int, total: int) -> None:
    assert server.history(run_id, "loss") == (
        list(range(total)),
        [1 / (s + 1) for s in range(total)],
    )
    assert server.history(run_id, "acc")[0] == list(range(total))


def test_it_spools_while_the_server_is_down_and_syncs_exactly_once(
    own_server: LabbookServer,
    project: str,
    spool_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LABBOOK_RETRY_SECONDS", "1")
    monkeypatch.setenv("LABBOOK_FINISH_TIMEOUT", "5")
    run = sdk.init(project=project, url=own_server.url, token=own_server.token)
    try:
        log_steps(run, range(STEPS_UP))
        assert wait_until(lambda: arrived(own_server, run.id) == STEPS_UP, timeout=60)
        own_server.stop()
        slowest = log_steps(run, range(STEPS_UP, STEPS_UP + STEPS_DOWN))
        time.sleep(2.5)  # past LABBOOK_RETRY_SECONDS: the failing batches go to the spool
        started = time.monotonic()
        run.finish()
        finish_seconds = time.monotonic() - started
    finally:
        run.finish()
    assert slowest < 0.5, f"log() blocked for {slowest:.2f} s while the server was down"
    assert finish_seconds < FINISH_BOUND
    assert str(spool_dir) in capfd.readouterr().err
    assert any(spool_dir.iterdir()), "nothing was spooled"

    own_server.start()
    first = sync(own_server, spool_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "points" in first.stdout + first.stderr, "sync printed no progress"
    assert_all_points(own_server, run.id, STEPS_UP + STEPS_DOWN)
    assert own_server.run(run.id)["status"] == "finished"

    again = sync(own_server, spool_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_all_points(own_server, run.id, STEPS_UP + STEPS_DOWN)
    assert own_server.metric_keys(run.id) == {"acc": 400, "loss": 400}


def test_it_starts_offline_when_the_server_is_down_and_syncs_the_run_once(
    own_server: LabbookServer, project: str, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABBOOK_RETRY_SECONDS", "1")
    monkeypatch.setenv("LABBOOK_FINISH_TIMEOUT", "5")
    own_server.stop()
    run = sdk.init(project=project, url=own_server.url, token=own_server.token, tags=["offline"])
    try:
        log_steps(run, range(50))
        run.summary["best"] = 0.5
    finally:
        run.finish()
    own_server.start()
    for _ in range(2):
        done = sync(own_server, spool_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        [stored] = own_server.runs(project)
        assert_all_points(own_server, stored["id"], 50)
    assert stored["status"] == "finished" and stored["tags"] == ["offline"]
    assert stored["summary"]["best"] == 0.5


def test_it_says_so_on_stderr_when_points_can_be_neither_sent_nor_kept(
    proxy: Any,
    start_run: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the spool folder should be")
    monkeypatch.setenv("LABBOOK_SPOOL_DIR", str(blocked))
    monkeypatch.setenv("LABBOOK_RETRY_SECONDS", "0")
    run = start_run(url=proxy.url)
    proxy.fail("status", 1_000, status=503, path=r"/metrics$")
    for step in range(7):
        run.log({"loss": 1.0}, step=step)
    run.flush(10)
    assert "LOST 7 points" in capsys.readouterr().err
