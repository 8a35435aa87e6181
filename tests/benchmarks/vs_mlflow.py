"""Labbook against MLflow's own tracking server, both driven by the same mlflow client code.

    python tests/benchmarks/vs_mlflow.py               # MLflow vs Labbook (SQLite), 3 repetitions
    python tests/benchmarks/vs_mlflow.py --quick       # every workload ~10x smaller (smoke run)
    python tests/benchmarks/vs_mlflow.py --repeat 5    # more repetitions (median of each)
    python tests/benchmarks/vs_mlflow.py --postgres postgres://postgres@127.0.0.1:5432/postgres \\
        --redis redis://127.0.0.1:6379/9               # + Labbook on PostgreSQL and Redis

Starts, on free loopback ports and throwaway directories, ``mlflow server``
(SQLite backend, its default number of workers) and Labbook exactly as
``manage.py up`` runs it (web server, Celery worker and beat; SQLite and the
filesystem queue, or a throwaway PostgreSQL database and Redis). Each
workload is run by the same ``mlflow.MlflowClient`` code against every
server, the servers taking turns (the first one alternates per repetition);
the table shows medians and Labbook/MLflow ratios. While workloads 1-5 run,
the RSS of every process of each server is sampled every 0.2 s. Then
Labbook-only figures through its own API, and the 20-chart report render of
``report_render.py`` (run as that benchmark runs it, in-process). It also times
the mlflow client by itself, against a stub server that answers at once:
the best ratio any server can show through that client.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import queue
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
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from reports_app import launcher  # noqa: E402
from tests.benchmarks import ingest as lb  # noqa: E402

KEYS = tuple(f"k{k}" for k in range(10))
STEPS = 100  # per key in a 1,000-point log_batch
TIMESTAMP = 1_700_000_000_000  # ms; fixed, so a re-sent point is an exact duplicate
INTERVAL = 0.2  # seconds between RSS samples
START_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0
EXPERIMENT = "bench/vs-mlflow"
SEARCH_EXPERIMENT = "bench/search"
SETUP = (
    lb.SETUP
    + """
from django.conf import settings
from django.test import Client

