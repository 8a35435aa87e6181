"""A real Celery worker subprocess sharing a test server's LABBOOK_HOME (database and queue)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.sdk.server import ROOT, LabbookServer, server_env

STOP_TIMEOUT = 15


@contextmanager
def celery_worker(server: LabbookServer, env: dict[str, str] | None = None) -> Iterator[Path]:
    """Runs ``celery worker`` with the server's environment; yields its log file."""
    log = server.home / "worker.log"
    command = [
        *(sys.executable, "-m", "celery", "-A", "reports_app", "worker"),
        *("--pool", "threads", "--concurrency", "2", "--without-gossip", "--without-mingle"),
        *("--loglevel", "INFO"),
    ]
    worker_env = {**server_env(server.home), "BASE_URL": server.url, **server.env, **(env or {})}
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=worker_env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
