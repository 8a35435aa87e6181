"""Start and supervise the processes ``manage.py up`` runs: web server, Celery worker, beat.

``up`` is a supervisor, not a fuse: a child that exits is restarted after a
backoff (``RestartPolicy``: 1 s, 2 s, 4 s ... up to 30 s, back to 1 s once it
has stayed up 10 s; the web server's first restart is immediate), and ``up``
gives up, stopping the others, only when one child keeps dying (5 exits
within 2 minutes).

Each child runs in its own session, so a Ctrl-C in the terminal reaches only
``up``, which then stops the children in order; stopping a child signals its
whole process group, so nothing it forked survives it. On Linux each child
also asks the kernel for SIGTERM when ``up`` dies, so even a SIGKILLed ``up``
leaves no orphans behind.

``up`` itself holds the web server's listening socket and hands it down
(``uvicorn --fd``): while a web server restarts, connections wait in the
socket's backlog instead of being refused, and nothing else can take the port.
Children's output goes through ``up`` (``OutputTail``), forwarded as it comes,
so that when ``up`` gives up it can show the last lines the failing child wrote.
Unless ``verbose`` (``up --verbose``), the children say only what needs a look:
the worker and beat run quiet (no Celery banners) at WARNING, the web server at
warning; errors, warnings and crashes still reach the terminal.

One ``up`` per LABBOOK_HOME (``HomeLock``): two would run two workers and two
beats on one database, and every scheduled task twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STOP_TIMEOUT = 10.0
LISTEN_BACKLOG = 2048  # uvicorn's own default

# A fault hook for the supervisor's tests, and for trying it by hand: with
# LABBOOK_CRASH_CHILD=web|worker|beat, `up` runs that child as a process that
# writes one line and exits with code 3, every time it is started.
CRASH_VARIABLE = "LABBOOK_CRASH_CHILD"
CRASH_CODE = 3


class PortUnavailable(Exception):
    """The web server could not listen where it was asked to."""


@dataclass(frozen=True)
class ChildSpec:
    key: str  # "web", "worker", "beat": what LABBOOK_CRASH_CHILD names
    name: str  # how messages call it: "web server", "Celery worker", "Celery beat"
    argv: tuple[str, ...]
    pass_fds: tuple[int, ...] = ()  # the listening socket, for the web server


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    readers: list[threading.Thread] = field(default_factory=list)  # forwarding its output

    def output_done(self, timeout: float = 2.0) -> None:
        """Wait until what it wrote before exiting has been forwarded (and kept)."""
        deadline = time.monotonic() + timeout
        for reader in self.readers:
            reader.join(max(deadline - time.monotonic(), 0))


# --- What to run --------------------------------------------------------------------


def child_specs(
    *,
    listen_fd: int,
    home: Path,
    access_log: bool,
    trusted_proxies: Sequence[str] = (),
    verbose: bool = False,
) -> list[ChildSpec]:
    """The web server, worker and beat; ``verbose`` lets them print their banners and INFO."""
    python = sys.executable
    web = [python, "-m", "uvicorn", "labbook.asgi:application", "--fd", str(listen_fd)]
    web += ["--lifespan", "off", "--timeout-graceful-shutdown", "5"]
    # uvicorn believes X-Forwarded-* from 127.0.0.1 by default: any local program could
    # then claim any client address. Only the proxies of TRUSTED_PROXIES are believed.
    if trusted_proxies:
        web += ["--proxy-headers", "--forwarded-allow-ips", ",".join(trusted_proxies)]
    else:
        web += ["--no-proxy-headers"]
    # uvicorn logs requests at INFO, so an access log needs that level.
    web += ["--log-level", "info" if access_log or verbose else "warning"]
    web += [] if access_log else ["--no-access-log"]
    # Quiet (-q): no banner (~25 lines from the worker, ~10 from beat), and no INFO lines
    # (connected, ready, every task sent, received and done); warnings and errors stay.
    celery = [python, "-m", "celery", "-A", "labbook", *([] if verbose else ["-q"])]
    level = "INFO" if verbose else "WARNING"
    worker = [*celery, "worker", "--loglevel", level, "--pool", "threads", "--concurrency", "4"]
    worker += ["--without-gossip", "--without-mingle"]
    beat = [*celery, "beat", "--loglevel", level, "-s", str(home / "celerybeat-schedule")]
    return [
        ChildSpec("web", "web server", tuple(web), pass_fds=(listen_fd,)),
        ChildSpec("worker", "Celery worker", tuple(worker)),
        ChildSpec("beat", "Celery beat", tuple(beat)),
    ]


def crash_on_purpose(specs: list[ChildSpec], key: str | None) -> list[ChildSpec]:
    """The specs, with the child named ``key`` (LABBOOK_CRASH_CHILD) replaced by one that fails."""
    if key and key not in {spec.key for spec in specs}:
        names = ", ".join(spec.key for spec in specs)
        raise ValueError(f"{CRASH_VARIABLE} must be one of {names}, got {key!r}")
    code = (
        f"import sys; sys.stderr.write('crashing on purpose: {CRASH_VARIABLE}={key}\\n');"
        f" sys.exit({CRASH_CODE})"
    )
    return [
        ChildSpec(spec.key, spec.name, (sys.executable, "-c", code)) if spec.key == key else spec
        for spec in specs
    ]


def child_env(*, home: Path, settings_module: str, base_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LABBOOK_HOME=str(home), DJANGO_SETTINGS_MODULE=settings_module)
    # Links in the API and in notifications should point where this server listens.
    env.setdefault("BASE_URL", base_url.rstrip("/"))
    env.setdefault("PYTHONUNBUFFERED", "1")  # log lines reach the terminal as they happen
    return env


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` for the web server to inherit; ``PortUnavailable``."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise PortUnavailable(f"cannot resolve host {host!r}: {error.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as error:
        sock.close()
        raise PortUnavailable(_bind_error(host, port, error)) from None
    return sock


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


# --- One `up` per home -----------------------------------------------------------------


class HomeBusy(Exception):
    """Another ``up`` holds the home's lock."""

    def __init__(self, pid: int | None, url: str | None) -> None:
        super().__init__(f"held by PID {pid} ({url})")
        self.pid = pid
        self.url = url


