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
import math
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks import ingest as lb
from tests.benchmarks.mlflow_bench import ceiling, own_api, workloads
from tests.benchmarks.mlflow_bench.common import QUICK, STARTED, Plan, say
from tests.benchmarks.mlflow_bench.processes import RssSampler, tree_pids
from tests.benchmarks.mlflow_bench.servers import (
    Target,
    labbook_server,
    mlflow_server,
    mlflow_workers,
)
from tests.benchmarks.mlflow_bench.table import Results, print_table


def run_repetition(
    order: list[Target], plan: Plan, rep: int, results: Results, sampler: RssSampler
) -> None:
    def concurrent_figures(target: Target) -> dict[str, Any]:
        rate, verdict = workloads.concurrent(target, plan, rep)
        return {"concurrent": rate, "once": verdict}

    def big_figures(target: Target) -> dict[str, Any]:
        latency, growth = workloads.history_big(target, plan, sampler)
        return {"history-big": latency, "growth": growth}

    def search_figures(target: Target) -> dict[str, Any]:
        latency, found = workloads.search(target, plan)
        return {"search": latency, "found": found}

    steps: list[tuple[str, Callable[[Target], dict[str, Any]]]] = [
        ("1. ingestion", lambda t: {"ingest": workloads.ingestion(t, plan, rep)}),
        ("2. chatty logging", lambda t: {"chatty": workloads.chatty(t, plan, rep)}),
        ("3. concurrent writers, then reading every point back", concurrent_figures),
        ("4. history of a short key", lambda t: {"history": workloads.history_small(t, plan, rep)}),
        ("4. history of the long key", big_figures),
        ("5. search", search_figures),
    ]
    for title, workload in steps:
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
            workloads.load_big_series(target, plan)
            workloads.seed_search(target, plan)
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
            results.add("own", target.name, own_api.own_ingest(target, plan, rep))
        results.add("downsampled", target.name, own_api.downsampled(target, plan))
        delays = sorted(own_api.live_delays(target, plan))
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
        best = ceiling.client_alone(plan)
        with contextlib.ExitStack() as stack:
            targets = start_servers(stack, root, args)
            servers = [target.name for target in targets]
            print_header(targets, plan, args.repeat)
            compare(targets, plan, args.repeat, results)
            labbook_only(targets, plan, args.repeat, results)
            say("Stopping the servers")
        for shape in shapes_for(args):
            say(f"{shape.name}: report_render.py ({plan.report_points:,} points a series)")
            results.add("report", shape.name, own_api.report_render(root, plan, shape.database_url))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(results, servers, best)
    ceiling.print_ceiling(best, plan)
    print(f"\nwall time {(time.perf_counter() - STARTED) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
