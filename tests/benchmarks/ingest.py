"""Ingest and history-read benchmark against a real server on loopback.

    python tests/benchmarks/ingest.py                      # SQLite (embedded default)
    python tests/benchmarks/ingest.py --all                # + PostgreSQL and Redis on 127.0.0.1
    python tests/benchmarks/ingest.py --database-url postgres://postgres@127.0.0.1:5432/x

Each shape gets a fresh LABBOOK_HOME (and, for PostgreSQL, a throwaway
database on the given server, dropped at the end), ``manage.py migrate``, a
user with a team and an API token, and the ASGI server as ``manage.py up``
runs it (one uvicorn process). Figures are measured with httpx over
keep-alive connections; request bodies are encoded before the clock starts.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson

REPO = Path(__file__).resolve().parents[2]
KEYS = ("train/loss", "train/acc", "lr", "grad_norm", "val/loss")
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"
THREADS = 4

SETUP = """
import django

django.setup()
from tracking import services

user, _ = services.user_get_or_create(username="bench")
services.team_create(slug="bench", owner=user)
print(services.token_create(user=user, name="benchmark")[1])
"""


# --- Results ---------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str = ""
    note: str = ""

    def cell(self) -> str:
        if self.unit == "points/s":
            return f"{self.value:,.0f} {self.unit}"
        return f"{self.value:,.1f} {self.unit}"


@dataclass
class Shape:
    name: str
    database_url: str | None = None
    redis_url: str | None = None
    figures: list[Figure] = field(default_factory=list)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        note = f"  ({figure.note})" if figure.note else ""
        print(f"  {figure.name:<48} {figure.cell():>22}{note}", flush=True)


def print_table(shapes: list[Shape]) -> None:
    names = list(dict.fromkeys(f.name for s in shapes for f in s.figures))
    targets = {f.name: f.target for s in shapes for f in s.figures if f.target}
    cells = {(s.name, f.name): f.cell() for s in shapes for f in s.figures}
    header = ["figure", *(s.name for s in shapes), "target"]
    rows = [[n, *(cells.get((s.name, n), "-") for s in shapes), targets.get(n, "")] for n in names]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


# --- The server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def on_database(url: str, name: str, query: str = "") -> str:
    """``url`` with its database name (and query string) replaced."""
    return urlsplit(url)._replace(path=f"/{name}", query=query).geturl()


def admin_execute(server_url: str, sql: str, database: str = "postgres") -> None:
    import psycopg

    with psycopg.connect(on_database(server_url, database), autocommit=True) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server of ``server_url``; dropped on exit."""
    name = f"labbook_bench_{os.getpid()}"
    admin_execute(server_url, f'CREATE DATABASE "{name}"')
    try:
        # The query string carries Django options (e.g. ?server_side_binding=true).
        yield on_database(server_url, name, urlsplit(server_url).query)
    finally:
        admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def shape_env(shape: Shape, home: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(LABBOOK_HOME=str(home), LOG_LEVEL="WARNING", PYTHONPATH=str(REPO))
    env["DJANGO_SETTINGS_MODULE"] = "labbook.settings"
    if database_url:
        env["DATABASE_URL"] = database_url
    if shape.redis_url:
        env["REDIS_URL"] = shape.redis_url
    return env


def wait_healthy(base_url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Server:
    base_url: str
    token: str
    pid: int
    database_url: str | None = None

    def analyze(self) -> None:
        """Refresh PostgreSQL's planner statistics, as autovacuum eventually would."""
        assert self.database_url
        admin_execute(self.database_url, "ANALYZE", urlsplit(self.database_url).path[1:])

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
            },
            timeout=300,
        )


