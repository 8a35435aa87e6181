"""What every part of the MLflow comparison shares: sizes, constants, the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


KEYS = tuple(f"k{k}" for k in range(10))


STEPS = 100  # per key in a 1,000-point log_batch


TIMESTAMP = 1_700_000_000_000  # ms; fixed, so a re-sent point is an exact duplicate


INTERVAL = 0.2  # seconds between RSS samples


START_TIMEOUT = 180.0


STOP_TIMEOUT = 30.0


EXPERIMENT = "bench/vs-mlflow"


SEARCH_EXPERIMENT = "bench/search"


STARTED = time.perf_counter()


def say(text: str) -> None:
    print(f"[{time.perf_counter() - STARTED:5.0f} s] {text}", flush=True)


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


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = action()
    return time.perf_counter() - started, answer
