"""A real ``mlflow server`` (SQLite backend, one worker) on loopback, started by a test.

Used to import from (``test_import.py``) and as the reference the parity tests compare
Labbook's answers with (``parity/``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support import free_port, wait_until

START_TIMEOUT = 120


@contextlib.contextmanager
def running_mlflow_server(folder: Path) -> Iterator[str]:
    """``mlflow server`` storing under ``folder``; yields its URL, stops it on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("wb")
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"),
        *("--artifacts-destination", str(folder / "artifacts"), "--workers", "1"),
    ]
    # Without its job runner: seven more processes importing mlflow (for GenAI jobs an
    # import never starts) cost about as much CPU as the rest of a test module.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        up = wait_until(lambda: _answers(url), timeout=START_TIMEOUT, interval=0.5)
        assert up, (folder / "server.log").read_text()[-3000:]
        yield url
    finally:
        stop_group(process)
        log.close()


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the server and its workers; SIGKILL if a busy machine keeps them past 30 s."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sent)
        try:
            process.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2, trust_env=False).is_success
    except httpx.HTTPError:
        return False
