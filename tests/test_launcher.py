"""The supervision pieces behind `manage.py up`: the restart policy on its own (time passed in),
the rest on small real child processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labbook import launcher
from tests.support import free_port, wait_until


def python_spec(code: str, key: str = "test") -> launcher.ChildSpec:
    return launcher.ChildSpec(key, f"{key} child", (sys.executable, "-c", code))


def python_child(tmp_path: Path, code: str) -> launcher.Child:
    return launcher.spawn(python_spec(code), env=dict(os.environ), cwd=tmp_path)


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


# --- RestartPolicy: no processes, no clock ------------------------------------------------


def test_the_backoff_doubles_up_to_its_cap() -> None:
    policy = launcher.RestartPolicy(first_delay=1, max_delay=30, max_exits=100, window=120)
    delays = [policy.exited(code=1, started=t, now=t + 0.5) for t in range(0, 700, 100)]
    assert delays == [1, 2, 4, 8, 16, 30, 30]


def test_the_backoff_starts_over_once_a_child_stayed_up() -> None:
    policy = launcher.RestartPolicy(first_delay=1, stable_after=60, max_exits=100)
    assert [policy.exited(code=1, started=t, now=t + 1) for t in (0, 10, 20)] == [1, 2, 4]
    assert policy.exited(code=1, started=30, now=30 + 61) == 1
    assert policy.exited(code=1, started=100, now=101) == 2


def test_the_web_server_comes_back_at_once_the_first_time() -> None:
    """Its clients wait in up's socket meanwhile: the first restart has no backoff."""
    policy = launcher.policy_for(launcher.ChildSpec("web", "web server", ("x",)))
    assert policy.immediate_first
    assert [policy.exited(code=-9, started=t, now=t + 1) for t in (0, 10, 20)] == [0, 1, 2]
    assert policy.exited(code=-9, started=30, now=30 + 61) == 0  # a new incident
    assert not launcher.policy_for(
        launcher.ChildSpec("worker", "Celery worker", ("x",))
    ).immediate_first


def test_it_gives_up_after_too_many_exits_within_the_window() -> None:
    policy = launcher.RestartPolicy(max_exits=5, window=120)
    answers = [policy.exited(code=3, started=t, now=t + 1) for t in (0, 10, 20, 30, 40)]
    assert answers[:4] == [1, 2, 4, 8] and answers[4] is None
    assert policy.codes() == [3, 3, 3, 3, 3] and policy.span() == 40


def test_exits_older_than_the_window_do_not_count() -> None:
    policy = launcher.RestartPolicy(max_exits=3, window=120, stable_after=1000)
    assert policy.exited(code=1, started=0, now=1) is not None
    assert policy.exited(code=1, started=2, now=100) is not None
    assert policy.exited(code=1, started=101, now=200) is not None  # the first is 199 s old
    assert policy.codes() == [1, 1]


def test_a_give_up_message_names_the_child_its_exits_and_its_last_words() -> None:
    message = launcher.GaveUp(
        launcher.ChildSpec("worker", "Celery worker", ("x",)), [1, -9, 3], 12.2, ["boom"]
    ).message()
    assert message.splitlines() == [
        "labbook: the Celery worker exited 3 times in 12 s (exit codes 1, SIGKILL, 3);"
        " giving up and stopping the others",
        "labbook: the last lines of the Celery worker:",
        "  | boom",
    ]


# --- Supervisor, on real processes ----------------------------------------------------------


