"""`manage.py up` as a real process: it serves, prints the first credentials once, stops cleanly.

Each test runs `up` against a fresh SQLite database in its own LABBOOK_HOME
(even when the outer run uses PostgreSQL), keeping REDIS_URL when it is set so
the Redis broker path is exercised too.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, wait_until

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60
STOP_TIMEOUT = 20
Proc = tuple[int, int]  # (pid, start time): a pid alone may be reused


@dataclass
class Up:
    process: subprocess.Popen
    port: int
    log: Path
    children: set[Proc] = field(default_factory=set)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_running(self) -> set[Proc]:
        """Wait for the "running" line; answer the processes `up` started."""
        running = f"Labbook is running at http://127.0.0.1:{self.port}/"
        if not wait_until(lambda: running in self.output(), timeout=START_TIMEOUT, interval=0.2):
            pytest.fail(f"`up` did not start within {START_TIMEOUT} s:\n{self.output()}")
        self.children = descendants(self.process.pid)
        return self.children

    def kill(self) -> None:
        """Leave nothing behind, whatever state the test left `up` in."""
        for pid, _ in alive(self.children) | descendants(self.process.pid):
            _killpg(pid)
        _killpg(self.process.pid)
        self.process.wait(timeout=STOP_TIMEOUT)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`up` did not exit within {timeout} s:\n{self.output()}")


def up_env(home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    env.update(
        LABBOOK_HOME=str(home), DJANGO_SETTINGS_MODULE="reports_app.settings", PYTHONUNBUFFERED="1"
    )
    return env


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    started: list[Up] = []

    def start(*args: str, port: int | None = None) -> Up:
        port = port or free_port()
        log = tmp_path / f"up-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "up", "--port", str(port), *args],
                cwd=ROOT,
                env=up_env(tmp_path / "home"),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(Up(process, port, log))
        return started[-1]

    try:
        yield start
    finally:
        for up in started:
            up.kill()


# --- The process tree, from /proc (psutil is not installed) -----------------------------


def proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, start time, state) of every visible process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited while we looked
            fields = stat[stat.rindex(")") + 2 :].split()
            table[int(entry.name)] = (int(fields[1]), int(fields[19]), fields[0])
    return table


def descendants(pid: int) -> set[Proc]:
    table = proc_table()
    found: set[Proc] = set()
    parents = {pid}
    while parents:
        children = {p for p, (ppid, _, _) in table.items() if ppid in parents}
        found |= {(p, table[p][1]) for p in children}
        parents = children
    return found


def alive(procs: set[Proc]) -> set[Proc]:
    table = proc_table()
    return {(p, start) for p, start in procs if p in table and table[p][1:] != (start, "Z")}


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _killpg(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def healthz(up: Up) -> dict | None:
    try:
        response = httpx.get(up.url("/healthz"), timeout=2, trust_env=False)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


# --- Tests -----------------------------------------------------------------------------


def test_it_serves_and_stops_cleanly_on_sigterm(start_up) -> None:
    up = start_up()
    children = up.wait_running()
    assert len(children) == 3
    assert wait_until(lambda: healthz(up) is not None, timeout=START_TIMEOUT)
    assert healthz(up) == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    out = up.output()
    password = re.search(r"password +(\S+)", out).group(1)
    token = re.search(r"API token +(lb_\S+)", out).group(1)
    assert out.count(password) == 1 and out.count(token) == 1
    assert "will not be shown again" in out
    projects = httpx.get(
        up.url("/api/v1/projects"), headers={"Authorization": f"Bearer {token}"}, trust_env=False
    )
    assert projects.status_code == 200
    up.process.send_signal(signal.SIGTERM)
    assert up.wait_exit() == 0
    assert "Stopped." in up.output()
    assert wait_until(lambda: not alive(children), timeout=5)


def test_it_stops_everything_when_a_child_dies(start_up) -> None:
    up = start_up()
    children = up.wait_running()
    worker = next(pid for pid, _ in children if " worker " in cmdline(pid))
    os.kill(worker, signal.SIGKILL)
    assert up.wait_exit() == 1
    assert "the Celery worker was killed by SIGKILL; stopping the others" in up.output()
    assert wait_until(lambda: not alive(children), timeout=5)


def test_it_leaves_no_orphans_when_killed(start_up) -> None:
    up = start_up()
    children = up.wait_running()
    up.process.send_signal(signal.SIGKILL)
    up.wait_exit()
    assert wait_until(lambda: not alive(children), timeout=STOP_TIMEOUT)


def test_it_refuses_a_port_in_use(start_up) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up = start_up(port=taken.getsockname()[1])
        assert up.wait_exit(timeout=START_TIMEOUT) != 0
    out = up.output()
    assert f"port {up.port} on 127.0.0.1 is already in use" in out
    assert "Traceback" not in out
