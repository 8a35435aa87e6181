"""`manage.py up` as a real process: it serves, prints the first credentials once (in a box,
last), restarts a child that dies, gives up on one that keeps dying, refuses a second `up` on
its home, stops cleanly; the children's banners only with --verbose.

Each test runs `up` against a fresh SQLite database in its own LABBOOK_HOME
(even when the outer run uses PostgreSQL), keeping REDIS_URL when it is set so
the Redis broker path is exercised too. The home's static files are linked from
one collect (tests.sdk.server.link_static), which `up` finds current.
"""

from __future__ import annotations

import contextlib
import json
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

from labbook.management.commands import up as up_command
from tests.sdk.server import link_static
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
        LABBOOK_HOME=str(home), DJANGO_SETTINGS_MODULE="labbook.settings", PYTHONUNBUFFERED="1"
    )
    return env


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    started: list[Up] = []

    def start(*args: str, port: int | None = None, env: dict[str, str] | None = None) -> Up:
        port = port or free_port()
        log = tmp_path / f"up-{port}.log"
        if not (tmp_path / "home" / "static").exists():
            link_static(tmp_path / "home")  # `up` finds them current: no Brotli for each test
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "up", "--port", str(port), *args],
                cwd=ROOT,
                env={**up_env(tmp_path / "home"), **(env or {})},
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


ROLES = {"web": "uvicorn", "worker": " worker ", "beat": " beat "}


def child_pid(up: Up, role: str) -> int | None:
    """The PID of `up`'s child running ``role`` now, if one is running."""
    for pid, _ in alive(descendants(up.process.pid)):
        parent = proc_table().get(pid, (None,))[0]  # None: it exited since (a restart)
        with contextlib.suppress(OSError):
            if parent == up.process.pid and ROLES[role] in cmdline(pid):
                return pid
    return None


def check(up: Up, name: str) -> str:
    return ((healthz(up) or {}).get("checks") or {}).get(name, "")


def background_alive(up: Up) -> bool:
    return all(check(up, role).startswith("ok: ") for role in ("worker", "beat"))


def alive_heartbeat(up: Up, role: str, pid: int) -> bool:
    """/healthz shows a fresh heartbeat of ``role`` written by process ``pid``."""
    found = check(up, role)
    return found.startswith("ok: ") and found.endswith(f", pid {pid})")


# Lines of Celery's worker and beat banners and of their INFO start-up chatter.
BANNER = (
    "-------------- celery@",
    "[config]",
    ".> app:",
    ".> transport:",
    "[tasks]",
    "celery beat v",
    "LocalTime ->",
    "Configuration ->",
    "beat: Starting...",
    "INFO/MainProcess",
    "Started server process",
)


def banner_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if any(mark in line for mark in BANNER)]


def last_box(out: str) -> list[str]:
    """The lines of the last box printed (with its borders), rounded or plain."""
    lines = out.splitlines()
    borders = [i for i, line in enumerate(lines) if line.startswith(("╭", "╰", "+-"))]
    top, bottom = borders[-2:]
    return lines[top : bottom + 1]


def settled(up: Up) -> str:
    """The output once the web server answers and the worker and beat have sent heartbeats."""
    assert wait_until(lambda: background_alive(up), timeout=START_TIMEOUT), healthz(up)
    return up.output()


# --- Tests -----------------------------------------------------------------------------
# Each `up` start costs four Python processes importing Django: a test checks what one
# running `up` can show before it stops it.