browser = Client()
browser.force_login(user)
print(f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}")
"""
)
STARTED = time.perf_counter()


def say(text: str) -> None:
    print(f"[{time.perf_counter() - STARTED:5.0f} s] {text}", flush=True)


# --- Workload sizes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    ingest_batches: int = 200  # 1: log_batch calls of 1,000 points
    chatty_calls: int = 2_000  # 2: log_metric calls
    writers: int = 8  # 3: processes
    writer_points: int = 50_000  # 3: points per process
    big_points: int = 1_000_000  # 4: the long series
    history_reads: int = 3  # 4: reads of the 20k-point key per repetition
    search_runs: int = 500  # 5: runs in the searched experiment
    search_reads: int = 5  # 5: searches per repetition
    own_batches: int = 20  # Labbook: 10,000-point batches per repetition
    downsampled_reads: int = 30
    live_samples: int = 100
    report_points: int = 100_000  # per series in report_render.py

    @property
    def small_points(self) -> int:
        """Points per key of the ingestion run, read back in workload 4."""
        return self.ingest_batches * STEPS


QUICK = Plan(
    ingest_batches=20,
    chatty_calls=200,
    writer_points=5_000,
    big_points=100_000,
    search_runs=50,
    own_batches=4,
    downsampled_reads=10,
    live_samples=20,
    report_points=10_000,
)


# --- Process trees and their memory ------------------------------------------------------------


def tree_pids(root: int) -> list[int]:
    """``root`` and every process below it, from /proc (children may lead their own session)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(entry.path, "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    return pids


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def tree_rss(root: int) -> int:
    """The summed RSS of a process tree: psutil's view when installed, else /proc's."""
    try:
        import psutil
    except ImportError:
        return sum(rss_bytes(pid) for pid in tree_pids(root))
    with contextlib.suppress(psutil.NoSuchProcess):
        top = psutil.Process(root)
        total = 0
        for process in [top, *top.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total
    return 0


class RssSampler(threading.Thread):
    """Every INTERVAL seconds, the RSS of each server's whole process tree."""

    def __init__(self, roots: dict[str, int]) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.roots = roots
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stopping = threading.Event()

    def sample(self) -> None:
        now = time.perf_counter()
        self.samples.append((now, {name: tree_rss(pid) for name, pid in self.roots.items()}))

    def run(self) -> None:
        while not self.stopping.wait(INTERVAL):
            self.sample()

    def peak(self, name: str, start: float, end: float = math.inf) -> int:
        return max((s[name] for t, s in self.samples if start <= t <= end), default=0)

    def before(self, name: str, moment: float) -> int:
        return next((s[name] for t, s in reversed(self.samples) if t < moment), 0)


def stop_tree(process: subprocess.Popen, *, whole_group: bool) -> None:
    """SIGTERM the server (its process group for ``whole_group``); SIGKILL what outlives it."""
    pids = tree_pids(process.pid)
    groups = {pgid for pid in pids if (pgid := _pgid(pid)) and pgid != os.getpgrp()}
    with contextlib.suppress(ProcessLookupError):
        if whole_group:
            os.killpg(process.pid, signal.SIGTERM)
        else:  # ``up`` stops its children itself, in order
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        process.poll()  # reaps our own child
        time.sleep(0.2)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    process.wait()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --- The servers -------------------------------------------------------------------------------


@dataclass
class Target:
    """One server under test, and what the workloads left on it."""

    name: str
    uri: str
    process: subprocess.Popen
    api: lb.Server | None = None  # Labbook's own API (None for MLflow)
    cookie: str = ""  # a logged-in session, for the websocket
    db_path: Path | None = None  # MLflow's SQLite file
    runs: dict[str, str] = field(default_factory=dict)  # role -> run id
    search_experiment: str = ""

    @property
    def is_mlflow(self) -> bool:
        return self.api is None

    @property
    def token(self) -> str | None:
        return self.api.token if self.api else None


def server_log(home: Path) -> Any:
    return (home / "server.log").open("ab")


def wait_answering(url: str, process: subprocess.Popen, log: Path) -> None:
    status, body = launcher.wait_healthy(
        url, timeout=START_TIMEOUT, give_up=lambda: process.poll() is not None
    )
    if status != 200:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{url} did not answer ({status}: {body[:200]}); log:\n{tail}")


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[Target]:
    home = root / "mlflow"
    home.mkdir()
    port = lb.free_port()
    db_path = home / "mlflow.db"
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{db_path}"),
        *("--artifacts-destination", str(home / "artifacts")),
    ]
    with server_log(home) as log:
        process = subprocess.Popen(
            command, cwd=home, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_answering(f"{uri}/health", process, home / "server.log")
        yield Target("MLflow", uri, process, db_path=db_path)
    finally:
        stop_tree(process, whole_group=True)


def mlflow_workers(target: Target) -> str:
    """How many request workers ``mlflow server`` started, from its uvicorn's command line."""
    for pid in tree_pids(target.process.pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"--workers" in argv:
                return argv[argv.index(b"--workers") + 1].decode()
    return "?"


@contextlib.contextmanager
def labbook_server(root: Path, shape: lb.Shape) -> Iterator[Target]:
    """Labbook as ``manage.py up`` runs it: ``up`` itself, with its web server, worker, beat."""
    home = root / re.sub(r"\W+", "-", shape.name).strip("-").lower()
    home.mkdir()
    with contextlib.ExitStack() as stack:
        database_url = shape.database_url
        if database_url:
            database_url = stack.enter_context(lb.throwaway_database(database_url))
        env = lb.shape_env(shape, home, database_url)
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        lb.manage(env, "manage.py", "migrate", "--verbosity", "0")
        token, cookie = lb.manage(env, "-c", SETUP).split()
        port = lb.free_port()
        with server_log(home) as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "up", "--port", str(port)],
                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        try:
            uri = f"http://127.0.0.1:{port}"
            wait_answering(f"{uri}/healthz", process, home / "server.log")
            api = lb.Server(uri, token, process.pid, database_url)
            yield Target(shape.name, uri, process, api=api, cookie=cookie)
        finally:
            stop_tree(process, whole_group=False)


# --- The mlflow client -------------------------------------------------------------------------


def use_token(token: str | None) -> None:
    """MLflow's client reads the token from the environment on every request."""
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)


def client_for(target: Target) -> Any:
    from mlflow import MlflowClient

    use_token(target.token)
    return MlflowClient(tracking_uri=target.uri)


def experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def new_run(client: Any, name: str) -> str:
    return client.create_run(experiment_id(client, EXPERIMENT), run_name=name).info.run_id


def point_value(salt: int, k: int, step: int) -> float:
    """Distinct per (salt, key, step), and exact in binary, so it survives any round trip."""
    return salt + k / 16 + step / 2**20


def metric_batch(first_step: int, salt: int) -> list[Any]:
    """1,000 points: every key at STEPS consecutive steps from ``first_step``."""
    from mlflow.entities import Metric

    steps = range(first_step, first_step + STEPS)
    return [
        Metric(key, point_value(salt, k, step), TIMESTAMP + step, step)
        for k, key in enumerate(KEYS)
        for step in steps
    ]


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = action()
    return time.perf_counter() - started, answer


# --- Workloads 1 and 2: one client logging -----------------------------------------------------


def ingestion(target: Target, plan: Plan, rep: int) -> float:
    client = client_for(target)
    run_id = new_run(client, f"ingest-{rep}")
    batches = [metric_batch(b * STEPS, 0) for b in range(plan.ingest_batches)]
    seconds, _ = timed(lambda: [client.log_batch(run_id, metrics=m) for m in batches])
    target.runs[f"ingest-{rep}"] = run_id  # its keys are workload 4's short series
    return plan.ingest_batches * 1_000 / seconds


def chatty(target: Target, plan: Plan, rep: int) -> float:
    client = client_for(target)
    run_id = new_run(client, f"chatty-{rep}")
    calls = range(plan.chatty_calls)

    def log_each() -> None:
        for step in calls:
            client.log_metric(run_id, "chatty", step / 8, timestamp=TIMESTAMP + step, step=step)

    seconds, _ = timed(log_each)
    return plan.chatty_calls / seconds


# --- Workload 3: concurrent writers ------------------------------------------------------------


def concurrent_writer(
    uri: str, token: str | None, run_id: str, worker: int, batches: int, barrier: Any, done: Any
) -> None:
    """One process: its own client and run; log_batch after every writer is ready."""
    use_token(token)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    payload = [metric_batch(b * STEPS, worker) for b in range(batches)]
    barrier.wait(timeout=START_TIMEOUT)
    try:
        for metrics in payload:
            client.log_batch(run_id, metrics=metrics)
        done.put((worker, time.time(), None))
    except Exception as error:  # reported by the parent
        done.put((worker, time.time(), repr(error)))


def concurrent(target: Target, plan: Plan, rep: int) -> tuple[float, str]:
    client = client_for(target)
    runs = {w: new_run(client, f"writer-{rep}-{w}") for w in range(plan.writers)}
    context = multiprocessing.get_context("spawn")  # no fork under the sampler's thread
    barrier, done = context.Barrier(plan.writers + 1), context.Queue()
    batches = plan.writer_points // 1_000
    args = [(target.uri, target.token, runs[w], w, batches, barrier, done) for w in runs]
    writers = [context.Process(target=concurrent_writer, args=a) for a in args]
    for writer in writers:
        writer.start()
    barrier.wait(timeout=START_TIMEOUT)
    started = time.time()
    finished = [done.get(timeout=3600) for _ in writers]
    for writer in writers:
        writer.join()
    if errors := [error for _, _, error in finished if error]:
        raise RuntimeError(f"{target.name}: a writer failed: {errors[0]}")
    rate = plan.writers * plan.writer_points / (max(t for _, t, _ in finished) - started)
    return rate, exactly_once(target, client, runs, batches * STEPS)


def exactly_once(target: Target, client: Any, runs: dict[int, str], steps: int) -> str:
    """PASS when every run's every key reads back as exactly the points that were sent."""
    problems: Counter[str] = Counter()
    for worker, run_id in runs.items():
        for k, key in enumerate(KEYS):
            got = [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
            sent = {(step, point_value(worker, k, step)) for step in range(steps)}
            problems["lost"] += len(sent - set(got))
            problems["duplicated"] += len(got) - len(set(got))
            problems["unexpected"] += len(set(got) - sent)
        if target.api:
            problems["own API count off"] += own_count_errors(target.api, run_id, steps)
    if not +problems:
        return "PASS"
    return "FAIL (" + ", ".join(f"{n:,} {what}" for what, n in problems.items() if n) + ")"


def own_count_errors(api: lb.Server, run_id: str, steps: int) -> int:
    """Keys whose count in ``GET /api/v1/runs/{id}/metrics`` is not ``steps``."""
    with api.client() as http:
        metrics = http.get(f"/api/v1/runs/{run_id}/metrics").raise_for_status().json()["metrics"]
    counts = {m["key"]: m["count"] for m in metrics}
    return sum(counts.get(key) != steps for key in KEYS)


# --- Workload 4: history reads -----------------------------------------------------------------


def load_big_series(target: Target, plan: Plan) -> str:
    """A run with one key of ``plan.big_points`` points, loaded the fast way for each server."""
    client = client_for(target)
    run_id = new_run(client, "big")
    if target.is_mlflow:
        seconds, _ = timed(lambda: mlflow_sqlite_load(target, run_id, plan.big_points))
        how = "straight into its SQLite tables"
    else:
        with target.api.client() as http:
            count = plan.big_points // 10_000
            seconds, _ = timed(lambda: lb.post_batches(http, int(run_id), ("big",), 10_000, count))
        how = "through POST /api/v1/runs/{id}/metrics, 10,000-point batches"
    say(f"  {target.name}: {plan.big_points:,} points loaded {how} ({seconds:.0f} s)")
    target.runs["big"] = run_id
    return run_id


def mlflow_sqlite_load(target: Target, run_id: str, points: int) -> None:
    """Write MLflow's ``metrics`` and ``latest_metrics`` rows the way its store would."""
    last = points - 1
    rows = (
        {"key": "big", "value": math.sin(step / 100), "timestamp": TIMESTAMP + step,
         "run_uuid": run_id, "step": step, "is_nan": 0}
        for step in range(points)
    )  # fmt: skip
    latest = {"key": "big", "value": math.sin(last / 100), "timestamp": TIMESTAMP + last,
              "run_uuid": run_id, "step": last, "is_nan": 0}  # fmt: skip
    with contextlib.closing(sqlite3.connect(target.db_path, timeout=60)) as db, db:
        sqlite_insert(db, "metrics", rows)
        sqlite_insert(db, "latest_metrics", iter([latest]))


def sqlite_insert(db: sqlite3.Connection, table: str, rows: Iterator[dict[str, Any]]) -> None:
    """Insert ``rows`` into the columns the created database has (read from its schema)."""
    info = db.execute(f"PRAGMA table_info({table})").fetchall()  # cid, name, type, notnull, ...
    first = next(rows)
    required = {name for _, name, _, notnull, default, _ in info if notnull and default is None}
    if missing := required - first.keys():
        raise RuntimeError(f"MLflow's {table} table wants {sorted(missing)}; update this loader")
    columns = [name for _, name, *_ in info if name in first]
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    db.executemany(sql, (tuple(row[c] for c in columns) for row in chain([first], rows)))


def history_small(target: Target, plan: Plan, rep: int) -> float:
    client = client_for(target)
    run_id = target.runs[f"ingest-{rep}"]
    times = []
    for _ in range(plan.history_reads):
        seconds, history = timed(lambda: client.get_metric_history(run_id, "k3"))
        assert len(history) == plan.small_points, (target.name, len(history))
        times.append(seconds)
    return statistics.median(times) * 1000


def history_big(target: Target, plan: Plan, sampler: RssSampler) -> tuple[float, float]:
    """Latency (ms) of the long read, and the server's RSS growth during it (MB)."""
    client = client_for(target)
    started = time.perf_counter()
    seconds, history = timed(lambda: client.get_metric_history(target.runs["big"], "big"))
    time.sleep(2 * INTERVAL)  # one more sample at the end of the read
    assert len(history) == plan.big_points, (target.name, len(history))
    del history
    growth = sampler.peak(target.name, started) - sampler.before(target.name, started)
    return seconds * 1000, growth / 2**20


# --- Workload 5: search ------------------------------------------------------------------------


def seed_search(target: Target, plan: Plan) -> None:
    from mlflow.entities import Metric, Param

    client = client_for(target)
    target.search_experiment = experiment_id(client, SEARCH_EXPERIMENT)
    for i in range(plan.search_runs):
        run_id = client.create_run(target.search_experiment, run_name=f"s-{i}").info.run_id
        acc = Metric("acc", i / plan.search_runs, TIMESTAMP, 0)
        client.log_batch(run_id, metrics=[acc], params=[Param("seed", str(i))])
    say(f"  {target.name}: {plan.search_runs} runs with a metric and a param created")


def search(target: Target, plan: Plan) -> tuple[float, int]:
    client = client_for(target)
    times, found = [], []
    for _ in range(plan.search_reads):
        seconds, found = timed(
            lambda: client.search_runs(
                [target.search_experiment],
                filter_string="metrics.acc > 0.5",
                order_by=["metrics.acc DESC"],
                max_results=1000,
            )
        )
        times.append(seconds)
    accs = [run.data.metrics["acc"] for run in found]
    assert accs == sorted(accs, reverse=True), f"{target.name}: not ordered by acc"
    return statistics.median(times) * 1000, len(found)


# --- Labbook only, through its own API ---------------------------------------------------------


def own_ingest(target: Target, plan: Plan, rep: int) -> float:
    """10,000-point batches over 10 keys; the clock runs during the requests only."""
    with target.api.client() as http:
        run_id = lb.create_run(http, f"own-{rep}")
        latencies = lb.post_batches(http, run_id, KEYS, 10_000, plan.own_batches)
    return plan.own_batches * 10_000 / sum(latencies)


def downsampled(target: Target, plan: Plan) -> float:
    path = f"/api/v1/runs/{target.runs['big']}/metrics/big?max_points=1000"
    check = lb.expect(at_most=1002)
    return lb.median_read(target.api, path, plan.downsampled_reads, check) * 1000


def live_delays(target: Target, plan: Plan) -> list[float]:
    """Seconds from posting one point to its ``run.points`` message on a subscribed socket."""
    from websockets.sync.client import connect

    url = target.uri.replace("http://", "ws://") + "/ws/live/"
    headers = {"Cookie": target.cookie}
    with (
        target.api.client() as http,
        connect(url, origin=target.uri, additional_headers=headers, proxy=None) as socket,
    ):
        run_id = lb.create_run(http, "live")
        arrivals = read_in_background(socket)
        socket.send(json.dumps({"subscribe": {"runs": [run_id]}}))
        wait_for(arrivals, lambda message: message.get("type") == "subscribed")
        return [live_delay(http, run_id, step, arrivals) for step in range(plan.live_samples)]


def read_in_background(socket: Any) -> queue.Queue:
    """Each message with the moment it arrived, so a slow main loop does not add to delays."""
    from websockets.exceptions import ConnectionClosed

    arrivals: queue.Queue = queue.Queue()

    def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            for message in socket:
                arrivals.put((time.perf_counter(), json.loads(message)))

    threading.Thread(target=read, daemon=True, name="websocket-reader").start()
    return arrivals


def wait_for(arrivals: queue.Queue, wanted: Callable[[dict], bool], timeout: float = 10) -> float:
    deadline = time.monotonic() + timeout
    while True:
        try:
            arrived, message = arrivals.get(timeout=max(deadline - time.monotonic(), 0.001))
        except queue.Empty:
            raise RuntimeError(f"no such websocket message within {timeout:.0f} s") from None
        if wanted(message):
            return arrived


def live_delay(http: Any, run_id: int, step: int, arrivals: queue.Queue) -> float:
    body = orjson.dumps({"points": [{"key": "live", "step": step, "value": step / 8}]})

    def carries_step(message: dict) -> bool:
        series = message.get("series", {}).get("live", {})
        return message.get("type") == "run.points" and step in series.get("steps", [])

    started = time.perf_counter()
    http.post(f"/api/v1/runs/{run_id}/metrics", content=body).raise_for_status()
    return wait_for(arrivals, carries_step) - started


REPORT_RENDER = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.benchmarks import report_render
report_render.POINTS = int(sys.argv[2])
sys.argv = ["report_render.py", *sys.argv[3:]]
report_render.main()
"""


def report_render(root: Path, plan: Plan, database_url: str | None) -> float:
    """report_render.py as it runs (own throwaway home, in-process render); its median, ms."""
    tmp = root / "report-render"
    tmp.mkdir(exist_ok=True)  # report_render's mkdtemp lands here, and goes with ``root``
    drop = ("DATABASE_URL", "REDIS_URL", "LABBOOK_HOME")
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env["TMPDIR"] = str(tmp)
    extra = ["--database-url", database_url] if database_url else []
    done = subprocess.run(
        [sys.executable, "-c", REPORT_RENDER, str(REPO), str(plan.report_points), *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    found = re.search(r"server time\s+median (\d+) ms, p95 (\d+) ms", done.stdout)
    if done.returncode or not found:
        raise RuntimeError(f"report_render.py failed ({done.returncode}):\n{done.stdout}")
    say(f"  report render: median {found[1]} ms, p95 {found[2]} ms")
    return float(found[1])


STUB_SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

points = [{"key": "k3", "value": 0.5, "timestamp": 1, "step": s} for s in range(int(sys.argv[2]))]
HISTORY = json.dumps({"metrics": points}).encode()


class Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 65536

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = HISTORY if "get-history" in self.path else b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Answer).serve_forever()
"""


@contextlib.contextmanager
def stub_server(history_points: int) -> Iterator[str]:
    """A server that answers every MLflow call at once: what the client alone costs."""
    port = lb.free_port()
    command = [sys.executable, "-c", STUB_SERVER, str(port), str(history_points)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        uri = f"http://127.0.0.1:{port}"
        status, body = launcher.wait_healthy(
            f"{uri}/health", timeout=30, give_up=lambda: process.poll() is not None
        )
        if status != 200:
            raise RuntimeError(f"the stub server did not start: {body}")
        yield uri
    finally:
        stop_tree(process, whole_group=True)


def client_floor(plan: Plan) -> dict[str, float]:
    """Seconds the mlflow client itself spends: a 1,000-point batch, a call, a short read."""
    from mlflow import MlflowClient

    use_token(None)
    batches = [metric_batch(b * STEPS, 0) for b in range(plan.ingest_batches)]
    with stub_server(plan.small_points) as uri:
        client = MlflowClient(tracking_uri=uri)
        batch, _ = timed(lambda: [client.log_batch("0", metrics=m) for m in batches])
        calls, _ = timed(
            lambda: [
                client.log_metric("0", "chatty", 1.0, step=s) for s in range(plan.chatty_calls)
            ]
        )
        read, _ = timed(lambda: client.get_metric_history("0", "k3"))
    return {
        "batch": batch / plan.ingest_batches,
        "call": calls / plan.chatty_calls,
        "read": read,
    }


def print_floor(floor: dict[str, float], results: Results, plan: Plan) -> None:
    """What the client alone costs, and so the best ratio any server could show through it."""
    rate, history = results.value("ingest", "MLflow"), results.value("history", "MLflow")
    ceiling = 1_000 / floor["batch"]
    print(
        "\nThe mlflow client alone, against a stub server that answers at once (the ceiling"
        " for any server driven this way):"
        f"\n  log_batch of 1,000 points {floor['batch'] * 1000:.1f} ms: at most"
        f" {ceiling:,.0f} points/s, {ceiling / rate:.1f}x MLflow's ingestion figure;"
        f"\n  log_metric {floor['call'] * 1000:.2f} ms: at most {1 / floor['call']:,.0f} calls/s;"
        f"\n  get_metric_history of {plan.small_points:,} points {floor['read'] * 1000:.0f} ms:"
        f" at most {history / (floor['read'] * 1000):.1f}x faster than MLflow."
    )


# --- Figures -----------------------------------------------------------------------------------

Goal = Callable[[Any, Any], bool]  # (Labbook's value, MLflow's value or None) -> met


def more(factor: float) -> Goal:
    return lambda lab, ml: ml is not None and lab >= factor * ml


def faster(factor: float) -> Goal:
    return lambda lab, ml: ml is not None and ml >= factor * lab


def below(limit: float) -> Goal:
    return lambda lab, ml: lab < limit


@dataclass(frozen=True)
class Spec:
    key: str
    label: str
    unit: str  # points/s, calls/s, ms, MB, runs, check
    target: str = ""
    goal: Goal | None = None
    sqlite_only: bool = False  # the target holds for the embedded default only

    @property
    def higher_better(self) -> bool:
        return self.unit.endswith("/s")

    def cell(self, value: Any) -> str:
        if value is None:
            return "-"
        if self.unit == "check":
            return value
        if self.unit == "ms" and value < 100:
            return f"{value:,.1f} ms"
        return f"{value:,.0f} {self.unit}"


def specs(plan: Plan) -> list[Spec]:
    n = f"{plan.writers} processes x {plan.writer_points:,} points"
    return [
        Spec("ingest", f"1. ingestion, {plan.ingest_batches} log_batch of 1,000", "points/s",
             "≥ 10x", more(10)),
        Spec("chatty", f"2. chatty, {plan.chatty_calls:,} log_metric calls", "calls/s"),
        Spec("concurrent", f"3. concurrent, {n}", "points/s", "≥ 10x", more(10)),
        Spec("once", "3. every point stored exactly once", "check", "zero lost/duplicated",
             lambda lab, ml: lab == "PASS"),
        Spec("history", f"4. get_metric_history, {plan.small_points:,} points", "ms",
             "≥ 5x faster", faster(5)),
        Spec("history-big", f"4. get_metric_history, {plan.big_points:,} points", "ms",
             "answered", lambda lab, ml: lab is not None),
        Spec("growth", "4. server RSS growth during that read", "MB", "bounded (< 100 MB)",
             below(100)),
        Spec("search", f"5. search_runs, {plan.search_runs} runs, filter + order", "ms",
             "≥ 3x faster", faster(3)),
        Spec("found", "5. runs found (metrics.acc > 0.5)", "runs", "same as MLflow",
             lambda lab, ml: lab == ml),
        Spec("idle", "6. RSS of all server processes, idle", "MB"),
        Spec("peak", "6. peak RSS of all server processes, 1-5", "MB", "lower than MLflow's",
             lambda lab, ml: ml is not None and lab < ml),
        Spec("own", "own API: ingest, 10,000-point batches", "points/s",
             "≥ 100,000 points/s on SQLite", lambda lab, ml: lab >= 100_000, sqlite_only=True),
        Spec("downsampled", f"own API: {plan.big_points:,}-point key, max_points=1000", "ms",
             "< 100 ms", below(100)),
        Spec("report", "20-chart report render (report_render.py)", "ms", "< 300 ms", below(300)),
        Spec("live-p50", "live update, ingest -> websocket, p50", "ms"),
        Spec("live-p95", "live update, ingest -> websocket, p95", "ms", "< 1 s", below(1000)),
    ]  # fmt: skip


class Results:
    def __init__(self, plan: Plan) -> None:
        self.specs = {spec.key: spec for spec in specs(plan)}
        self.values: dict[tuple[str, str], list[Any]] = {}

    def add(self, key: str, server: str, value: Any) -> None:
        self.values.setdefault((key, server), []).append(value)
        say(f"  {server:<20} {self.specs[key].label}: {self.specs[key].cell(value)}")

    def value(self, key: str, server: str) -> Any:
        """The median, or for a check PASS only when every repetition passed."""
        values = self.values.get((key, server))
        if not values:
            return None
        if self.specs[key].unit == "check":
            return next((v for v in values if v != "PASS"), "PASS")
        return statistics.median(values)


def ratio_cell(spec: Spec, lab: Any, ml: Any) -> str:
    if lab is None or ml is None or spec.unit == "check":
        return "-"
    if spec.unit == "runs":
        return "same" if lab == ml else "differs"
    ratio = lab / ml
    if spec.higher_better or ratio == 0:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x ({1 / ratio:.1f}x {'faster' if spec.unit == 'ms' else 'less'})"


def met_cell(spec: Spec, server: str, lab: Any, ml: Any) -> str:
    if spec.goal is None or lab is None:
        return ""
    if spec.sqlite_only and "SQLite" not in server:
        return "-"
    return "yes" if spec.goal(lab, ml) else "NO"


def table_rows(results: Results, servers: list[str]) -> list[list[str]]:
    labbooks = servers[1:]
    rows = []
    for spec in results.specs.values():
        ml = results.value(spec.key, servers[0])
        labs = [results.value(spec.key, server) for server in labbooks]
        ratios = " / ".join(ratio_cell(spec, lab, ml) for lab in labs)
        met = " / ".join(met_cell(spec, s, lab, ml) for s, lab in zip(labbooks, labs, strict=True))
        cells = [spec.cell(ml), *(spec.cell(lab) for lab in labs)]
        rows.append([spec.label, *cells, ratios, spec.target, met.strip(" /")])
    return rows


def print_table(results: Results, servers: list[str]) -> None:
    header = ["figure", *servers, "ratio Labbook/MLflow", "target", "met?"]
    rows = table_rows(results, servers)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


# --- The run -----------------------------------------------------------------------------------


def run_repetition(
    order: list[Target], plan: Plan, rep: int, results: Results, sampler: RssSampler
) -> None:
    def concurrent_figures(target: Target) -> dict[str, Any]:
        rate, verdict = concurrent(target, plan, rep)
        return {"concurrent": rate, "once": verdict}

    def big_figures(target: Target) -> dict[str, Any]:
        latency, growth = history_big(target, plan, sampler)
        return {"history-big": latency, "growth": growth}

    def search_figures(target: Target) -> dict[str, Any]:
        latency, found = search(target, plan)
        return {"search": latency, "found": found}

    workloads: list[tuple[str, Callable[[Target], dict[str, Any]]]] = [
        ("1. ingestion", lambda t: {"ingest": ingestion(t, plan, rep)}),
        ("2. chatty logging", lambda t: {"chatty": chatty(t, plan, rep)}),
        ("3. concurrent writers, then reading every point back", concurrent_figures),
        ("4. history of a short key", lambda t: {"history": history_small(t, plan, rep)}),
        ("4. history of the long key", big_figures),
        ("5. search", search_figures),
    ]
    for title, workload in workloads:
        say(f"Repetition {rep + 1}, {title} ({' then '.join(t.name for t in order)})")
        for target in order:
            for key, value in workload(target).items():
                results.add(key, target.name, value)


def compare(targets: list[Target], plan: Plan, repeat: int, results: Results) -> None:
    """Workloads 1-5 on every server, taking turns, while their memory is sampled."""
    sampler = RssSampler({target.name: target.process.pid for target in targets})
    sampler.sample()
    sampler.start()
    begun = time.perf_counter()
    try:
        for target in targets:
            results.add("idle", target.name, sampler.before(target.name, math.inf) / 2**20)
        say("Preparing workloads 4 and 5: a long series and an experiment to search")
        for target in targets:
            load_big_series(target, plan)
            seed_search(target, plan)
        for rep in range(repeat):
            order = targets if rep % 2 == 0 else targets[::-1]
            run_repetition(order, plan, rep, results, sampler)
    finally:
        sampler.stopping.set()
        sampler.join()
    for target in targets:
        results.add("peak", target.name, sampler.peak(target.name, begun) / 2**20)


def labbook_only(targets: list[Target], plan: Plan, repeat: int, results: Results) -> None:
    for target in targets:
        if target.is_mlflow:
            continue
        say(f"{target.name}: own API ingest, downsampled read, live updates")
        for rep in range(repeat):
            results.add("own", target.name, own_ingest(target, plan, rep))
        results.add("downsampled", target.name, downsampled(target, plan))
        delays = sorted(live_delays(target, plan))
        results.add("live-p50", target.name, statistics.median(delays) * 1000)
        p95 = delays[math.ceil(0.95 * len(delays)) - 1]
        results.add("live-p95", target.name, p95 * 1000)


def shapes_for(args: argparse.Namespace) -> list[lb.Shape]:
    shapes = [lb.Shape("Labbook (SQLite)")]
    if args.postgres:
        shapes.append(lb.Shape("Labbook (PG+Redis)", args.postgres, args.redis))
    return shapes


def start_servers(
    stack: contextlib.ExitStack, root: Path, args: argparse.Namespace
) -> list[Target]:
    say("Starting mlflow server (SQLite backend, default workers)")
    targets = [stack.enter_context(mlflow_server(root))]
    for shape in shapes_for(args):
        say(f"Starting {shape.name} as manage.py up runs it")
        targets.append(stack.enter_context(labbook_server(root, shape)))
    return targets


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, flags=re.MULTILINE)
    return f"{os.cpu_count()} CPUs ({models[0] if models else platform.machine()})"


def print_header(targets: list[Target], plan: Plan, repeat: int) -> None:
    import mlflow

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\nLabbook vs MLflow: {machine()}, Python {platform.python_version()}, "
          f"mlflow {mlflow.__version__}, {now}")  # fmt: skip
    mlflow_target = targets[0]
    print(f"mlflow server: SQLite backend, workers left at the default: "
          f"{mlflow_workers(mlflow_target)} (uvicorn --workers), "
          f"{len(tree_pids(mlflow_target.process.pid))} processes in all")  # fmt: skip
    for target in targets[1:]:
        count = len(tree_pids(target.process.pid))
        print(f"{target.name}: manage.py up (web server, Celery worker, beat), {count} processes")
    print(f"{repeat} repetitions, medians; the first server alternates per repetition. "
          f"The {plan.big_points:,}-point series is loaded into MLflow's SQLite tables directly "
          "(its server would take minutes), into Labbook through its own API.\n")  # fmt: skip


def require_mlflow() -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        sys.exit("vs_mlflow.py needs the mlflow package in this Python: pip install mlflow")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each workload")
    parser.add_argument("--quick", action="store_true", help="every workload ~10x smaller")
    parser.add_argument(
        "--postgres",
        help="also Labbook on PostgreSQL: a server URL (postgres://user@host:port/any); "
        "a throwaway database is created on it and dropped at the end",
    )
    parser.add_argument("--redis", default=lb.DEFAULT_REDIS, help="Redis for that Labbook")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_mlflow()
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    plan = QUICK if args.quick else Plan()
    results = Results(plan)
    root = Path(tempfile.mkdtemp(prefix="vs-mlflow-"))
    try:
        say("Timing the mlflow client alone against a stub server")
        floor = client_floor(plan)
        with contextlib.ExitStack() as stack:
            targets = start_servers(stack, root, args)
            servers = [target.name for target in targets]
            print_header(targets, plan, args.repeat)
            compare(targets, plan, args.repeat, results)
            labbook_only(targets, plan, args.repeat, results)
            say("Stopping the servers")
        for shape in shapes_for(args):
            say(f"{shape.name}: report_render.py ({plan.report_points:,} points a series)")
            results.add("report", shape.name, report_render(root, plan, shape.database_url))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(results, servers)
    print_floor(floor, results, plan)
    print(f"\nwall time {(time.perf_counter() - STARTED) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
