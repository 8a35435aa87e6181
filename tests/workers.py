"""Real Celery processes (worker, beat) sharing a test server's LABBOOK_HOME (database, queue)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.sdk.server import ROOT, LabbookServer, server_env
from tests.support import free_port, wait_until

STOP_TIMEOUT = 15
WORKER = ("worker", "--pool", "threads", "--concurrency", "2")
WORKER += ("--without-gossip", "--without-mingle", "--loglevel", "INFO")


@dataclass
class CeleryProcess:
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no acks, no requeue — a machine losing power."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()


@contextmanager
def celery(
    server: LabbookServer, *args: str, env: dict[str, str] | None = None, log: str = "worker.log"
) -> Iterator[CeleryProcess]:
    """``celery -A labbook <args>`` with the server's environment, stopped at the end."""
    path = server.home / log
    command = [sys.executable, "-m", "celery", "-A", "labbook", *args]
    celery_env = {**server_env(server.home), "BASE_URL": server.url, **server.env, **(env or {})}
    with path.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=celery_env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = CeleryProcess(process, path)
    try:
        yield running
    finally:
        running.stop()


def celery_worker(
    server: LabbookServer, env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[CeleryProcess]:
    """A worker as ``manage.py up`` runs it (threads pool), with a smaller concurrency."""
    return celery(server, *WORKER, env=env)


def celery_beat(
    server: LabbookServer, env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[CeleryProcess]:
    """Beat with its schedule file in the server's home: the sweep and the scan."""
    schedule = str(server.home / "celerybeat-schedule")
    return celery(server, "beat", "--loglevel", "INFO", "-s", schedule, env=env, log="beat.log")


class RedisServer:
    """A private redis-server on a free loopback port that a test may stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert wait_until(self.answers, timeout=60), "redis-server did not start"

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
