"""A real Celery worker consumes tasks from the real broker: the filesystem queue or Redis.

Tasks ignore their results, so consumption is proven by side effects: the
``labbook.touch_file`` diagnostic task writes a file, and the worker's own log
records ``labbook.ping`` succeeding. Tasks are sent by a separate process with
the worker's environment, so sender and worker agree on the broker only if the
project's settings make them agree. Each test uses its own queue name so
leftover messages from other tests (on a shared Redis) never reach this worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings

from tests.support import require_redis, wait_until

pytestmark = pytest.mark.subprocess

CONSUME_TIMEOUT = 60

SENDER = """
import sys
import django

django.setup()
from labbook.celery import app

queue, path = sys.argv[1:]
print(app.send_task("labbook.ping", queue=queue).id)
app.send_task("labbook.touch_file", args=[path], queue=queue)
"""


def worker_command(queue: str) -> list[str]:
    return [
        *(sys.executable, "-m", "celery", "-A", "labbook", "worker"),
        *("--pool", "threads", "--concurrency", "2", "--without-gossip", "--without-mingle"),
        *("--loglevel", "INFO", "-I", "labbook.diagnostics"),
        *("-Q", queue, "--hostname", f"{queue}@%h"),
    ]


class Worker:
    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.env = env
        self.home = home
        self.queue = f"labbook-test-{uuid.uuid4().hex[:12]}"
        self.log = home / "worker.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                worker_command(self.queue),
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def send(self, path: Path) -> str:
        """Queue a ping and a touch of ``path`` from another process; answer the ping's id."""
        done = subprocess.run(
            [sys.executable, "-c", SENDER, self.queue, str(path)],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=CONSUME_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, path: Path, ping_id: str) -> None:
        succeeded = f"Task labbook.ping[{ping_id}] succeeded"
        consumed = wait_until(
            lambda: path.exists() and succeeded in self.log_text(), timeout=CONSUME_TIMEOUT
        )
        assert consumed, f"worker did not consume the tasks; its log:\n{self.log_text()[-4000:]}"


def worker_env(home: Path, **changes: str | None) -> dict[str, str]:
    """The test's environment, rooted in ``home``: a stray relative path lands there."""
    path = os.pathsep.join(p for p in (str(settings.BASE_DIR), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "LABBOOK_HOME": str(home), "PYTHONPATH": path}
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@contextmanager
def running_worker(env: dict[str, str], home: Path) -> Iterator[Worker]:
    worker = Worker(env, home)
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def filesystem_worker(home: Path) -> Iterator[Worker]:
    with running_worker(worker_env(home, REDIS_URL=None), home) as worker:
        yield worker


@pytest.fixture
def redis_worker(home: Path) -> Iterator[Worker]:
    url = require_redis()
    with running_worker(worker_env(home, REDIS_URL=url), home) as worker:
        yield worker
    forget_queue(url, worker.queue)


def forget_queue(url: str, queue: str) -> None:
    """Drop the bindings kombu keeps in Redis for the test's one-off queue."""
    import redis

    client = redis.Redis.from_url(url)
    client.delete(f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}", queue)


def assert_round_trips(worker: Worker, tmp_path: Path) -> None:
    """A task queued while no worker runs is consumed on start; a later one live."""
    early, late = tmp_path / "early", tmp_path / "late"
    ping_id = worker.send(early)
    worker.start()
    worker.wait_for(early, ping_id)
    ping_id = worker.send(late)
    worker.wait_for(late, ping_id)
    assert worker.process is not None and worker.process.poll() is None, worker.log_text()


def test_it_consumes_tasks_from_the_filesystem_queue(
    filesystem_worker: Worker, home: Path, tmp_path: Path
) -> None:
    assert_round_trips(filesystem_worker, tmp_path)
    assert "filesystem://" in filesystem_worker.log_text()
    assert (home / "queue" / "control" / "celery.pidbox.exchange").exists()


def test_it_consumes_tasks_from_redis(redis_worker: Worker, tmp_path: Path) -> None:
    assert_round_trips(redis_worker, tmp_path)
    assert "redis://" in redis_worker.log_text()