class HomeLock:
    """An exclusive ``flock`` on a file in the home, holding the owner's PID and URL.

    The kernel releases the lock when the process dies, however it dies (even
    SIGKILL), so a lock file left behind never blocks the next start. The file
    descriptor is not inherited by children: the lock is ``up``'s alone.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, url: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HomeBusy(*self.owner()) from None
        # Written in place, then cut to length: a reader never sees an empty file.
        data = json.dumps({"pid": os.getpid(), "url": url}).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        self._fd = fd

    def owner(self) -> tuple[int | None, str | None]:
        """(PID, URL) written by the holder; None for what cannot be read."""
        try:
            found = json.loads(self.path.read_text())
            return int(found["pid"]), str(found["url"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor releases the flock


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


class OutputTail:
    """The last ``limit`` bytes a child wrote, kept for the message when ``up`` gives up on it."""

    def __init__(self, limit: int = 8192) -> None:
        self.limit = limit
        self._data = bytearray()
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            del self._data[: max(len(self._data) - self.limit, 0)]

    def lines(self, count: int = 20) -> list[str]:
        with self._lock:
            text = self._data.decode(errors="replace")
        return [line.rstrip() for line in text.splitlines() if line.strip()][-count:]


def _forward(source: BinaryIO, sink: BinaryIO, tail: OutputTail) -> None:
    """Copy a child's pipe to ``sink`` as bytes arrive (not whole lines), and into ``tail``.

    Reading never stops while the child lives, whatever happens to ``sink``
    (closed terminal, full disk): a child blocked on a full pipe would hang.
    """
    with source:
        while chunk := os.read(source.fileno(), 65536):
            tail.add(chunk)
            with contextlib.suppress(OSError, ValueError):
                sink.write(chunk)
                sink.flush()


def spawn(
    spec: ChildSpec, *, env: dict[str, str], cwd: Path, output: OutputTail | None = None
) -> Child:
    """Start ``spec``; with ``output``, its stdout and stderr pass through us into that tail."""
    pipe = subprocess.PIPE if output is not None else None
    process = subprocess.Popen(  # noqa: S603 - argv built by child_specs, no shell
        spec.argv,
        env=env,
        cwd=cwd,
        stdout=pipe,
        stderr=pipe,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent(),
        pass_fds=spec.pass_fds,
    )
    child = Child(spec, process)
    if output is not None:
        for source, sink in ((process.stdout, sys.stdout), (process.stderr, sys.stderr)):
            sink = getattr(sink, "buffer", sink)
            reader = threading.Thread(
                target=_forward, args=(source, sink, output), name=f"{spec.key}-output", daemon=True
            )
            reader.start()
            child.readers.append(reader)
    return child


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, in place of their default behaviour."""
    stopping = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stopping