class Recorder:
    """Spawns children as `up` does, output through a tail, and keeps what the supervisor said."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.said: list[str] = []
        self.started: list[launcher.Child] = []

    def start(self, spec: launcher.ChildSpec, output: launcher.OutputTail) -> launcher.Child:
        child = launcher.spawn(spec, env=dict(os.environ), cwd=self.tmp_path, output=output)
        self.started.append(child)
        return child


def fast_policy(spec: launcher.ChildSpec) -> launcher.RestartPolicy:
    return launcher.RestartPolicy(first_delay=0.05, max_delay=0.2, max_exits=3, window=60)


def test_it_restarts_a_killed_child(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    supervisor = launcher.Supervisor(
        [python_spec("import time; time.sleep(60)", key="sleeper")],
        start=recorder.start,
        say=recorder.said.append,
        policy=fast_policy,
    )
    supervisor.start()
    try:
        [first] = supervisor.children()
        os.kill(first.process.pid, signal.SIGKILL)

        def restarted() -> bool:
            assert supervisor.check() is None
            return len(recorder.started) == 2 and supervisor.children() == [recorder.started[1]]

        assert wait_until(restarted, timeout=30)
        assert recorder.said == [
            "labbook: the sleeper child was killed by SIGKILL; restarting in 0.05 s"
        ]
        assert supervisor.children()[0].process.poll() is None
    finally:
        supervisor.stop()
    assert all(child.process.returncode is not None for child in recorder.started)


def test_it_gives_up_on_a_child_that_keeps_dying_with_its_last_output(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    dying = python_spec(
        "import sys; print('starting', flush=True); sys.exit('cannot go on')", key="dying"
    )
    sleeper = python_spec("import time; time.sleep(60)", key="sleeper")
    supervisor = launcher.Supervisor(
        [sleeper, dying], start=recorder.start, say=recorder.said.append, policy=fast_policy
    )
    supervisor.start()
    outcome: list[launcher.GaveUp] = []
    try:
        assert wait_until(lambda: outcome.append(supervisor.check()) or outcome[-1], timeout=60)
    finally:
        supervisor.stop()
    gave_up = outcome[-1]
    assert gave_up.spec.key == "dying" and gave_up.codes == [1, 1, 1]
    assert {"starting", "cannot go on"} <= set(gave_up.output)
    assert recorder.said == [
        "labbook: the dying child exited with code 1; restarting in 0.05 s",
        "labbook: the dying child exited with code 1; restarting in 0.1 s",
    ]
    sleepers = [child for child in recorder.started if child.spec.key == "sleeper"]
    assert len(sleepers) == 1 and sleepers[0].process.returncode == -signal.SIGTERM


def test_it_forwards_what_children_write_as_it_comes(tmp_path: Path) -> None:
    """`up`'s own stdout and stderr carry the children's lines, the tail keeps a copy."""
    code = (
        "import sys\n"
        "from labbook import launcher\n"
        "tail = launcher.OutputTail()\n"
        "spec = launcher.ChildSpec('t', 't', (sys.executable, '-c',"
        ' \'import sys; print("to out"); print("to err", file=sys.stderr)\'))\n'
        "child = launcher.spawn(spec, env={}, cwd='.', output=tail)\n"
        "child.process.wait(); child.output_done()\n"
        "print('tail:', tail.lines(), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(launcher.__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == "to out\n"
    assert done.stderr.splitlines()[0] == "to err"
    assert "'to out'" in done.stderr and "'to err'" in done.stderr


def test_the_output_tail_keeps_the_last_lines() -> None:
    tail = launcher.OutputTail(limit=64)
    for number in range(100):
        tail.add(f"line {number}\n".encode())
    assert tail.lines(3) == ["line 97", "line 98", "line 99"]
    assert len("\n".join(tail.lines(100))) <= 64


# --- Processes, stopping, exit descriptions ---------------------------------------------------


def test_it_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = python_child(
        tmp_path,
        "import pathlib, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(60)\n",
    )
    assert wait_until(ready.exists, timeout=60)
    started = time.monotonic()
    launcher.stop_all([child], timeout=0.5)
    assert child.process.returncode == -9
    assert time.monotonic() - started < 5


def test_it_stops_what_a_child_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    child = python_child(
        tmp_path,
        "import pathlib, subprocess, time\n"
        "grandchild = subprocess.Popen(['sleep', '60'])\n"
        f"pathlib.Path({str(pidfile)!r}).write_text(str(grandchild.pid))\n"
        "time.sleep(60)\n",
    )
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text(), timeout=60)
    launcher.stop_all([child], timeout=5)
    assert wait_until(lambda: gone(int(pidfile.read_text())), timeout=30)


def test_an_exited_child_takes_what_it_started_with_it(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    child = python_child(
        tmp_path,
        "import pathlib, subprocess\n"
        "grandchild = subprocess.Popen(['sleep', '60'])\n"
        f"pathlib.Path({str(pidfile)!r}).write_text(str(grandchild.pid))\n"
        "raise SystemExit(3)\n",
    )
    assert wait_until(lambda: launcher.exited(child) is not None, timeout=60)
    assert launcher.exited(child) == 3
    assert launcher.exit_description(3) == "exited with code 3"
    assert wait_until(lambda: gone(int(pidfile.read_text())), timeout=30)


def test_it_names_the_signal_that_killed_a_child() -> None:
    assert launcher.exit_description(-9) == "was killed by SIGKILL"
    assert launcher.short_exit(-9) == "SIGKILL" and launcher.short_exit(2) == "2"


# --- One `up` per home --------------------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from pathlib import Path
from labbook.launcher import HomeLock
HomeLock(Path(sys.argv[1])).acquire(url="http://127.0.0.1:1234/")
print("locked", flush=True)
time.sleep(120)
"""


