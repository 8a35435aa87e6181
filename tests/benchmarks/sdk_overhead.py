"""What the Python SDK costs a training loop, against a real server on loopback.

    python tests/benchmarks/sdk_overhead.py                 # 200,000 calls, 20,000 steps
    python tests/benchmarks/sdk_overhead.py --calls 50000 --steps 5000

(a) per-call overhead of ``run.log()`` with 10 metrics: every call timed with
    ``time.perf_counter_ns`` (the dict is built before the clock starts, as a
    training step would have it ready); median, p99, p99.9 and max.
(b) end to end: one process logs N steps x 10 keys and finishes; wall time
    from ``sdk.init`` to the end of ``finish()``, then the server's counts are
    checked, so the rate is of points stored, not points queued.

The server is uvicorn as ``manage.py up`` runs it, on a fresh SQLite home.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.sdk.server import LabbookServer  # noqa: E402 - needs REPO on sys.path
from tracking import sdk  # noqa: E402

KEYS = tuple(f"metric_{i}" for i in range(10))


@dataclass
class Figure:
    name: str
    value: str
    target: str = ""


def print_table(figures: list[Figure]) -> None:
    header = Figure("figure", "value", "target")
    widths = [
        max(len(getattr(f, col)) for f in [header, *figures]) for col in Figure.__annotations__
    ]
    for row in [header, Figure(*("-" * w for w in widths)), *figures]:
        cells = (row.name, row.value, row.target)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


@contextmanager
def running_server() -> Iterator[LabbookServer]:
    with tempfile.TemporaryDirectory(prefix="labbook-sdk-bench-") as home:
        os.environ["LABBOOK_SPOOL_DIR"] = str(Path(home) / "spool")
        server = LabbookServer(Path(home) / "home")
        try:
            server.start()
            yield server
        finally:
            server.stop()


def percentile(ordered: list[int], fraction: float) -> int:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def metrics(step: int) -> dict[str, float]:
    return {key: step * 1e-3 + i for i, key in enumerate(KEYS)}


def time_calls(run: sdk.Run, calls: int) -> list[int]:
    durations = [0] * calls
    clock = time.perf_counter_ns
    for step in range(calls):
        values = metrics(step)
        started = clock()
        run.log(values)
        durations[step] = clock() - started
    return durations


def check_stored(server: LabbookServer, run_id: int, steps: int) -> None:
    counts = server.metric_keys(run_id)
    expected = dict.fromkeys(KEYS, steps)
    if counts != expected:
        raise SystemExit(f"the server holds {counts}, expected {steps} points for each key")


def bench_overhead(server: LabbookServer, calls: int) -> list[Figure]:
    run = sdk.init(project="lab/sdk-bench", name="overhead", url=server.url, token=server.token)
    durations = sorted(time_calls(run, calls))
    started = time.perf_counter()
    run.finish()
    drain = time.perf_counter() - started
    check_stored(server, run.id, calls)
    us = 1e-3
    return [
        Figure(
            f"log() 10 metrics, median ({calls:,} calls)",
            f"{durations[calls // 2] * us:.2f} µs",
            "< 20 µs",
        ),
        Figure("log() 10 metrics, mean", f"{statistics.fmean(durations) * us:.2f} µs"),
        Figure("log() 10 metrics, p99", f"{percentile(durations, 0.99) * us:.2f} µs"),
        Figure("log() 10 metrics, p99.9", f"{percentile(durations, 0.999) * us:.2f} µs"),
        Figure("log() 10 metrics, max", f"{durations[-1] * us / 1000:.2f} ms"),
        Figure("finish() after the timed calls (drain)", f"{drain:.2f} s"),
    ]


def bench_end_to_end(server: LabbookServer, steps: int) -> list[Figure]:
    started = time.perf_counter()
    run = sdk.init(project="lab/sdk-bench", name="end-to-end", url=server.url, token=server.token)
    for step in range(steps):
        run.log(metrics(step))
    logged = time.perf_counter() - started
    run.finish()
    wall = time.perf_counter() - started
    check_stored(server, run.id, steps)
    points = steps * len(KEYS)
    return [
        Figure(f"end to end: {steps:,} steps x 10 keys, wall", f"{wall:.2f} s"),
        Figure("end to end: of which the log() loop", f"{logged:.2f} s"),
        Figure("end to end: points stored per second", f"{points / wall:,.0f} points/s"),
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000, help="timed log() calls [200,000]")
    parser.add_argument("--steps", type=int, default=20_000, help="end-to-end steps [20,000]")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with running_server() as server:
        figures = bench_overhead(server, args.calls)
        figures += bench_end_to_end(server, args.steps)
    print(f"\nPython {sys.version.split()[0]} on {os.cpu_count()} CPUs, SQLite server")
    print_table(figures)


if __name__ == "__main__":
    main()
