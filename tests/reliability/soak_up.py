"""Soak `manage.py up` itself: mixed load, faults on a schedule, then count everything.

Used by ``tests/reliability/test_soak_up.py`` (about 3 minutes, in CI) and by
``tests/benchmarks/soak_up.py`` (``--minutes 30``, on demand). One soak:

1. Makes a throwaway LABBOOK_HOME (on the services shape also a throwaway
   PostgreSQL database and a private redis-server, or DB 14 of a given Redis)
   and starts ``python manage.py up --port <free>`` with beat ticking every
   second (``ALERTS_SCAN_SECONDS=1``, ``ALERTS_SWEEP_SECONDS=1``), short
   delivery leases and retries, loopback webhooks allowed and no rate limits.
2. Reads the admin API token ``up`` prints on first start and, through the
   API, creates two projects, a webhook destination pointing at a loopback
   receiver and three rules with their default timing (``group_wait`` 30 s,
   ``notify_on_resolve``): ``run_failed`` on each project and
   ``metric_threshold`` (``spike > 100`` for 3 points) on the SDK project.
3. Runs the load for ``seconds``: SDK client processes
   (``soak_up_sdk_client``: runs back to back, one in ten failed, one in ten
   crossing the threshold and coming back) and mlflow client processes
   (``soak_up_mlflow_client``: ``synchronous=False``, out-of-order steps,
   log_batch chunks last-first, ``log_metric`` without a step, explicit
   millisecond timestamps, one run in ten ``FAILED``). Each client writes
   what it sent, per run, as JSON lines. A thread polls ``/healthz`` every
   0.1 s; another watches ``up``'s children in /proc.
4. Injects faults on a schedule, a cycle every ``cycle_seconds``: empty,
   truncated and garbage ``*.celery.msg`` files in ``$LABBOOK_HOME/queue``
   (embedded shape only), SIGKILL of the Celery worker, of beat and of the web
   server (``up``'s children, found through /proc).
5. Lets the clients finish, then waits (up to ``settle_timeout``) until every
   failed run and every threshold run has been notified, no notification is
   pending or sending and no injected file is left in the queue, then a quiet
   period for anything sent twice.
6. Checks, and reports every violation by check, subject, expected and got:

   - ``points``: per run and key, the stored points (read with SQL) are the
     multiset of (step, value, timestamp ms) the client sent: counts, sums,
     and each point, with moved and replaced points named.
   - ``read-back``: the REST history (SDK runs) and MLflow's ``get-history``
     (mlflow runs) answer what the database holds, timestamps to the ms.
   - ``runs``: every run exists once with the status its client gave it.
   - ``run_failed``: every failed run in exactly one delivery (deliveries told
     apart by ``Idempotency-Key``), no other run. Order is promised per alert
     (a "resolved" never overtakes its "fired", checked under ``threshold``),
     not across alerts: a delivery retried after a worker kill may arrive
     after a later alert's, so the figure ``order across alerts`` counts those.
   - ``threshold``: every spike run's alert fired once and resolved once,
     fired received before resolved; no other run alerted.
   - ``signature``, ``outbox`` (nothing pending, sending or failed), ``queue``
     (no injected file left in the queue), ``restarts`` (``up`` brought back
     every child it lost), ``up`` (alive at the end, exits 0 on SIGTERM),
     ``healthz`` (polls fail only at a web kill, and /healthz answers 200
     again within 5 s of each), ``clients`` (exited 0, nothing left in a
     spool, no operation given up), ``server-errors`` (every 500 and every
     Celery task that raised, from `up`'s output, by path and exception).

   The report (``report.txt``) and every violation in full
   (``violations.txt``) are written to the work directory, next to `up`'s
   output (``up.log``), each client's log and records, and the failed or slow
   /healthz polls (``healthz-failed-or-slow.jsonl``).

Nothing here asserts on wall-clock time except the 5 s outage rule; everything
else waits on a condition under a generous ceiling.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from labbook.launcher import http_get
from tests.alerts.receiver import Received, Receiver, Reply

ROOT = Path(__file__).resolve().parents[2]
TEAM = "default"  # the team `up` makes for its first administrator
SDK_PROJECT = f"{TEAM}/soak-sdk"
MLFLOW_PROJECT = f"{TEAM}/soak-mlflow"
SPIKE_KEY, THRESHOLD, FOR_POINTS = "spike", 100.0, 3
WEBHOOK_SECRET = "soak-webhook-secret-" + "x" * 24
OUTAGE_LIMIT = 5.0  # the rule: web restarts answer again within 5 s
POLL_EVERY, POLL_TIMEOUT, SLOW_POLL = 0.1, OUTAGE_LIMIT, 1.0
START_TIMEOUT = 180.0  # `up` migrates a fresh database first
CHILD_TIMEOUT = 60.0  # how long a fault waits for `up` to have the child it kills
QUIET = 5.0  # after settling: anything sent twice arrives now
UP_STOP_TIMEOUT = 60.0
EXAMPLES = 12  # violations shown per check

UP_ENV = {
    "ALERTS_SCAN_SECONDS": "1",  # beat ticks every second
    "ALERTS_SWEEP_SECONDS": "1",
    "ALERTS_RETRY_BASE_SECONDS": "1",
    "ALERTS_LEASE_SECONDS": "5",
    "ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1",  # the receiver is on loopback
    "INGEST_THROTTLE_RATE": "0",  # the soak is about faults, not rate limits
    "API_THROTTLE_RATE": "0",
    "LOG_LEVEL": "INFO",
}
ROLES = ("web", "worker", "beat")
QUEUE_FAULTS = ("empty", "truncated", "garbage", "burst")
ALL_FAULTS = ("queue", "worker", "beat", "web")
# One cycle of faults, at these fractions of the cycle: (fraction, what).
CYCLE = (
    (0.05, "queue:empty"),
    (0.12, "kill:worker"),
    (0.25, "queue:truncated"),
    (0.35, "kill:beat"),
    (0.45, "queue:garbage"),
    (0.55, "kill:web"),
    (0.70, "kill:worker"),
    (0.70, "queue:burst"),  # empty, truncated, garbage and a good one, while the worker is down
    (0.85, "kill:web"),
)


# --- Configuration and results ----------------------------------------------------------


@dataclass
class SoakConfig:
    seconds: float = 120.0  # load phase
    services: bool = False  # PostgreSQL + Redis instead of the embedded default
    database_server: str = ""  # services: postgres://user@host:port, where lb_soak_* is made
    redis_url: str = ""  # services: use DB 14 of this Redis instead of a private redis-server
    sdk_clients: int = 3
    mlflow_clients: int = 2
    sdk_steps: int = 200
    sdk_pause: float = 0.01
    faults: tuple[str, ...] = ALL_FAULTS
    cycle_seconds: float = 180.0
    # MLflow stores every ``log_metric`` without a step at step 0, several per key; Labbook
    # keeps one point per (run, key, step). True: expect step 0 for each, as MLflow does
    # (the "exact step"); False: expect each (value, timestamp) once, at any step.
    nostep_at_step_zero: bool = True
    read_back_runs: int = 400  # runs read back through the API (an even sample of them all)
    settle_timeout: float = 240.0
    client_timeout: float = 300.0  # after the load phase, for clients to finish their last run
    workdir: Path | None = None  # default: a fresh /tmp/lb-soak-* (kept when something failed)
    keep: bool = False
    progress: Callable[[str], None] = print
    progress_every: float = 10.0


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str
    message: str
    group: str = ""  # e.g. "mlflow/ooo": the report counts violations per group

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.message}"


@dataclass
class Fault:
    at: float  # seconds since the load started
    wall: float
    kind: str  # "kill:web", "queue:garbage", ...
    detail: str = ""
    pid: int | None = None
    restarted_after: float | None = None  # kills: seconds until up had a new child of that role
    healthy_after: float | None = None  # web kills: seconds until /healthz answered 200


@dataclass
class SoakResult:
    config: SoakConfig
    workdir: Path
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def report(self) -> str:
        lines = [f"soak of `manage.py up` ({self.figures.get('shape', '?')}), in {self.workdir}"]
        width = max((len(name) for name in self.figures), default=0)
        lines += [f"  {name.ljust(width)}  {value}" for name, value in self.figures.items()]
        if self.faults:
            lines.append("  faults:")
            for fault in self.faults:
                lines.append(f"    {describe_fault(fault)}")
        if not self.violations:
            lines.append("no violations")
            return "\n".join(lines)
        by_check: dict[str, list[Violation]] = defaultdict(list)
        for violation in self.violations:
            by_check[violation.check].append(violation)
        lines.append(f"{len(self.violations)} violations:")
        for check, found in by_check.items():
            groups = Counter(v.group for v in found if v.group)
            per_group = f" ({', '.join(f'{g} {n}' for g, n in sorted(groups.items()))})"
            lines.append(f"  {check}: {len(found)}" + (per_group if groups else ""))
            for violation in examples(found):
                lines.append(f"    {violation.subject}: {violation.message}")
            if len(found) > EXAMPLES:
                lines.append(f"    ... and {len(found) - EXAMPLES} more")
        lines.append(f"every violation is in {self.workdir / 'violations.txt'}")
        return "\n".join(lines)

    def write(self) -> None:
        """report.txt and violations.txt (every one, in full) in the work directory."""
        with contextlib.suppress(OSError):
            (self.workdir / "report.txt").write_text(self.report() + "\n")
            text = "".join(f"{violation}\n" for violation in self.violations)
            (self.workdir / "violations.txt").write_text(text)


def examples(found: list[Violation]) -> list[Violation]:
    """Up to EXAMPLES violations, taken in turn from each group so that every group shows."""
    groups: dict[str, list[Violation]] = defaultdict(list)
    for violation in found:
        groups[violation.group].append(violation)
    picked: list[Violation] = []
    for rank in range(EXAMPLES):
        for members in groups.values():
            if rank < len(members) and len(picked) < EXAMPLES:
                picked.append(members[rank])
    return sorted(picked, key=found.index)


def describe_fault(fault: Fault) -> str:
    text = f"{fault.at:7.1f}s  {fault.kind}"
    if fault.pid:
        text += f" (pid {fault.pid})"
    if fault.detail:
        text += f" {fault.detail}"
    if fault.kind.startswith("kill:"):
        restarted = "never" if fault.restarted_after is None else f"{fault.restarted_after:.1f}s"
        text += f"; new child after {restarted}"
        if fault.kind == "kill:web":
            healthy = "never" if fault.healthy_after is None else f"{fault.healthy_after:.1f}s"
            text += f", /healthz 200 after {healthy}"
    return text


# --- Processes, from /proc ----------------------------------------------------------------


def proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every visible process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> set[int]:
    table = proc_table()
    found: set[int] = set()
    parents = {pid}
    while parents:
        children = {p for p, (ppid, _) in table.items() if ppid in parents}
        found |= children
        parents = children
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def role_of(command: str) -> str | None:
    if "uvicorn" in command:
        return "web"
    if "celery" in command and " worker" in command:
        return "worker"
    if "celery" in command and " beat" in command:
        return "beat"
    return None


def children_by_role(up_pid: int) -> dict[str, int]:
    """The live web, worker and beat children of ``up`` (zombies left out)."""
    table = proc_table()
    found = {}
    for pid, (ppid, state) in table.items():
        if ppid == up_pid and state != "Z":
            role = role_of(cmdline(pid))
            if role:
                found[role] = pid
    return found


def kill_tree(pid: int) -> None:
    for child in descendants(pid) | {pid}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)


@contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


# --- The services shape -----------------------------------------------------------------------


@contextmanager
def throwaway_database(server: str) -> Iterator[str]:
    """A fresh PostgreSQL database lb_soak_<hex> on ``server``, dropped at the end."""
    import psycopg

    name = f"lb_soak_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def soak_redis(redis_url: str, directory: Path) -> Iterator[str]:
    """A private redis-server when there is one on PATH, else DB 14 of ``redis_url``, flushed."""
    if shutil.which("redis-server"):
        from tests.workers import RedisServer

        with RedisServer(directory) as server:
            yield server.url
        return
    if not redis_url:
        raise RuntimeError("no redis-server on PATH and no Redis URL given")
    import redis

    parts = urlsplit(redis_url)
    url = urlunsplit((parts.scheme, parts.netloc, "/14", "", ""))
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()


def server_of(database_url: str) -> str:
    """postgres://user@host:port/db -> postgres://user@host:port."""
    parts = urlsplit(database_url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


# --- `up` ------------------------------------------------------------------------------------


class Up:
    """``python manage.py up`` as a subprocess on a free port, output in ``up.log``."""

    def __init__(self, home: Path, log: Path, env: dict[str, str]) -> None:
        from tests.support import free_port

        self.home, self.log_path = home, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        drop = {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "LABBOOK_HOME"}
        self.env = {k: v for k, v in os.environ.items() if k not in drop}
        self.env.update(
            LABBOOK_HOME=str(home),
            DJANGO_SETTINGS_MODULE="labbook.settings",
            PYTHONUNBUFFERED="1",
            NO_PROXY="127.0.0.1,localhost",
            **UP_ENV,
            **env,
        )
        self.process: subprocess.Popen | None = None
        self.token = ""

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "up", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the soak reaches the soak, not `up`
            )
        running = f"Labbook is running at {self.url}/"
        deadline = time.monotonic() + START_TIMEOUT
        while running not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`up` did not start:\n{self.tail(60)}")
            time.sleep(0.2)
        found = re.search(r"API token +(lb_\S+)", self.output())
        if not found:
            raise RuntimeError(f"`up` printed no API token:\n{self.tail(60)}")
        self.token = found.group(1)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self) -> int | None:
        """SIGTERM; the exit code, or None when it had to be SIGKILLed after UP_STOP_TIMEOUT."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=UP_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                kill_tree(self.process.pid)
                self.process.wait(timeout=30)
                return None
        return self.process.returncode

    def kill(self) -> None:
        """Leave nothing behind, whatever state `up` is in."""
        if self.process is not None:
            kill_tree(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, trust_env=False)


# --- Watching: /healthz, up's children, the webhook receiver ---------------------------------

# Loopback requests must not go through an HTTP proxy from the environment.


@dataclass(frozen=True)
class Poll:
    started: float  # monotonic
    ended: float
    status: int | None
    reason: str = ""
    wall: float = 0.0  # time.time() when it started


@dataclass
class Outage:
    started: float  # monotonic: the first failed poll began
    ended: float | None  # the next good poll answered; None: never came back
    polls: int
    reasons: list[str]
    first_failed: float  # when the first failed poll ended

    def since(self, kills: list[float]) -> float:
        """When it began: at a web kill that came while its first failed poll was waiting."""
        during = [kill for kill in kills if self.started <= kill <= self.first_failed]
        return max(during) if during else self.started

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started


class HealthPoller(threading.Thread):
    """GET /healthz every POLL_EVERY seconds; every answer kept (status, timing)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="healthz-poller")
        self.url = url + "/healthz"
        self.polls: list[Poll] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            started, wall = time.monotonic(), time.time()
            status, body = http_get(self.url, timeout=POLL_TIMEOUT)
            ended = time.monotonic()
            reason = "" if status == 200 else (body or "")[:200]
            self.polls.append(Poll(started, ended, status, reason, wall))
            self.stopping.wait(max(0.0, POLL_EVERY - (ended - started)))

    def healthy_since(self, moment: float) -> float | None:
        """When the first 200 answer that began after ``moment`` came."""
        for poll in self.polls:
            if poll.started >= moment and poll.status == 200:
                return poll.ended
        return None

    def outages(self) -> list[Outage]:
        found: list[Outage] = []
        current: Outage | None = None
        for poll in list(self.polls):
            if poll.status == 200:
                if current is not None:
                    current.ended = poll.ended
                    found.append(current)
                    current = None
            elif current is None:
                reasons = [f"{poll.status}: {poll.reason}"]
                current = Outage(poll.started, None, 1, reasons, poll.ended)
            else:
                current.polls += 1
                if len(current.reasons) < 3:
                    current.reasons.append(f"{poll.status}: {poll.reason}")
        if current is not None:
            found.append(current)
        return found