@contextlib.contextmanager
def running_server(shape: Shape) -> Iterator[Server]:
    home = Path(tempfile.mkdtemp(prefix="labbook-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            database_url = shape.database_url
            if database_url:
                database_url = stack.enter_context(throwaway_database(database_url))
            env = shape_env(shape, home, database_url)
            yield stack.enter_context(serve(env, home, database_url))
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def serve(env: dict[str, str], home: Path, database_url: str | None) -> Iterator[Server]:
    manage(env, "manage.py", "migrate", "--verbosity", "0")
    token = manage(env, "-c", SETUP).strip()
    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", "labbook.asgi:application"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
        *("--log-level", "warning", "--lifespan", "off"),
    ]
    with (home / "server.log").open("ab") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(base_url, process)
        yield Server(base_url, token, process.pid, database_url)
    finally:
        stop(process)


# --- Workloads ------------------------------------------------------------------------------


def create_run(client: httpx.Client, name: str) -> int:
    body = orjson.dumps({"project": "bench/ingest", "name": name})
    response = client.post("/api/v1/runs", content=body)
    response.raise_for_status()
    return response.json()["id"]


def batch_body(keys: tuple[str, ...], first_step: int, size: int) -> bytes:
    """``size`` points spread over ``keys``, at consecutive steps from ``first_step``."""
    per_key = size // len(keys)
    points = [
        {"key": key, "step": step, "value": math.sin(step / 100) + k}
        for k, key in enumerate(keys)
        for step in range(first_step, first_step + per_key)
    ]
    return orjson.dumps({"points": points})


def post_batches(
    client: httpx.Client, run_id: int, keys: tuple[str, ...], size: int, count: int
) -> list[float]:
    """Send ``count`` batches; answer each request's latency in seconds."""
    per_key = size // len(keys)
    bodies = [batch_body(keys, i * per_key, size) for i in range(count)]
    latencies = []
    for body in bodies:
        started = time.perf_counter()
        response = client.post(f"/api/v1/runs/{run_id}/metrics", content=body)
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        assert response.json()["accepted"] == size, response.text
    return latencies


@dataclass
class IngestResult:
    points: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.points / self.seconds


def ingest(server: Server, size: int, count: int, threads: int) -> IngestResult:
    """``threads`` clients, each on its own run (like parallel training jobs)."""
    latencies: list[float] = []
    errors: list[BaseException] = []

    def one_client(index: int) -> None:
        try:
            with server.client() as client:
                run_id = create_run(client, f"ingest-{size}-{threads}-{index}")
                latencies.extend(post_batches(client, run_id, KEYS, size, count))
        except BaseException as error:  # re-raised in the main thread
            errors.append(error)

    workers = [threading.Thread(target=one_client, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return IngestResult(size * count * threads, elapsed, latencies)


def series_run(server: Server, points: int) -> tuple[int, float]:
    """A run with one key of ``points`` points, sent in 10,000-point batches."""
    with server.client() as client:
        run_id = create_run(client, f"series-{points}")
        started = time.perf_counter()
        post_batches(client, run_id, ("series",), 10_000, points // 10_000)
        return run_id, points / (time.perf_counter() - started)


def median_read(server: Server, path: str, reads: int, check: Callable[[dict], None]) -> float:
    with server.client() as client:
        check(client.get(path).raise_for_status().json())  # warm-up, and proof of content
        latencies = []
        for _ in range(reads):
            started = time.perf_counter()
            client.get(path).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return statistics.median(latencies)


def expect(count: int | None = None, at_most: int | None = None) -> Callable[[dict], None]:
    def check(body: dict) -> None:
        n = len(body["steps"])
        assert count is None or n == count, f"{n} points, expected {count}"
        assert at_most is None or n <= at_most, f"{n} points, expected at most {at_most}"

    return check


# --- The benchmark ------------------------------------------------------------------------


@dataclass
class Plan:
    batches_1k: int
    batches_10k: int
    reads: int


def bench_ingest(shape: Shape, server: Server, plan: Plan) -> None:
    for size, count in ((1_000, plan.batches_1k), (10_000, plan.batches_10k)):
        for threads in (1, THREADS):
            result = ingest(server, size, count // threads, threads)
            what = f"{size:,}-point batches, {threads} client{'s' * (threads > 1)}"
            target = "≥ 100,000 points/s on SQLite" if size == 10_000 and threads == 1 else ""
            shape.add(Figure(f"ingest {what}", result.rate, "points/s", target))
            median = statistics.median(result.latencies) * 1000
            shape.add(Figure(f"  median batch latency, {what}", median, "ms"))


def bench_reads(shape: Shape, server: Server, plan: Plan) -> None:
    run_id, rate = series_run(server, 100_000)
    path = f"/api/v1/runs/{run_id}/metrics/series"
    full = median_read(server, path, max(3, plan.reads // 5), expect(count=100_000))
    shape.add(Figure("history read, 100k points, all points", full * 1000, "ms"))
    down = median_read(server, f"{path}?max_points=1000", plan.reads, expect(at_most=1002))
    shape.add(Figure("history read, 100k points, max_points=1000", down * 1000, "ms"))
    run_id, rate = series_run(server, 1_000_000)
    shape.add(Figure("ingest 1M-point series (10k batches, 1 key)", rate, "points/s"))
    path = f"/api/v1/runs/{run_id}/metrics/series?max_points=1000"
    down = median_read(server, path, plan.reads, expect(at_most=1002))
    shape.add(Figure("history read, 1M points, max_points=1000", down * 1000, "ms", "< 100 ms"))
    if server.database_url:
        # Right after a bulk load PostgreSQL has no statistics for the new rows yet.
        server.analyze()
        down = median_read(server, path, plan.reads, expect(at_most=1002))
        label = "history read, 1M points, max_points=1000, after ANALYZE"
        shape.add(Figure(label, down * 1000, "ms", "< 100 ms"))


def bench_shape(shape: Shape, plan: Plan) -> None:
    print(f"\n== {shape.name} ==", flush=True)
    started = time.perf_counter()
    with running_server(shape) as server:
        bench_ingest(shape, server, plan)
        bench_reads(shape, server, plan)
    print(f"  ({time.perf_counter() - started:.0f} s)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (postgres://user@host:port/any): a throwaway database "
        "is created on it and dropped at the end",
    )
    parser.add_argument("--redis-url", help=f"Redis for the PostgreSQL shape [{DEFAULT_REDIS}]")
    parser.add_argument("--all", action="store_true", help="also PostgreSQL + Redis on 127.0.0.1")
    parser.add_argument("--skip-sqlite", action="store_true", help="only the PostgreSQL shape")
    parser.add_argument("--quick", action="store_true", help="fewer batches and reads")
    return parser.parse_args(argv)


def shapes_for(args: argparse.Namespace) -> list[Shape]:
    shapes = [] if args.skip_sqlite else [Shape("SQLite + filesystem queue")]
    if args.database_url or args.all:
        database_url = args.database_url or DEFAULT_POSTGRES
        redis_url = args.redis_url or DEFAULT_REDIS
        shapes.append(Shape("PostgreSQL + Redis", database_url, redis_url))
    return shapes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(batches_1k=40, batches_10k=8, reads=10) if args.quick else Plan(200, 40, 30)
    shapes = shapes_for(args)
    print(f"Labbook ingest benchmark, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for shape in shapes:
        bench_shape(shape, plan)
    print_table(shapes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