def assert_forwarded_addresses_are_not_believed(up: Up, token: str) -> None:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default: any local program could
    forge the client address of the audit log and dodge the login lockout (security
    review). `up` believes it only from TRUSTED_PROXIES, which is empty by default."""
    auth = {"Authorization": f"Bearer {token}"}
    teams = httpx.get(up.url("/api/v1/teams"), headers=auth, trust_env=False).json()
    listed = teams["results"] if isinstance(teams, dict) else teams
    team = listed[0]["slug"]
    forged = {**auth, "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    body = {"team": team, "kind": "email", "name": "xff", "config": {"addresses": ["a@b.co"]}}
    created = httpx.post(up.url("/api/v1/destinations"), json=body, headers=forged, trust_env=False)
    assert created.status_code == 201, created.text
    page = httpx.get(up.url(f"/api/v1/teams/{team}/audit-events"), headers=auth, trust_env=False)
    events = page.json()["results"]
    assert events[0]["action"] == "destination.created"
    assert events[0]["ip"] == "127.0.0.1"


def test_it_serves_believes_no_forwarded_address_and_stops_cleanly_on_sigterm(start_up) -> None:
    up = start_up()
    children = up.wait_running()
    assert len(children) == 3
    assert wait_until(lambda: healthz(up) is not None, timeout=START_TIMEOUT)
    assert wait_until(lambda: background_alive(up), timeout=START_TIMEOUT), healthz(up)
    body = healthz(up)
    assert body["status"] == "ok"
    assert {name: body["checks"][name] for name in ("web", "database", "broker")} == {
        "web": "ok",
        "database": "ok",
        "broker": "ok",
    }
    out = settled(up)
    password = re.search(r"password +(\S+)", out).group(1)
    token = re.search(r"API token +(lb_\S+)", out).group(1)
    assert out.count(password) == 1 and out.count(token) == 1
    assert "will not be shown again" in out
    # The box is the last thing printed: after the web server answered and the worker
    # started, and nothing (banners, INFO lines) after it while the server runs.
    box = last_box(out)
    assert out.rstrip().endswith(box[-1])
    text = "\n".join(box)
    assert f"│ Labbook is running at http://127.0.0.1:{up.port}/ " in text
    assert password in text and token in text
    assert "python manage.py changepassword admin" in text and "Press Ctrl-C to stop." in text
    assert box[0].startswith("╭") and box[-1].startswith("╰")
    assert len({len(line) for line in box}) == 1  # every row as wide as the frame
    assert banner_lines(out) == []
    projects = httpx.get(
        up.url("/api/v1/projects"), headers={"Authorization": f"Bearer {token}"}, trust_env=False
    )
    assert projects.status_code == 200
    assert_forwarded_addresses_are_not_believed(up, token)
    up.process.send_signal(signal.SIGTERM)
    assert up.wait_exit() == 0
    assert "Stopped." in up.output()
    assert wait_until(lambda: not alive(children), timeout=STOP_TIMEOUT)


def test_it_restarts_the_worker_beat_and_web_server_when_they_are_killed(start_up) -> None:
    up = start_up()
    up.wait_running()
    for role, name in (("worker", "Celery worker"), ("beat", "Celery beat")):
        old = child_pid(up, role)
        assert wait_until(lambda: alive_heartbeat(up, role, old), timeout=90), healthz(up)  # noqa: B023
        os.kill(old, signal.SIGKILL)
        assert wait_until(lambda: child_pid(up, role) not in (None, old), timeout=60)  # noqa: B023
        new = child_pid(up, role)
        assert wait_until(lambda: alive_heartbeat(up, role, new), timeout=90), healthz(up)  # noqa: B023
        assert f"labbook: the {name} was killed by SIGKILL; restarting in 1 s" in up.output()

    old = child_pid(up, "web")
    os.kill(old, signal.SIGKILL)
    assert wait_until(lambda: child_pid(up, "web") not in (None, old), timeout=60)
    assert wait_until(lambda: healthz(up) is not None, timeout=60)
    # The web server comes back at once: clients wait in the socket up holds meanwhile.
    assert "labbook: the web server was killed by SIGKILL; restarting in 0 s" in up.output()
    assert up.process.poll() is None

    up.process.send_signal(signal.SIGTERM)
    assert up.wait_exit() == 0
    assert wait_until(lambda: not descendants(up.process.pid), timeout=STOP_TIMEOUT)


def test_it_gives_up_on_a_child_that_keeps_dying(start_up) -> None:
    up = start_up(env={"LABBOOK_CRASH_CHILD": "worker"})
    children = up.wait_running()  # the web server serves meanwhile
    assert up.wait_exit(timeout=180) == 1
    out = up.output()
    # What the crashing child wrote reaches the console as it happens, not just at the end.
    assert out.count("crashing on purpose: LABBOOK_CRASH_CHILD=worker\n") >= 4
    for delay in (1, 2, 4, 8):
        assert f"the Celery worker exited with code 3; restarting in {delay} s" in out
    assert "labbook: the Celery worker exited 5 times in " in out
    assert "(exit codes 3, 3, 3, 3, 3); giving up and stopping the others" in out
    assert "  | crashing on purpose: LABBOOK_CRASH_CHILD=worker" in out
    assert "Traceback" not in out
    assert wait_until(lambda: not alive(children), timeout=STOP_TIMEOUT)


def test_a_home_refuses_a_second_up_and_starts_again_after_a_kill(start_up) -> None:
    """One home's life: a second `up` on it is refused; a killed `up` leaves no orphans and
    frees the home; the next start (admin exists) says where and how to reset the password
    instead of showing it. --verbose lets the children's banners through, still before the
    box; a terminal that cannot show the rounded corners gets a plain one."""
    first = start_up()
    children = first.wait_running()
    password = re.search(r"password +(\S+)", first.output()).group(1)
    second = start_up()
    assert second.wait_exit(timeout=START_TIMEOUT) == 2
    lines = second.output().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"labbook: another Labbook (PID {first.process.pid}, http://127.0.0.1:{first.port}/)"
        " is running on "
    )
    assert lines[0].endswith("/home; stop it or use another LABBOOK_HOME")
    assert first.process.poll() is None

    first.process.send_signal(signal.SIGKILL)  # the OS frees the lock, however `up` dies
    first.wait_exit()
    assert wait_until(lambda: not alive(children), timeout=STOP_TIMEOUT)  # no orphans

    up = start_up("--verbose", env={"PYTHONIOENCODING": "ascii"})
    up.wait_running()
    out = settled(up)
    assert password not in out and "API token" not in out
    box = last_box(out)
    assert box[0].startswith("+-") and box[-1].startswith("+-")
    assert all(line.isascii() for line in box)
    text = "\n".join(box)
    assert f"| Labbook is running at http://127.0.0.1:{up.port}/ " in text
    assert "Log in as admin with the password shown on the first start." in text
    assert "python manage.py changepassword admin" in text
    for mark in ("-------------- celery@", "[config]", ".> app:", "celery beat v"):
        assert mark in out, mark
    ready = out.index(" ready.")  # the worker's "celery@host ready." comes before the box
    assert ready < out.index(box[0])


def test_it_refuses_a_port_in_use(start_up) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up = start_up(port=taken.getsockname()[1])
        assert up.wait_exit(timeout=START_TIMEOUT) != 0
    out = up.output()
    assert f"labbook: port {up.port} on 127.0.0.1 is already in use" in out
    assert "Traceback" not in out


# --- The box, in process ---------------------------------------------------------------


def test_the_box_falls_back_to_plain_characters_where_the_terminal_has_no_others() -> None:
    rows = ["Labbook is running at http://127.0.0.1:8000/", "", "Log in as josé"]
    rounded = up_command.box(rows, encoding="utf-8")
    assert rounded[0] == "╭" + "─" * 46 + "╮" and rounded[-1] == "╰" + "─" * 46 + "╯"
    assert rounded[3] == "│ Log in as josé" + " " * 30 + " │"
    plain = up_command.box(rows, encoding="ascii")
    assert plain[0] == "+" + "-" * 46 + "+" and plain[-1] == plain[0]
    assert plain[3] == "| Log in as jos?" + " " * 30 + " |"
    assert up_command.box(rows, encoding="latin-1")[3].endswith("josé" + " " * 30 + " |")
    assert up_command.box(rows, encoding="no-such-codec")[0].startswith("+-")


def test_the_worker_counts_as_up_only_by_a_fresh_heartbeat_of_its_own_process() -> None:
    def body(worker: str) -> str:
        return json.dumps({"status": "ok", "checks": {"worker": worker}})

    assert up_command.worker_alive(body("ok: last seen 0 s ago (celery@vm, pid 42)"), 42)
    assert not up_command.worker_alive(body("ok: last seen 3 s ago (celery@vm, pid 41)"), 42)
    assert not up_command.worker_alive(body("starting: no heartbeat yet"), 42)
    assert not up_command.worker_alive(body("stale: last seen 95 s ago (celery@vm, pid 42)"), 42)
    assert not up_command.worker_alive("<html>", 42)