def test_the_home_lock_names_its_holder_and_is_freed_when_it_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "up.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)],
        cwd=Path(launcher.__file__).parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(launcher.HomeBusy) as busy:
            launcher.HomeLock(path).acquire(url="http://127.0.0.1:9/")
        assert (busy.value.pid, busy.value.url) == (holder.pid, "http://127.0.0.1:1234/")
    finally:
        holder.kill()  # SIGKILL: no clean-up of its own
        holder.wait()
    lock = launcher.HomeLock(path)
    lock.acquire(url="http://127.0.0.1:9/")
    assert lock.owner() == (os.getpid(), "http://127.0.0.1:9/")
    lock.release()


# --- Ports, hosts, what to run ------------------------------------------------------------------


def test_it_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(launcher.PortUnavailable, match=f"port {port} .* already in use"):
            launcher.listen_socket("127.0.0.1", port)


def test_it_listens_on_a_free_port() -> None:
    port = free_port()
    with launcher.listen_socket("127.0.0.1", port) as listener:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # accepted into the backlog, with nobody serving yet
        assert listener.getsockname()[1] == port


def test_it_shows_loopback_for_wildcard_hosts() -> None:
    assert launcher.display_host("0.0.0.0") == "127.0.0.1"  # noqa: S104 - not binding
    assert launcher.display_host("::") == "[::1]"
    assert launcher.display_host("example.org") == "example.org"


def test_it_gives_children_an_absolute_home_and_the_settings(tmp_path: Path) -> None:
    env = launcher.child_env(
        home=tmp_path, settings_module="labbook.settings", base_url="http://127.0.0.1:9/"
    )
    assert env["LABBOOK_HOME"] == str(tmp_path) and Path(env["LABBOOK_HOME"]).is_absolute()
    assert env["DJANGO_SETTINGS_MODULE"] == "labbook.settings"
    assert env["PATH"] == os.environ["PATH"]


def test_it_runs_the_web_server_worker_and_beat(tmp_path: Path) -> None:
    specs = launcher.child_specs(listen_fd=7, home=tmp_path, access_log=False)
    assert [spec.name for spec in specs] == ["web server", "Celery worker", "Celery beat"]
    web, worker, beat = specs
    assert web.argv[0] == sys.executable and "--no-access-log" in web.argv
    assert web.argv[web.argv.index("--fd") + 1] == "7" and web.pass_fds == (7,)
    assert "--pool" in worker.argv and str(tmp_path / "celerybeat-schedule") in beat.argv
    assert worker.pass_fds == beat.pass_fds == ()


