"""Start and supervise the processes ``manage.py up`` runs: web server, Celery worker, beat.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only
``up``, which then stops the children in order; stopping a child signals its
whole process group, so nothing it forked survives it. On Linux each child
also asks the kernel for SIGTERM when ``up`` dies, so even a SIGKILLed ``up``
leaves no orphans behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STOP_TIMEOUT = 10.0


class PortUnavailable(Exception):
    """The web server could not listen where it was asked to."""


@dataclass(frozen=True)
class ChildSpec:
    name: str  # how messages call it: "web server", "Celery worker", "Celery beat"
    argv: tuple[str, ...]


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen


# --- What to run --------------------------------------------------------------------


def child_specs(*, host: str, port: int, home: Path, access_log: bool) -> list[ChildSpec]:
    python = sys.executable
    web = [python, "-m", "uvicorn", "reports_app.asgi:application", "--host", host]
    web += ["--port", str(port), "--lifespan", "off", "--timeout-graceful-shutdown", "5"]
    # uvicorn logs requests at INFO, so an access log needs that level.
    web += ["--log-level", "info"] if access_log else ["--log-level", "warning", "--no-access-log"]
    celery = [python, "-m", "celery", "-A", "reports_app"]
    worker = [*celery, "worker", "--loglevel", "INFO", "--pool", "threads", "--concurrency", "4"]
    worker += ["--without-gossip", "--without-mingle"]
    beat = [*celery, "beat", "--loglevel", "INFO", "-s", str(home / "celerybeat-schedule")]
    return [
        ChildSpec("web server", tuple(web)),
        ChildSpec("Celery worker", tuple(worker)),
        ChildSpec("Celery beat", tuple(beat)),
    ]


def child_env(*, home: Path, settings_module: str, base_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LABBOOK_HOME=str(home), DJANGO_SETTINGS_MODULE=settings_module)
    # Links in the API and in notifications should point where this server listens.
    env.setdefault("BASE_URL", base_url.rstrip("/"))
    env.setdefault("PYTHONUNBUFFERED", "1")  # log lines reach the terminal as they happen
    return env


def port_check(host: str, port: int) -> None:
    """Raise ``PortUnavailable`` unless ``host:port`` can be bound now, as uvicorn will."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise PortUnavailable(f"cannot resolve host {host!r}: {error.strerror}") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as error:
            raise PortUnavailable(_bind_error(host, port, error)) from None


def _bind_error(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another Labbook or web server?)."
            " Stop it, or choose another port with --port."
        )
    return f"cannot listen on {host}:{port}: {error.strerror}"


def display_host(host: str) -> str:
    """The host to put in URLs: a wildcard address is reachable on loopback."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


# --- Running --------------------------------------------------------------------------


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)  # (a signal to ourselves would meet the parent's Python handlers)

    return preexec


def spawn(spec: ChildSpec, *, env: dict[str, str], cwd: Path) -> Child:
    process = subprocess.Popen(  # noqa: S603 - argv built by child_specs, no shell
        spec.argv, env=env, cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent()
    )
    return Child(spec, process)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, in place of their default behaviour."""
    stopping = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stopping


def first_exited(children: list[Child]) -> Child | None:
    return next((child for child in children if child.process.poll() is not None), None)


def stop_all(children: list[Child], *, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every child's process group; SIGKILL what is still there after ``timeout``."""
    _signal_groups(children, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(deadline - time.monotonic(), 0))
    _signal_groups(children, signal.SIGKILL)
    for child in children:
        child.process.wait()


def _signal_groups(children: list[Child], signum: int) -> None:
    # A child that has exited may still lead a group with live grandchildren.
    for child in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signum)


def exit_description(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


# --- Waiting for the web server ---------------------------------------------------------

# Loopback requests must not go through an HTTP proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, *, timeout: float = 2.0) -> tuple[int | None, str]:
    """(status, body) of ``GET url``; (None, the reason) when nothing answers."""
    try:
        with _opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return None, str(getattr(error, "reason", error))


def wait_healthy(
    url: str, *, timeout: float, give_up: Callable[[], bool], interval: float = 0.25
) -> tuple[int | None, str]:
    """Poll ``url`` until it answers 200, ``give_up()`` is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = http_get(url)
        if status == 200 or give_up() or time.monotonic() > deadline:
            return status, body
        time.sleep(interval)