class ChildMonitor(threading.Thread):
    """Samples ``up``'s children every 0.2 s: when each role got a new pid, and when up exited."""

    def __init__(self, up: Up) -> None:
        super().__init__(daemon=True, name="child-monitor")
        self.up = up
        self.current: dict[str, int] = {}
        self.appeared: list[tuple[float, str, int]] = []  # (monotonic, role, pid)
        self.up_exited_at: float | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        assert self.up.process is not None
        while not self.stopping.is_set():
            if self.up.process.poll() is not None:
                self.up_exited_at = time.monotonic()
                self.current = {}
                return
            now = children_by_role(self.up.process.pid)
            for role, pid in now.items():
                if self.current.get(role) != pid:
                    self.appeared.append((time.monotonic(), role, pid))
            self.current = now
            self.stopping.wait(0.2)

    def new_child_after(self, role: str, moment: float, old_pid: int) -> float | None:
        for seen, seen_role, pid in list(self.appeared):
            if seen_role == role and seen >= moment and pid != old_pid:
                return seen
        return None


class StampedReceiver(Receiver):
    """The loopback receiver, also noting when (time.time()) each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.received_at: list[float] = []

    def next_reply(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            self.received_at.append(time.time())
            return self._script.pop(0) if self._script else Reply()


@dataclass(frozen=True)
class Delivery:
    index: int  # receipt order
    at: float  # time.time() of receipt
    key: str  # Idempotency-Key: one notification, however many times it is sent
    event: str
    alerts: tuple[tuple[int, str, str, str], ...]  # (alert id, trigger, rule name, run name)
    signed: bool
    fired_at: dict[int, str] = field(default_factory=dict)  # alert id -> fired_at, as sent


def deliveries(receiver: StampedReceiver) -> list[Delivery]:
    found = []
    with receiver._lock:
        requests = list(zip(receiver.requests, receiver.received_at, strict=True))
    for index, (request, at) in enumerate(requests):
        try:
            body = json.loads(request.body)
        except ValueError:
            body = {}
        expected = (
            "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        )
        alerts = tuple(
            (a.get("id"), a.get("trigger"), a.get("rule"), (a.get("run") or {}).get("name"))
            for a in body.get("alerts") or []
        )
        found.append(
            Delivery(
                index=index,
                at=at,
                key=request.headers.get("idempotency-key", ""),
                event=body.get("event", "?"),
                alerts=alerts,
                signed=hmac.compare_digest(
                    request.headers.get("x-labbook-signature", ""), expected
                ),
                fired_at={a.get("id"): a.get("fired_at", "") for a in body.get("alerts") or []},
            )
        )
    return found


# --- Reading the database ------------------------------------------------------------------


class Database:
    """Read-only SQL on the soak's database (SQLite file or PostgreSQL URL)."""

    def __init__(self, *, sqlite_path: Path | None = None, postgres_url: str = "") -> None:
        self.sqlite_path, self.postgres_url = sqlite_path, postgres_url

    @contextmanager
    def connect(self) -> Iterator[Any]:
        if self.postgres_url:
            import psycopg

            with psycopg.connect(self.postgres_url) as conn:
                yield conn
        else:
            conn = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=60)
            try:
                yield conn
            finally:
                conn.close()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.postgres_url:
            sql = sql.replace("?", "%s")
        with self.connect() as conn:
            return list(conn.execute(sql, params).fetchall())

    def unsettled(self) -> dict[str, int]:
        """Notifications by status, for those not done: pending, sending, failed."""
        rows = self.query(
            "SELECT status, count(*) FROM alerts_notification"
            " WHERE status IN ('pending', 'sending', 'failed') GROUP BY status"
        )
        return dict(rows)

    def runs(self) -> dict[str, list[tuple[int, str]]]:
        """Run name -> [(id, status)] (a name twice is a violation)."""
        found: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for run_id, name, status in self.query("SELECT id, name, status FROM tracking_run"):
            found[name].append((run_id, status))
        return found

    def series(self) -> dict[int, dict[str, int]]:
        """Run id -> key -> series id."""
        found: dict[int, dict[str, int]] = defaultdict(dict)
        for series_id, run_id, key in self.query(
            "SELECT id, run_id, key FROM tracking_metricseries"
        ):
            found[run_id][key] = series_id
        return found

    def points(self, conn: Any, series_id: int) -> list[tuple[int, float | None, float]]:
        placeholder = "%s" if self.postgres_url else "?"
        sql = (
            'SELECT step, value, "timestamp" FROM tracking_metricpoint'
            f" WHERE series_id = {placeholder} ORDER BY step"
        )
        return list(conn.execute(sql, (series_id,)).fetchall())


