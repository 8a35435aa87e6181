"""The supervision pieces behind `manage.py up`, on small real child processes."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from reports_app import launcher
from tests.support import free_port, wait_until


def python_child(tmp_path: Path, code: str) -> launcher.Child:
    spec = launcher.ChildSpec("test child", (sys.executable, "-c", code))
    return launcher.spawn(spec, env=dict(os.environ), cwd=tmp_path)


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_it_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = python_child(
        tmp_path,
        "import pathlib, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(60)\n",
    )
    assert wait_until(ready.exists, timeout=10)
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
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text(), timeout=10)
    launcher.stop_all([child], timeout=5)
    assert wait_until(lambda: gone(int(pidfile.read_text())), timeout=5)


def test_it_finds_the_child_that_exited(tmp_path: Path) -> None:
    quitter = python_child(tmp_path, "raise SystemExit(3)")
    sleeper = python_child(tmp_path, "import time; time.sleep(60)")
    try:
        assert wait_until(lambda: launcher.first_exited([sleeper, quitter]) is quitter, timeout=10)
        assert launcher.exit_description(quitter.process.returncode) == "exited with code 3"
    finally:
        launcher.stop_all([sleeper, quitter])


def test_it_names_the_signal_that_killed_a_child() -> None:
    assert launcher.exit_description(-9) == "was killed by SIGKILL"


def test_it_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(launcher.PortUnavailable, match=f"port {port} .* already in use"):
            launcher.port_check("127.0.0.1", port)


def test_it_accepts_a_free_port() -> None:
    launcher.port_check("127.0.0.1", free_port())


def test_it_shows_loopback_for_wildcard_hosts() -> None:
    assert launcher.display_host("0.0.0.0") == "127.0.0.1"  # noqa: S104 - not binding
    assert launcher.display_host("::") == "[::1]"
    assert launcher.display_host("example.org") == "example.org"


def test_it_gives_children_an_absolute_home_and_the_settings(tmp_path: Path) -> None:
    env = launcher.child_env(
        home=tmp_path, settings_module="reports_app.settings", base_url="http://127.0.0.1:9/"
    )
    assert env["LABBOOK_HOME"] == str(tmp_path) and Path(env["LABBOOK_HOME"]).is_absolute()
    assert env["DJANGO_SETTINGS_MODULE"] == "reports_app.settings"
    assert env["PATH"] == os.environ["PATH"]


def test_it_runs_the_web_server_worker_and_beat(tmp_path: Path) -> None:
    specs = launcher.child_specs(host="127.0.0.1", port=8123, home=tmp_path, access_log=False)
    assert [spec.name for spec in specs] == ["web server", "Celery worker", "Celery beat"]
    web, worker, beat = (spec.argv for spec in specs)
    assert web[0] == sys.executable and "--no-access-log" in web and "8123" in web
    assert "--pool" in worker and str(tmp_path / "celerybeat-schedule") in beat


def test_it_reports_no_answer_where_nothing_listens() -> None:
    status, reason = launcher.http_get(f"http://127.0.0.1:{free_port()}/healthz")
    assert status is None and reason