def exited(child: Child) -> int | None:
    """The child's exit code (negative: the signal) once it has exited, else None.

    Its remains are cleared first: the kernel keeps an exited child's PID
    until it is reaped, so its process group is SIGKILLed (anything it forked
    goes with it) while that group id cannot yet belong to anyone else.
    """
    if child.process.returncode is not None:
        return child.process.returncode
    try:
        info = os.waitid(os.P_PID, child.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        pass  # already reaped
    else:
        if info is None:
            return None
    _signal_groups([child], signal.SIGKILL)
    return child.process.wait()


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


def short_exit(code: int) -> str:
    """3, SIGKILL: an exit code or the signal, for lists."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
        return f"signal {-code}"
    return str(code)


# --- Supervision ----------------------------------------------------------------------


@dataclass
class RestartPolicy:
    """When to restart a child that exited, and when to stop trying. Time is passed in.

    Each quick exit doubles the wait before the next start (``first_delay``,
    2x, 4x ... at most ``max_delay``); a child that stayed up ``stable_after``
    seconds had started properly, so its exit is a new incident and waits only
    ``first_delay`` (a killed web server must answer again within seconds).
    ``max_exits`` exits within ``window`` seconds mean it will not get better
    by itself, however long each run lasted: give up.
    """

    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 10.0
    max_exits: int = 5
    window: float = 120.0
    # The web server: the first restart of an incident is immediate (0 s, then
    # first_delay, 2x ...). Connections wait in ``up``'s socket meanwhile, so a
    # second of backoff would only be a second of every client waiting.
    immediate_first: bool = False
    exits: deque[tuple[float, int]] = field(default_factory=deque)  # (when, exit code)
    _quick_exits: int = 0

    def exited(self, *, code: int, started: float, now: float) -> float | None:
        """Seconds to wait before starting the child again; None: give up on it."""
        self.exits.append((now, code))
        while now - self.exits[0][0] > self.window:
            self.exits.popleft()
        if len(self.exits) >= self.max_exits:
            return None
        if now - started >= self.stable_after:
            self._quick_exits = 0
        quick = self._quick_exits - 1 if self.immediate_first else self._quick_exits
        self._quick_exits += 1
        return 0.0 if quick < 0 else min(self.first_delay * 2**quick, self.max_delay)

    def codes(self) -> list[int]:
        return [code for _, code in self.exits]

    def span(self) -> float:
        """Seconds between the first and the last exit counted."""
        return self.exits[-1][0] - self.exits[0][0] if self.exits else 0.0


def policy_for(spec: ChildSpec) -> RestartPolicy:
    return RestartPolicy(immediate_first=spec.key == "web")


@dataclass(frozen=True)
class GaveUp:
    """Why ``up`` stopped: which child kept dying, how, and what it last wrote."""

    spec: ChildSpec
    codes: list[int]
    span: float
    output: list[str]

    def message(self) -> str:
        codes = ", ".join(short_exit(code) for code in self.codes)
        lines = [
            f"labbook: the {self.spec.name} exited {len(self.codes)} times in"
            f" {self.span:.0f} s (exit codes {codes}); giving up and stopping the others"
        ]
        if self.output:
            lines.append(f"labbook: the last lines of the {self.spec.name}:")
            lines += [f"  | {line}" for line in self.output]
        return "\n".join(lines)


@dataclass
class _Slot:
    spec: ChildSpec
    policy: RestartPolicy
    output: OutputTail
    child: Child | None = None
    restart_at: float = 0.0


class Supervisor:
    """Keeps every child running: ``check()`` restarts the ones that exited, after their backoff.

    ``start`` spawns one child (given its spec and the tail its output goes
    to); ``say`` reports each exit in one line. Nothing here sleeps: the
    caller calls ``check()`` every fraction of a second.
    """

    def __init__(
        self,
        specs: list[ChildSpec],
        *,
        start: Callable[[ChildSpec, OutputTail], Child],
        say: Callable[[str], None],
        policy: Callable[[ChildSpec], RestartPolicy] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        policy = policy or policy_for
        self._slots = [_Slot(spec, policy(spec), OutputTail()) for spec in specs]
        self._start = start
        self._say = say
        self._clock = clock

    def start(self) -> None:
        for slot in self._slots:
            self._spawn(slot)

    def children(self) -> list[Child]:
        """The children running now (a child waiting for its restart is not one)."""
        return [slot.child for slot in self._slots if slot.child is not None]

    def check(self) -> GaveUp | None:
        """Restart what is due; a ``GaveUp`` when a child keeps dying (nothing is stopped here)."""
        now = self._clock()
        for slot in self._slots:
            if slot.child is None:
                if now >= slot.restart_at:
                    self._spawn(slot)
                continue
            code = exited(slot.child)
            if code is None:
                continue
            child, slot.child = slot.child, None
            delay = slot.policy.exited(code=code, started=child.started, now=now)
            if delay is None:
                child.output_done()
                policy = slot.policy
                return GaveUp(slot.spec, policy.codes(), policy.span(), slot.output.lines())
            what = exit_description(code)
            self._say(f"labbook: the {slot.spec.name} {what}; restarting in {delay:g} s")
            slot.restart_at = now + delay
        return None

    def stop(self, *, timeout: float = STOP_TIMEOUT) -> None:
        stop_all(self.children(), timeout=timeout)

    def _spawn(self, slot: _Slot) -> None:
        slot.child = self._start(slot.spec, slot.output)
        slot.child.started = self._clock()


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
