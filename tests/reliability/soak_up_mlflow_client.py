"""One unmodified-mlflow client of the `manage.py up` soak, logging asynchronously.

    MLFLOW_TRACKING_URI=... MLFLOW_TRACKING_TOKEN=... \\
    python -m tests.reliability.soak_up_mlflow_client EXPERIMENT CLIENT SECONDS OUT

Each run (``MlflowClient.create_run``) logs with ``synchronous=False``, every
point with an explicit millisecond timestamp:

- ``ooo``: ``mlflow.log_metric`` one call a step, steps 1-5, then 0, then
  6 onwards. The client's async queue hands calls to a pool of threads, so
  they also reach the server in any order.
- ``batch``: ``MlflowClient.log_batch`` in chunks of CHUNK steps, the chunks
  sent last-first and each chunk's steps in reverse.
- ``nostep``: NOSTEP calls of ``mlflow.log_metric`` without a step: the
  client sends step 0 for each (MLflow stores them all at step 0).

Then it waits for every async operation and ends the run ``FAILED`` (one run
in ten: index 9, 19, ...) or ``FINISHED``. OUT gets one JSON line per run, in
the SDK client's shape (``points``: key -> [[step, value, timestamp_ms]]),
with ``nostep`` naming the keys logged without a step and ``errors`` the
async operations the client gave up on.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

FAIL_EVERY = 10
OOO_STEPS = 24
BATCH_STEPS, CHUNK = 30, 10
NOSTEP = 3
PAUSE = 0.01


def now_ms() -> int:
    return int(time.time() * 1000)


def value(index: int, k: int, step: int) -> float:
    return index + k / 8 + step / 1024  # exact in binary


def one_run(client: MlflowClient, experiment_id: str, prefix: str, index: int) -> dict[str, Any]:
    name = f"{prefix}-r{index}"
    failing = index % FAIL_EVERY == FAIL_EVERY - 1
    run_id = client.create_run(experiment_id, run_name=name, tags={"soak": "mlflow"}).info.run_id
    sent: dict[str, list[list]] = {"ooo": [], "batch": [], "nostep": []}
    operations = []
    nostep_at = {0, OOO_STEPS // 2, OOO_STEPS - 1}  # positions in the ooo loop
    nostep_count = 0

    def nostep() -> None:
        nonlocal nostep_count
        stamp, logged = now_ms(), value(index, 3, nostep_count)
        operations.append(
            mlflow.log_metric("nostep", logged, timestamp=stamp, synchronous=False, run_id=run_id)
        )
        sent["nostep"].append([0, logged, stamp])
        nostep_count += 1

    order = [1, 2, 3, 4, 5, 0, *range(6, OOO_STEPS)]
    for position, step in enumerate(order):
        if position in nostep_at and nostep_count < NOSTEP:
            nostep()
        stamp, logged = now_ms(), value(index, 1, step)
        operations.append(
            mlflow.log_metric(
                "ooo", logged, step=step, timestamp=stamp, synchronous=False, run_id=run_id
            )
        )
        sent["ooo"].append([step, logged, stamp])
        time.sleep(PAUSE)
    starts = list(range(0, BATCH_STEPS, CHUNK))
    for start in [starts[-1], *starts[:-1]]:
        stamp = now_ms()
        steps = list(range(start, min(start + CHUNK, BATCH_STEPS)))[::-1]
        metrics = [Metric("batch", value(index, 2, s), stamp + s % 7, s) for s in steps]
        operations.append(client.log_batch(run_id, metrics=metrics, synchronous=False))
        sent["batch"] += [[m.step, m.value, m.timestamp] for m in metrics]
        time.sleep(PAUSE)
    errors = []
    for operation in operations:
        try:
            operation.wait()
        except Exception as error:  # the client gave up on it after its retries
            errors.append(f"{type(error).__name__}: {error}"[:500])
    failed_at = time.time() if failing else None
    client.set_terminated(run_id, status="FAILED" if failing else "FINISHED")
    return {
        "kind": "run",
        "client": prefix,
        "name": name,
        "id": run_id,
        "status": "failed" if failing else "finished",
        "spike": False,
        "failed_at": failed_at,
        "ended_at": time.time(),
        "points": sent,
        "nostep": ["nostep"],
        "errors": errors,
    }


def main(experiment: str, prefix: str, seconds: str, out: str) -> None:
    deadline = time.monotonic() + float(seconds)
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    index = 0
    with Path(out).open("a", encoding="utf-8") as report:
        while time.monotonic() < deadline:
            record = one_run(client, experiment_id, prefix, index)
            report.write(json.dumps(record) + "\n")
            report.flush()
            index += 1
        mlflow.flush_async_logging()
        report.write(json.dumps({"kind": "done", "client": prefix, "runs": index}) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