def to_ms(stamp: float) -> int:
    """A stored timestamp (Unix seconds as a float; ms if a schema ever stores ms) in ms."""
    return int(stamp) if stamp > 1e11 else round(stamp * 1000)


# --- Clients ---------------------------------------------------------------------------------


@dataclass
class Client:
    name: str
    kind: str  # "sdk" | "mlflow"
    process: subprocess.Popen
    out: Path
    log: Path
    spool: Path | None = None

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        noise = ("View run ", "View experiment ")  # the mlflow client's chatter
        kept = [line for line in text.splitlines() if not any(n in line for n in noise)]
        return "\n".join(kept[-lines:])


def client_env(workdir: Path) -> dict[str, str]:
    drop = {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
        LABBOOK_HOME=str(workdir / "client-home"),
    )
    return env


def start_clients(config: SoakConfig, up: Up, workdir: Path) -> list[Client]:
    clients = []
    base = client_env(workdir)
    for n in range(config.sdk_clients):
        name = f"sdk{n}"
        spool = workdir / f"spool-{name}"
        env = {
            **base,
            "LABBOOK_SPOOL_DIR": str(spool),
            "LABBOOK_RETRY_SECONDS": "120",  # ride out restarts instead of spooling
            "LABBOOK_FINISH_TIMEOUT": "120",
            "LABBOOK_QUIET": "1",
        }
        command = [sys.executable, "-m", "tests.reliability.soak_up_sdk_client", up.url, up.token]
        command += [SDK_PROJECT, name, str(config.seconds), str(workdir / f"{name}.jsonl")]
        command += [str(config.sdk_steps), str(config.sdk_pause)]
        clients.append(spawn_client(name, "sdk", command, env, workdir, spool))
    for n in range(config.mlflow_clients):
        name = f"mlf{n}"
        env = {
            **base,
            "MLFLOW_TRACKING_URI": up.url,
            "MLFLOW_TRACKING_TOKEN": up.token,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "10",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
        }
        if n % 2 == 1:  # every other client lets mlflow merge its queued calls into batches
            env["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = "1"
        command = [sys.executable, "-m", "tests.reliability.soak_up_mlflow_client"]
        command += [MLFLOW_PROJECT, name, str(config.seconds), str(workdir / f"{name}.jsonl")]
        clients.append(spawn_client(name, "mlflow", command, env, workdir, None))
    return clients


def spawn_client(
    name: str, kind: str, command: list[str], env: dict[str, str], workdir: Path, spool: Path | None
) -> Client:
    log = workdir / f"{name}.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Client(name, kind, process, workdir / f"{name}.jsonl", log, spool)


def records(client: Client) -> Iterator[dict[str, Any]]:
    if not client.out.exists():
        return
    with client.out.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                with contextlib.suppress(ValueError):  # a line cut by a killed client
                    yield json.loads(line)


@dataclass(frozen=True)
class RunSent:
    """What the soak needs of a client's run record besides its points."""

    client: str
    kind: str
    name: str
    status: str
    spike: bool
    failed_at: float | None
    points: int


class SentRuns:
    """The runs the clients recorded so far (points left out), read incrementally."""

    def __init__(self, clients: list[Client]) -> None:
        self.clients = clients
        self.offsets: dict[str, int] = {}
        self.runs: list[RunSent] = []

    def refresh(self) -> list[RunSent]:
        for client in self.clients:
            if not client.out.exists():
                continue
            with client.out.open("rb") as lines:
                lines.seek(self.offsets.get(client.name, 0))
                data = lines.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line being written waits
            self.offsets[client.name] = self.offsets.get(client.name, 0) + len(complete)
            for line in complete.splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("kind") == "run":
                    self.runs.append(
                        RunSent(
                            client.name,
                            client.kind,
                            record["name"],
                            record["status"],
                            record["spike"],
                            record["failed_at"],
                            sum(len(p) for p in record["points"].values()),
                        )
                    )
        return list(self.runs)


def spool_left(spool: Path | None) -> int:
    """Records an SDK spool holds that were never uploaded."""
    if spool is None or not spool.is_dir():
        return 0
    left = 0
    for folder in spool.iterdir():
        records_file = folder / "records.jsonl"
        if not records_file.is_file():
            continue
        total = sum(1 for line in records_file.read_text().splitlines() if line.strip())
        progress = folder / "progress"
        done = int(progress.read_text() or 0) if progress.exists() else 0
        left += max(0, total - done)
    return left


# --- Faults -------------------------------------------------------------------------------------


def schedule(config: SoakConfig) -> list[tuple[float, str]]:
    """(seconds since start, fault) for the whole load phase: CYCLE repeated, scaled."""
    wanted = set(config.faults)
    if config.services:
        wanted.discard("queue")
    cycles = max(1, round(config.seconds / config.cycle_seconds))
    length = config.seconds / cycles
    plan = []
    for cycle in range(cycles):
        for fraction, kind in CYCLE:
            family = "queue" if kind.startswith("queue:") else kind.split(":")[1]
            if family in wanted:
                plan.append((cycle * length + fraction * length, kind))
    return plan


def message_template() -> bytes:
    """A real Celery message file for ``labbook.ping`` (harmless), as kombu writes it."""
    from celery import Celery

    with tempfile.TemporaryDirectory(prefix="lb-soak-msg-") as folder:
        app = Celery("soak", broker="filesystem://", set_as_current=False)
        app.conf.broker_transport_options = {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": folder,
        }
        app.conf.broker_connection_retry_on_startup = True
        app.send_task("labbook.ping")
        (message,) = Path(folder).glob("*.celery.msg")
        return message.read_bytes()


def queue_file_name() -> str:
    """Kombu's pattern ``<monotonic ms>_<uuid>.<queue>.msg``: sorted first, taken next."""
    return f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.celery.msg"


def queue_payloads(kind: str, template: bytes) -> list[tuple[str, bytes]]:
    empty = [("empty", b"")]
    truncated = [
        ("truncated-half", template[: len(template) // 2]),
        ("truncated-40", template[:40]),
    ]
    garbage = [
        ("garbage-binary", b"\x80\xff\x00" + os.urandom(253)),
        ("garbage-text", b"this is not a celery message {{{\n"),
        ("garbage-json", b'{"body": "not base64 !!", "headers": 7}'),
    ]
    return {
        "empty": empty,
        "truncated": truncated,
        "garbage": garbage,
        "burst": [*empty, *truncated, *garbage, ("good", template)],
    }[kind]


# --- The soak --------------------------------------------------------------------------------


class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.say = config.progress
        self.violations: list[Violation] = []
        self.faults: list[Fault] = []
        self.figures: dict[str, Any] = {}
        self.injected: list[tuple[str, str]] = []  # (file name, kind)
        self.started = 0.0  # monotonic start of the load phase
        self.up: Up
        self.db: Database
        self.poller: HealthPoller
        self.monitor: ChildMonitor
        self.receiver: StampedReceiver
        self.clients: list[Client] = []
        self.sent = SentRuns([])
        self.killed: set[str] = set()  # clients the soak had to kill
        self.up_death: str = ""

    def violation(self, check: str, subject: str, message: str, group: str = "") -> None:
        self.violations.append(Violation(check, subject, message, group))

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # --- set-up ---

    def run(self) -> SoakResult:
        config = self.config
        own = config.workdir is None
        workdir = Path(tempfile.mkdtemp(prefix="lb-soak-")) if own else Path(config.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        result = SoakResult(config, workdir, self.figures, self.violations, self.faults)
        began = time.monotonic()
        try:
            with ExitStack() as stack:
                stack.enter_context(quiet_logger("httpx"))  # a line per read-back request
                env: dict[str, str] = {}
                if config.services:
                    database_url = stack.enter_context(throwaway_database(config.database_server))
                    redis_url = stack.enter_context(soak_redis(config.redis_url, workdir / "redis"))
                    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url)
                    self.db = Database(postgres_url=database_url)
                    self.figures["shape"] = "PostgreSQL + Redis"
                else:
                    self.db = Database(sqlite_path=workdir / "home" / "labbook.sqlite3")
                    self.figures["shape"] = "embedded (SQLite + filesystem queue)"
                self.up = Up(workdir / "home", workdir / "up.log", env)
                stack.callback(self.up.kill)
                self.say(f"soak: starting `manage.py up` on port {self.up.port} in {workdir}")
                self.up.start()
                self.receiver = stack.enter_context(StampedReceiver())
                self.arm()
                self.poller = HealthPoller(self.up.url)
                self.monitor = ChildMonitor(self.up)
                stack.callback(self.poller.stopping.set)
                stack.callback(self.monitor.stopping.set)
                self.poller.start()
                self.monitor.start()
                self.load(workdir, stack)
                self.settle()
                self.check()
                self.stop_up()
        finally:
            self.figures["wall time"] = f"{time.monotonic() - began:.0f} s"
            result.write()
            if own and not config.keep and not self.violations:
                shutil.rmtree(workdir, ignore_errors=True)
        return result

    def arm(self) -> None:
        with self.up.client() as api:
            for project in (SDK_PROJECT, MLFLOW_PROJECT):
                body = {"team": TEAM, "name": project.split("/")[1]}
                api.post("/api/v1/projects", json=body).raise_for_status()
            config = {"url": self.receiver.url("/hook"), "secret": WEBHOOK_SECRET}
            hook = {"team": TEAM, "kind": "webhook", "name": "soak", "config": config}
            destination = api.post("/api/v1/destinations", json=hook).raise_for_status().json()
            rules = [
                {"project": SDK_PROJECT, "name": "sdk failures", "trigger": "run_failed"},
                {"project": MLFLOW_PROJECT, "name": "mlflow failures", "trigger": "run_failed"},
                {
                    "project": SDK_PROJECT,
                    "name": "spike",
                    "trigger": "metric_threshold",
                    "params": {
                        "key": SPIKE_KEY,
                        "op": ">",
                        "value": THRESHOLD,
                        "for_points": FOR_POINTS,
                    },
                },
            ]
            for rule in rules:  # default timing: group_wait, notify_on_resolve
                rule["destinations"] = [destination["id"]]
                api.post("/api/v1/alert-rules", json=rule).raise_for_status()

    # --- load and faults ---

    def load(self, workdir: Path, stack: ExitStack) -> None:
        config = self.config
        plan = schedule(config)
        template = message_template() if any(k.startswith("queue:") for _, k in plan) else b""
        self.say(
            f"soak: {config.sdk_clients} SDK + {config.mlflow_clients} mlflow clients for"
            f" {config.seconds:.0f} s, {len(plan)} faults planned"
        )
        self.started = time.monotonic()
        self.clients = start_clients(config, self.up, workdir)
        self.sent = SentRuns(self.clients)
        stack.callback(self.kill_clients)
        next_progress = config.progress_every
        for at, kind in plan:
            while self.elapsed() < at and not self.up_dead():
                if self.elapsed() >= next_progress:
                    self.progress()
                    next_progress += config.progress_every
                time.sleep(0.05)
            if self.up_dead():
                break
            self.inject(kind, template, workdir)
        while self.elapsed() < config.seconds and not self.up_dead():
            if self.elapsed() >= next_progress:
                self.progress()
                next_progress += config.progress_every
            time.sleep(0.1)
        self.say(f"soak: load phase over at {self.elapsed():.0f} s; waiting for the clients")
        deadline = time.monotonic() + config.client_timeout
        while any(c.process.poll() is None for c in self.clients):
            if self.up_dead() or time.monotonic() > deadline:
                break
            if self.elapsed() >= next_progress:
                self.progress()
                next_progress += config.progress_every
            time.sleep(0.2)
        for client in self.clients:
            if client.process.poll() is None:
                why = "`up` died" if self.up_dead() else f"not done {config.client_timeout:.0f} s"
                self.violation("clients", client.name, f"killed: {why} after the load phase")
                self.killed.add(client.name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(client.process.pid, signal.SIGKILL)
                client.process.wait(timeout=30)
        self.figures["load phase"] = (
            f"{config.seconds:.0f} s (clients done at {self.elapsed():.0f} s)"
        )

    def kill_clients(self) -> None:
        for client in self.clients:
            if client.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(client.process.pid, signal.SIGKILL)
                client.process.wait(timeout=30)

    def up_dead(self) -> bool:
        if self.up.alive():
            return False
        if not self.up_death:
            code = self.up.process.returncode if self.up.process else None
            last = self.faults[-1] if self.faults else None
            after = f", {self.elapsed() - last.at:.1f} s after {last.kind}" if last else ""
            self.up_death = f"`up` exited with code {code} at {self.elapsed():.1f} s{after}"
            self.say(f"soak: {self.up_death}; its last lines:\n{self.up.tail(15)}")
            self.violation(
                "up", "manage.py up", f"{self.up_death}; last lines:\n{self.up.tail(12)}"
            )
        return True

    def inject(self, kind: str, template: bytes, workdir: Path) -> None:
        family, what = kind.split(":")
        if family == "queue":
            queue = workdir / "home" / "queue"
            names = []
            for label, payload in queue_payloads(what, template):
                name = queue_file_name()
                (queue / name).write_bytes(payload)
                if label != "good":
                    self.injected.append((name, label))
                names.append(label)
            self.faults.append(Fault(self.elapsed(), time.time(), kind, ", ".join(names)))
            self.say(f"soak: {self.elapsed():6.1f} s  {kind} ({', '.join(names)})")
            return
        pid = self.child(what)
        if pid is None and self.up_dead():
            return
        if pid is None:
            self.violation(
                "restarts",
                f"{what} at {self.elapsed():.0f} s",
                f"`up` had no {what} child to kill (waited {CHILD_TIMEOUT:.0f} s)",
            )
            return
        fault = Fault(self.elapsed(), time.time(), kind, pid=pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.faults.append(fault)
        self.say(f"soak: {fault.at:6.1f} s  SIGKILL {what} (pid {pid})")

    def child(self, role: str) -> int | None:
        """The pid of ``up``'s child ``role``, waiting up to CHILD_TIMEOUT for `up` to have one."""
        deadline = time.monotonic() + CHILD_TIMEOUT
        while time.monotonic() < deadline and not self.up_dead():
            pid = children_by_role(self.up.process.pid).get(role)
            if pid is not None:
                return pid
            time.sleep(0.2)
        return None

    def progress(self) -> None:
        sent = self.sent.refresh()
        failed = sum(run.status == "failed" for run in sent)
        points = sum(run.points for run in sent)
        outages = self.poller.outages()
        longest = max((o.seconds for o in outages), default=0.0)
        self.say(
            f"soak: {self.elapsed():6.1f} s  runs {len(sent)} ({failed} failed), points"
            f" {points:,}, webhook requests {len(self.receiver.requests)}, faults"
            f" {len(self.faults)}, outages {len(outages)} (longest {longest:.1f} s),"
            f" up {'alive' if self.up.alive() else 'DEAD'}"
        )

    # --- settle ---

    def expectations(self) -> tuple[list[RunSent], set[str], set[str]]:
        sent = self.sent.refresh()
        failed = {run.name for run in sent if run.status == "failed"}
        spiked = {run.name for run in sent if run.spike}
        return sent, failed, spiked

    def pending(self) -> list[str]:
        """What is still to happen before the checks make sense (empty: settled)."""
        _, failed, spiked = self.expectations()
        found = deliveries(self.receiver)
        notified = {a[3] for d in found for a in d.alerts if a[1] == "run_failed"}
        fired = {
            a[3]
            for d in found
            for a in d.alerts
            if a[1] == "metric_threshold" and d.event == "alert.fired"
        }
        resolved = {
            a[3]
            for d in found
            for a in d.alerts
            if a[1] == "metric_threshold" and d.event == "alert.resolved"
        }
        waiting = []
        try:
            unsettled = self.db.unsettled()
        except Exception as error:  # the database is busy: ask again
            unsettled = {"unknown": 1}
            waiting.append(f"database: {error}")
        open_rows = {k: v for k, v in unsettled.items() if k != "failed"}
        if open_rows:
            waiting.append(f"notifications {open_rows}")
        if failed - notified:
            waiting.append(f"{len(failed - notified)} failed runs not notified")
        if spiked - fired:
            waiting.append(f"{len(spiked - fired)} threshold alerts not fired")
        if spiked - resolved:
            waiting.append(f"{len(spiked - resolved)} threshold alerts not resolved")
        left = self.queue_left()
        if left:
            waiting.append(f"{len(left)} injected queue files")
        return waiting

    def queue_left(self) -> list[tuple[str, str]]:
        queue = self.up.home / "queue"
        return [(name, kind) for name, kind in self.injected if (queue / name).exists()]

    def settle(self) -> None:
        if self.up_dead():
            self.figures["settle"] = "skipped: `up` is not running"
            return
        began = time.monotonic()
        deadline = began + self.config.settle_timeout
        next_say = began
        while True:
            waiting = self.pending()
            if not waiting or self.up_dead() or time.monotonic() > deadline:
                break
            if time.monotonic() >= next_say:
                self.say(f"soak: settling ({time.monotonic() - began:.0f} s): {'; '.join(waiting)}")
                next_say += 15
            time.sleep(1)
        took = time.monotonic() - began
        if waiting:
            self.figures["settle"] = f"gave up after {took:.0f} s: {'; '.join(waiting)}"
            self.violation(
                "settle",
                "after the load",
                f"not settled within {self.config.settle_timeout:.0f} s: {'; '.join(waiting)}",
            )
        else:
            self.figures["settle"] = f"{took:.0f} s"
        time.sleep(QUIET)

    # --- checks ---

    def check(self) -> None:
        self.say("soak: checking")
        self.check_processes()
        self.check_healthz()
        self.check_clients()
        self.check_points()
        self.check_alerts()
        if "queue" in self.config.faults and not self.config.services:
            self.check_queue()
        self.check_server_errors()

    def check_processes(self) -> None:
        restarts = Counter()
        for fault in self.faults:
            if not fault.kind.startswith("kill:"):
                continue
            role = fault.kind.split(":")[1]
            moment = self.started + fault.at
            seen = self.monitor.new_child_after(role, moment, fault.pid or -1)
            if seen is not None:
                fault.restarted_after = seen - moment
                restarts[role] += 1
            else:
                self.violation(
                    "restarts", f"{role} killed at {fault.at:.1f} s", "`up` never started a new one"
                )
            if role == "web":
                healthy = self.poller.healthy_since(moment)
                fault.healthy_after = None if healthy is None else healthy - moment
        kills = Counter(f.kind for f in self.faults)
        self.figures["faults injected"] = ", ".join(f"{k} x{n}" for k, n in sorted(kills.items()))
        delays = [f.restarted_after for f in self.faults if f.restarted_after is not None]
        if delays:
            self.figures["children restarted"] = (
                f"{sum(restarts.values())} ({', '.join(f'{r} x{n}' for r, n in restarts.items())}),"
                f" slowest after {max(delays):.1f} s"
            )
        self.figures["up alive at the end"] = "yes" if self.up.alive() else f"no ({self.up_death})"

    def check_healthz(self) -> None:
        polls = list(self.poller.polls)
        with (self.up.home.parent / "healthz-failed-or-slow.jsonl").open("w") as out:
            for poll in polls:
                if poll.status != 200 or poll.ended - poll.started > SLOW_POLL:
                    line = {
                        "at": stamp(poll.wall),
                        "second": round(poll.started - self.started, 3),
                        "status": poll.status,
                        "took": round(poll.ended - poll.started, 3),
                        "reason": poll.reason,
                    }
                    out.write(json.dumps(line) + "\n")
        good = sorted(p.ended - p.started for p in polls if p.status == 200)
        failed = [p for p in polls if p.status != 200]
        slow = [p for p in polls if p.status == 200 and p.ended - p.started > SLOW_POLL]
        outages = self.poller.outages()
        webs = [self.started + f.at for f in self.faults if f.kind == "kill:web"]
        longest = 0.0
        for outage in outages:
            if outage.ended is None:
                continue  # `up` died or never came back: reported by `up` and `restarts`
            since = outage.since(webs)
            seconds = outage.ended - since
            longest = max(longest, seconds)
            at = since - self.started
            if not any(kill - 1.0 <= since <= kill + OUTAGE_LIMIT for kill in webs):
                self.violation(
                    "healthz",
                    f"outage at {at:.1f} s",
                    f"{seconds:.1f} s without a 200 and no web kill just before;"
                    f" {outage.polls} polls failed: {outage.reasons}",
                )
            # One at a web kill: its length is checked below, from the kill.
        if good:
            self.figures["healthz"] = (
                f"{len(polls):,} polls, {len(failed)} failed, {len(slow)} slower than"
                f" {SLOW_POLL:.0f} s; latency p50 {percentile(good, 50) * 1000:.1f} ms,"
                f" p99 {percentile(good, 99) * 1000:.1f} ms, max {good[-1] * 1000:.0f} ms"
            )
        self.figures["outages"] = (
            f"{len(outages)} windows of failed polls, longest {longest:.2f} s"
            f" (limit {OUTAGE_LIMIT:.0f} s)"
        )
        # A restarting web server may also answer late rather than fail (connections
        # waiting for it): from each kill to the first 200 of a poll sent after it.
        restarts = []
        for fault in self.faults:
            if fault.kind != "kill:web" or not self.up.alive():
                continue
            if fault.healthy_after is None or fault.healthy_after >= OUTAGE_LIMIT:
                took = "never" if fault.healthy_after is None else f"{fault.healthy_after:.1f} s"
                self.violation(
                    "healthz",
                    f"web killed at {fault.at:.1f} s",
                    f"/healthz answered 200 again after {took} (limit {OUTAGE_LIMIT:.0f} s)",
                )
            if fault.healthy_after is not None:
                restarts.append(fault.healthy_after)
        if restarts:
            self.figures["web restarts"] = (
                f"{len(restarts)}, kill to /healthz 200: longest {max(restarts):.2f} s,"
                f" median {statistics.median(restarts):.2f} s (limit {OUTAGE_LIMIT:.0f} s)"
            )
        for outage in outages:
            if outage.ended is None:
                self.figures["outages"] += (
                    f"; one from {outage.started - self.started:.1f} s never ended"
                    f" ({outage.polls} polls failed: {outage.reasons})"
                )

    def check_clients(self) -> None:
        for client in self.clients:
            code = client.process.returncode
            if code not in (0, None) and not self.up_death and client.name not in self.killed:
                self.violation("clients", client.name, f"exited {code}:\n{client.tail()}")
            done = any(r.get("kind") == "done" for r in records(client))
            if not done and code == 0:
                self.violation("clients", client.name, "exited 0 without its 'done' line")
            left = spool_left(client.spool)
            if left:
                self.violation(
                    "clients",
                    client.name,
                    f"{left} records left unsent in the SDK spool {client.spool}",
                )
            for record in records(client):
                for error in record.get("errors") or []:
                    self.violation(
                        "clients",
                        f"{client.name} run {record['name']}",
                        f"the mlflow client gave up on an async operation: {error}",
                    )

    def check_points(self) -> None:
        db_runs = self.db.runs()
        series = self.db.series()
        alive = self.up.alive()
        api = self.up.client() if alive else None
        seen_names: set[str] = set()
        sent_points = stored_points = runs = read_back = 0
        every = max(1, math.ceil(len(self.sent.refresh()) / max(1, self.config.read_back_runs)))
        kinds = Counter()
        try:
            with self.db.connect() as conn:
                for client in self.clients:
                    for record in records(client):
                        if record.get("kind") != "run":
                            continue
                        runs += 1
                        kinds[client.kind] += 1
                        name = record["name"]
                        seen_names.add(name)
                        found = db_runs.get(name, [])
                        if len(found) != 1:
                            self.violation(
                                "runs", name, f"{len(found)} runs of this name stored (expected 1)"
                            )
                            if not found:
                                continue
                        run_id, status = found[0]
                        if status != record["status"]:
                            self.violation(
                                "runs", name, f"status {status!r}, expected {record['status']!r}"
                            )
                        stored = {
                            key: [(s, v, to_ms(t)) for s, v, t in self.db.points(conn, sid)]
                            for key, sid in series.get(run_id, {}).items()
                        }
                        sent_points += sum(len(p) for p in record["points"].values())
                        stored_points += sum(len(p) for p in stored.values())
                        before = len(self.violations)
                        self.compare_run(client.kind, name, record, stored)
                        wrong = len(self.violations) > before
                        if api is not None and (wrong or runs % every == 0):
                            read_back += 1
                            self.read_back(api, client.kind, name, run_id, stored)
        finally:
            if api is not None:
                api.close()
        finished = all(any(r.get("kind") == "done" for r in records(c)) for c in self.clients)
        for name in sorted(set(db_runs) - seen_names):
            if finished:  # else: a client was killed mid-run, its last run is unrecorded
                self.violation("runs", name, "stored, but no client recorded such a run")
        self.figures["runs"] = f"{runs} ({', '.join(f'{k} {n}' for k, n in kinds.items())})"
        self.figures["points"] = (
            f"{sent_points:,} sent, {stored_points:,} stored; {read_back} runs read back"
            " through the API"
        )

    def compare_run(
        self, kind: str, name: str, record: dict[str, Any], stored: dict[str, list]
    ) -> None:
        sent = {key: [tuple(p) for p in points] for key, points in record["points"].items()}
        nostep = set(record.get("nostep") or [])
        for key in sorted(set(stored) - set(sent)):
            self.violation(
                "points",
                f"{name} {key}",
                f"{len(stored[key])} points stored under a key never sent",
                f"{kind}/{key}",
            )
        for key, points in sent.items():
            got = stored.get(key, [])
            want, have = Counter(points), Counter(got)
            if key in nostep and not self.config.nostep_at_step_zero:
                want = Counter((0, v, t) for _, v, t in points)
                have = Counter((0, v, t) for _, v, t in got)
            if want == have:
                continue
            subject = f"{name} {key}" + (" (logged without a step)" if key in nostep else "")
            self.violation("points", subject, point_difference(want, have), f"{kind}/{key}")

    def read_back(
        self, api: httpx.Client, kind: str, name: str, run_id: int, stored: dict[str, list]
    ) -> None:
        """The API answers what the database holds, to the millisecond."""
        for key, rows in stored.items():
            try:
                if kind == "mlflow":
                    answered = mlflow_history(api, run_id, key)
                    where = "MLflow get-history"
                else:
                    answered = rest_history(api, run_id, key)
                    where = "GET /api/v1/runs/{id}/metrics/{key}"
            except (httpx.HTTPError, ValueError, KeyError) as error:
                self.violation(
                    "read-back", f"{name} {key}", f"could not read: {error!r}", f"{kind}/{key}"
                )
                continue
            if Counter(answered) != Counter(rows):
                difference = point_difference(
                    Counter(rows), Counter(answered), stored_as="answered"
                )
                self.violation(
                    "read-back", f"{name} {key}", f"{where}: {difference}", f"{kind}/{key}"
                )

    def check_alerts(self) -> None:
        sent, failed, spiked = self.expectations()
        by_name = {run.name: run for run in sent}
        found = deliveries(self.receiver)
        keys = {d.key for d in found}
        self.figures["webhooks"] = (
            f"{len(found)} requests, {len(keys)} deliveries (distinct Idempotency-Key),"
            f" {len(found) - len(keys)} repeats"
        )
        for delivery in found:
            if not delivery.signed:
                self.violation(
                    "signature",
                    f"request #{delivery.index}",
                    "X-Labbook-Signature does not match the body",
                )
        first: dict[str, Delivery] = {}
        for delivery in found:
            first.setdefault(delivery.key, delivery)
        unique = sorted(first.values(), key=lambda d: d.index)
        # run_failed: every failed run in exactly one delivery, nobody else.
        carried: dict[str, set[str]] = defaultdict(set)
        for delivery in unique:
            for _alert, trigger, _rule, run in delivery.alerts:
                if trigger == "run_failed":
                    carried[run].add(delivery.key)
        for run in sorted(failed):
            if len(carried.get(run, ())) != 1:
                self.violation(
                    "run_failed",
                    run,
                    f"in {len(carried.get(run, ()))} deliveries"
                    f" (Idempotency-Keys {sorted(carried.get(run, ()))}), expected 1",
                )
        for run in sorted(set(carried) - failed):
            self.violation(
                "run_failed",
                run,
                f"notified as failed; its client finished it"
                f" {by_name[run].status if run in by_name else '(unknown run)'}",
            )
        self.check_threshold(unique, spiked)
        self.count_overtaken(unique)
        latencies = sorted(
            first_receipt - by_name[run].failed_at
            for run, first_receipt in self.first_receipts(unique, "run_failed").items()
            if run in by_name and by_name[run].failed_at
        )
        if latencies:
            self.figures["failed run -> webhook"] = (
                f"{len(latencies)} runs; p50 {percentile(latencies, 50):.1f} s,"
                f" p99 {percentile(latencies, 99):.1f} s, max {latencies[-1]:.1f} s"
            )
        try:
            unsettled = self.db.unsettled()
        except Exception as error:
            unsettled = {}
            self.violation("outbox", "alerts_notification", f"could not read: {error!r}")
        for status, count in unsettled.items():
            self.violation("outbox", f"{count} notifications", f"left {status!r}")
        spikes = sum(1 for d in unique for a in d.alerts if a[1] == "metric_threshold")
        self.figures["alerts"] = (
            f"{len(failed)} failed runs, {len(spiked)} threshold runs;"
            f" {spikes} threshold notifications delivered"
        )

    def count_overtaken(self, unique: list[Delivery]) -> None:
        """A figure, not a check: failed runs whose first delivery came after a later alert's
        of the same rule (order is promised per alert only)."""
        newest: dict[str, int] = {}  # rule -> highest alert id delivered so far
        total = overtaken = 0
        for delivery in unique:
            if delivery.event != "alert.fired":
                continue
            failed = [(alert, rule) for alert, trigger, rule, _run in delivery.alerts
                      if trigger == "run_failed"]  # fmt: skip
            for alert, rule in failed:  # one message: its alerts arrive together
                total += 1
                overtaken += alert < newest.get(rule, -1)
            for alert, rule in failed:
                newest[rule] = max(alert, newest.get(rule, -1))
        self.figures["order across alerts"] = (
            f"{overtaken} of {total} failed runs delivered after a later failed run of their rule"
        )

    @staticmethod
    def first_receipts(unique: list[Delivery], trigger: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for delivery in unique:
            for _alert, alert_trigger, _rule, run in delivery.alerts:
                if alert_trigger == trigger:
                    found.setdefault(run, delivery.at)
        return found

    def check_threshold(self, unique: list[Delivery], spiked: set[str]) -> None:
        events: dict[tuple[int, str], list[Delivery]] = defaultdict(list)
        runs_alerted: dict[str, set[int]] = defaultdict(set)
        for delivery in unique:
            for alert, trigger, _rule, run in delivery.alerts:
                if trigger == "metric_threshold":
                    events[(alert, delivery.event)].append(delivery)
                    runs_alerted[run].add(alert)
        for run in sorted(spiked):
            alerts = runs_alerted.get(run, set())
            if len(alerts) != 1:
                self.violation(
                    "threshold",
                    run,
                    f"{len(alerts)} threshold alerts delivered ({sorted(alerts)}), expected 1",
                )
            for alert in sorted(alerts):
                fired = events.get((alert, "alert.fired"), [])
                resolved = events.get((alert, "alert.resolved"), [])
                if len(fired) != 1 or len(resolved) != 1:
                    self.violation(
                        "threshold",
                        f"{run} alert {alert}",
                        f"fired in {len(fired)} deliveries and resolved in"
                        f" {len(resolved)}, expected 1 and 1",
                    )
                if fired and resolved and resolved[0].index < fired[0].index:
                    self.violation(
                        "threshold",
                        f"{run} alert {alert}",
                        f"resolved (request #{resolved[0].index}) reached the receiver"
                        f" {fired[0].at - resolved[0].at:.1f} s before fired"
                        f" (request #{fired[0].index})",
                    )
        for run in sorted(set(runs_alerted) - spiked):
            self.violation("threshold", run, "threshold alert for a run that never crossed it")

    def check_queue(self) -> None:
        left = self.queue_left()
        for name, kind in left:
            self.violation("queue", name, f"injected {kind} file still in the queue")
        bad = self.up.home / "queue" / "bad"
        set_aside = len(list(bad.iterdir())) if bad.is_dir() else 0
        self.figures["queue files"] = (
            f"{len(self.injected)} bad files injected, {len(left)} left in the queue,"
            f" {set_aside} in queue/bad"
        )

    def check_server_errors(self) -> None:
        """Every 500 the web server logged and every task that raised, by path and error."""
        found: Counter = Counter()
        first: dict[tuple[str, str], str] = {}
        for kind, where, error, moment in logged_errors(self.up.output()):
            found[(kind, where, error)] += 1
            first.setdefault((where, error), moment)
        for (kind, where, error), count in found.most_common():
            message = f"{count} times, first at {first[(where, error)]}: {error}"
            self.violation("server-errors", f"{kind} {where}", message)
        self.figures["server errors"] = f"{sum(found.values())} (500s and tasks that raised)"

    def stop_up(self) -> None:
        if not self.up.alive():
            return
        code = self.up.stop()
        if code != 0:
            what = "did not stop within 60 s" if code is None else f"exited {code}"
            self.violation("up", "SIGTERM", f"`up` {what}; last lines:\n{self.up.tail(12)}")


# --- Reading `up`'s output ---------------------------------------------------------------------

LOG_RECORD = re.compile(r"^(\[?\d{4}-\d\d-\d\d[ T][\d:,.]+)")
SERVER_ERROR = re.compile(r"Internal Server Error: (\S+)")
TASK_ERROR = re.compile(r"Task ([\w.]+)\[[^\]]*\] raised unexpected: (.*)")
EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def logged_errors(output: str) -> Iterator[tuple[str, str, str, str]]:
    """(kind, where, error, when) of each 500 and each task that raised, from `up`'s output.

    A 500's error is the last line of the traceback after it; ids in paths are
    folded (``/api/v1/runs/{id}/metrics``) so that one bug counts once per path.
    """
    lines = output.splitlines()
    for number, line in enumerate(lines):
        record = LOG_RECORD.match(line)
        if (found := SERVER_ERROR.search(line)) and record:
            error = ""
            for following in lines[number + 1 : number + 400]:
                if LOG_RECORD.match(following):
                    break
                if EXCEPTION.match(following):
                    error = following.strip()
            where = re.sub(r"/\d+(?=/|$)", "/{id}", found.group(1).split("?")[0])
            yield "500", where, error[:300], record.group(1).strip("[")
        elif (found := TASK_ERROR.search(line)) and record:
            yield "task", found.group(1), found.group(2)[:300], record.group(1).strip("[")


# --- Comparing points -------------------------------------------------------------------------


def point_difference(want: Counter, have: Counter, *, stored_as: str = "stored") -> str:
    """Expected vs got for one key's (step, value, ms) multisets, in words.

    A missing point whose value and timestamp turn up at another step was
    moved; one whose step holds something else was replaced.
    """
    missing, extra = want - have, have - want
    details = [
        f"{total(want)} points expected, {total(have)} {stored_as};"
        f" sums {value_sum(want)!r} vs {value_sum(have)!r}"
    ]
    by_step, by_content = defaultdict(list), defaultdict(list)
    for point in extra.elements():
        by_step[point[0]].append(point)
        by_content[point[1:]].append(point)
    explained: set[tuple] = set()
    for step, value, ms in sorted(missing.elements()):
        if by_content.get((value, ms)):
            moved = by_content[(value, ms)][0]
            explained.add(moved)
            details.append(f"step {step} ({value!r} @ {ms} ms) moved to step {moved[0]}")
        elif by_step.get(step):
            got = by_step[step][0]
            explained.add(got)
            details.append(
                f"step {step}: expected {value!r} @ {ms} ms, got {got[1]!r} @ {got[2]} ms"
            )
        else:
            details.append(f"step {step} ({value!r} @ {ms} ms) missing")
    for point in sorted(extra.elements()):
        if point not in explained:
            details.append(f"unexpected step {point[0]} ({point[1]!r} @ {point[2]} ms)")
    shown = details[:7]
    if len(details) > len(shown):
        shown.append(f"... {len(details) - len(shown)} more")
    return "; ".join(shown)


def total(points: Counter) -> int:
    return sum(points.values())


def value_sum(points: Counter) -> float:
    return math.fsum(v * n for (_, v, _), n in points.items() if v is not None)


def stamp(moment: float) -> str:
    """A time.time() as HH:MM:SS.mmm (UTC), to read next to the alerts' fired_at."""
    return time.strftime("%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1000):03d}"


def percentile(ordered: list[float], q: float) -> float:
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[min(98, max(0, int(q) - 1))]


def rest_history(api: httpx.Client, run_id: int, key: str) -> list[tuple]:
    rows: list[tuple] = []
    params: dict[str, Any] = {"limit": 100_000}
    while True:
        page = api.get(f"/api/v1/runs/{run_id}/metrics/{quote(key, safe='')}", params=params)
        page = page.raise_for_status().json()
        values = [None if isinstance(v, str) else v for v in page["values"]]
        rows += [
            (s, v, to_ms(t))
            for s, v, t in zip(page["steps"], values, page["timestamps"], strict=True)
        ]
        if page.get("next_step") is None:
            return rows
        params["step_min"] = page["next_step"]


def mlflow_history(api: httpx.Client, run_id: int, key: str) -> list[tuple]:
    rows: list[tuple] = []
    params: dict[str, Any] = {"run_id": str(run_id), "metric_key": key, "max_results": 25_000}
    while True:
        page = api.get("/api/2.0/mlflow/metrics/get-history", params=params)
        page = page.raise_for_status().json()
        for metric in page.get("metrics", []):
            value = metric["value"]
            rows.append(
                (
                    int(metric.get("step", 0)),
                    None if isinstance(value, str) else value,
                    int(metric["timestamp"]),
                )
            )
        if not page.get("next_page_token"):
            return rows
        params["page_token"] = page["next_page_token"]


def run_soak(config: SoakConfig) -> SoakResult:
    return Soak(config).run()