def test_the_children_keep_their_banners_and_info_lines_to_themselves_unless_verbose(
    tmp_path: Path,
) -> None:
    """Celery's worker and beat banners (~35 lines) buried the first password: quiet (-q)
    and WARNING by default, so warnings and errors still show; --verbose as before."""
    web, worker, beat = launcher.child_specs(listen_fd=7, home=tmp_path, access_log=False)
    for celery in (worker, beat):
        assert "-q" in celery.argv[: celery.argv.index("-A") + 3]
        assert celery.argv[celery.argv.index("--loglevel") + 1] == "WARNING"
    assert web.argv[web.argv.index("--log-level") + 1] == "warning"
    web, worker, beat = launcher.child_specs(
        listen_fd=7, home=tmp_path, access_log=False, verbose=True
    )
    for celery in (worker, beat):
        assert "-q" not in celery.argv
        assert celery.argv[celery.argv.index("--loglevel") + 1] == "INFO"
    assert web.argv[web.argv.index("--log-level") + 1] == "info" and "--no-access-log" in web.argv
    (web, *_) = launcher.child_specs(listen_fd=7, home=tmp_path, access_log=True)
    assert web.argv[web.argv.index("--log-level") + 1] == "info"
    assert "--no-access-log" not in web.argv


def test_a_quiet_worker_still_shows_its_errors_and_no_banner(tmp_path: Path) -> None:
    """The real worker, as `up` runs it by default, with a broker that is not there: its
    ERROR lines (cannot connect, retrying) come through; its banner does not."""
    _, worker, _ = launcher.child_specs(listen_fd=7, home=tmp_path, access_log=False)
    env = launcher.child_env(
        home=tmp_path, settings_module="labbook.settings", base_url="http://127.0.0.1:9/"
    )
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env.pop("DATABASE_URL", None)
    tail = launcher.OutputTail(limit=65536)
    child = launcher.spawn(worker, env=env, cwd=Path(__file__).resolve().parents[1], output=tail)
    try:
        assert wait_until(lambda: "Cannot connect" in "\n".join(tail.lines(200)), timeout=60), (
            tail.lines()
        )
    finally:
        launcher.stop_all([child])
    output = "\n".join(tail.lines(200))
    assert "ERROR/MainProcess] consumer: Cannot connect to redis://" in output
    for banner in ("-------------- celery@", "[config]", ".> app:", "[tasks]", "INFO/"):
        assert banner not in output, banner


def test_the_crash_hook_replaces_only_the_child_it_names(tmp_path: Path) -> None:
    specs = launcher.child_specs(listen_fd=7, home=tmp_path, access_log=False)
    assert launcher.crash_on_purpose(specs, None) == specs
    web, worker, beat = launcher.crash_on_purpose(specs, "worker")
    assert (web, beat) == (specs[0], specs[2])
    done = subprocess.run(worker.argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == launcher.CRASH_CODE
    assert "LABBOOK_CRASH_CHILD=worker" in done.stderr
    with pytest.raises(ValueError, match="LABBOOK_CRASH_CHILD must be one of web, worker, beat"):
        launcher.crash_on_purpose(specs, "db")


def test_it_reports_no_answer_where_nothing_listens() -> None:
    status, reason = launcher.http_get(f"http://127.0.0.1:{free_port()}/healthz")
    assert status is None and reason


def test_the_web_server_believes_forwarded_headers_only_from_trusted_proxies(tmp_path: Path):
    (web, *_) = launcher.child_specs(listen_fd=7, home=tmp_path, access_log=False)
    assert "--no-proxy-headers" in web.argv and "--forwarded-allow-ips" not in web.argv
    (web, *_) = launcher.child_specs(
        listen_fd=7, home=tmp_path, access_log=False, trusted_proxies=["10.0.0.5", "10.1.0.0/16"]
    )
    assert web.argv[web.argv.index("--forwarded-allow-ips") + 1] == "10.0.0.5,10.1.0.0/16"
    assert "--proxy-headers" in web.argv
