"""Workloads 1-5 of the comparison, the same mlflow client code against every server."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from itertools import chain
from typing import Any

from tests.benchmarks import ingest as lb
from tests.benchmarks.mlflow_bench.client import (
    client_for,
    experiment_id,
    metric_batch,
    new_run,
    point_value,
    use_token,
)
from tests.benchmarks.mlflow_bench.common import (
    INTERVAL,
    KEYS,
    SEARCH_EXPERIMENT,
    START_TIMEOUT,
    STEPS,
    TIMESTAMP,
    Plan,
    say,
    timed,
)
from tests.benchmarks.mlflow_bench.processes import RssSampler
from tests.benchmarks.mlflow_bench.servers import Target


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
    batches = plan.writer_points // 1_000
    rate = run_writers(target.uri, target.token, runs, batches)
    return rate, exactly_once(target, client, runs, batches * STEPS)


def run_writers(uri: str, token: str | None, runs: dict[int, str], batches: int) -> float:
    """Points/s of one writer process per run, all starting together; raises if one failed."""
    context = multiprocessing.get_context("spawn")  # no fork under the sampler's thread
    barrier, done = context.Barrier(len(runs) + 1), context.Queue()
    args = [(uri, token, run_id, w, batches, barrier, done) for w, run_id in runs.items()]
    writers = [context.Process(target=concurrent_writer, args=a) for a in args]
    for writer in writers:
        writer.start()
    barrier.wait(timeout=START_TIMEOUT)
    started = time.time()
    finished = [done.get(timeout=3600) for _ in writers]
    for writer in writers:
        writer.join()
    if errors := [error for _, _, error in finished if error]:
        raise RuntimeError(f"{uri}: a writer failed: {errors[0]}")
    return len(runs) * batches * 1_000 / (max(t for _, t, _ in finished) - started)


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


SEARCH = {  # workload 5's arguments to search_runs
    "filter_string": "metrics.acc > 0.5",
    "order_by": ["metrics.acc DESC"],
    "max_results": 1000,
}


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
        seconds, found = timed(lambda: client.search_runs([target.search_experiment], **SEARCH))
        times.append(seconds)
    accs = [run.data.metrics["acc"] for run in found]
    assert accs == sorted(accs, reverse=True), f"{target.name}: not ordered by acc"
    return statistics.median(times) * 1000, len(found)
