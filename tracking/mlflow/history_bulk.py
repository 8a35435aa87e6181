"""``metrics/get-history-bulk-interval``: one metric of several runs, sampled (the MLflow UI's
charts).

MLflow's rules (``get_metric_history_bulk_interval_handler`` in ``mlflow/server/handlers.py``):
at most ``MAX_RUNS`` run ids, ``max_results`` from 1 to ``MAX_RESULTS`` points per run,
``start_step`` and ``end_step`` both or neither. A run nobody may read, or that does not exist,
has no points: MLflow's store answers those with nothing too, and Labbook so tells an outsider
nothing about another team's runs.

Sampling: a range with at most ``max_results`` points answers every point, as MLflow does. A
longer one is read from the rollups (``tracking.history``): both ends and each bucket's lowest
and highest point, thinned to ``max_results``, where MLflow keeps evenly spaced points. Both
keep the first and the last point and answer only logged points; Labbook's choice keeps spikes
and reads a few thousand rollup rows however long the run (docs/mlflow.md).
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import User

from kernel.ids import is_id
from tracking import history, selectors
from tracking.mlflow import convert
from tracking.mlflow.http import API_DOCS, INT, REQUIRED_STRING, Arg, Arguments, invalid, read
from tracking.models import MetricSeries

MAX_RUNS = 100  # MLflow's MAX_RUNS_GET_METRIC_HISTORY_BULK
MAX_RESULTS = 2500  # MLflow's MAX_RESULTS_PER_RUN
RUN_ID = re.compile(r"[0-9]{1,19}")  # Labbook's run ids; any other text names no run
# MLflow's request schema, in its order: run_ids first (then their number), then the rest.
RUN_IDS = {"run_ids": Arg("list", required=True, items="string")}
SCHEMA = {"metric_key": REQUIRED_STRING, "start_step": INT, "end_step": INT, "max_results": INT}


def sampled(user: User, args: Arguments) -> dict[str, Any]:
    """MLflow's answer: ``{"metrics": [...]}`` run by run in the order asked, or ``{}``."""
    run_ids = _run_ids(args)
    checked = read(args, SCHEMA, query=True)
    start, end = checked["start_step"], checked["end_step"]
    most = _max_results(checked["max_results"])
    _check_range(start, end)
    found = _histories(user, run_ids, checked["metric_key"], most=most, start=start, end=end)
    metrics = [point for run_id in run_ids for point in found.get(run_id, [])]
    return {"metrics": metrics} if metrics else {}


# --- Arguments, checked in MLflow's order and worded as it words them ---------------------------


def _run_ids(args: Arguments) -> list[str]:
    run_ids: list[str] = read(args, RUN_IDS, query=True)["run_ids"]
    if len(run_ids) > MAX_RUNS:
        raise invalid(
            f"GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS} run_ids."
            f" Received {len(run_ids)} run_ids.{API_DOCS}"
        )
    return run_ids


def _max_results(most: int | None) -> int:
    if most is None:
        return MAX_RESULTS
    if not 1 <= most <= MAX_RESULTS:
        raise invalid(f"max_results must be between 1 and {MAX_RESULTS}.{API_DOCS}")
    return most


def _check_range(start: int | None, end: int | None) -> None:
    if (start is None) != (end is None):
        raise invalid("If either start step or end step are specified, both must be specified.")
    if start is not None and end is not None and start > end:
        raise invalid(
            "end_step must be greater than start_step."
            f" Found start_step={start} and end_step={end}."
        )


# --- Reading ------------------------------------------------------------------------------------


def _histories(
    user: User, run_ids: list[str], key: str, *, most: int, start: int | None, end: int | None
) -> dict[str, list[dict[str, Any]]]:
    """The sampled points of ``key`` by run id (as sent), for the runs ``user`` may read."""
    ids = {int(run_id) for run_id in run_ids if RUN_ID.fullmatch(run_id)}
    readable = selectors.runs_for_user(
        user, ids=[pk for pk in ids if is_id(pk)], include_deleted=True
    )
    series_list = list(
        MetricSeries.objects.filter(run_id__in=readable.values("pk"), key=key, count__gt=0)
    )
    found = history.range_histories(series_list, max_points=most, step_min=start, step_max=end)
    return {
        str(series.run_id): _points(series.run_id, key, found[series.pk], most)
        for series in series_list
    }


def _points(run_id: int, key: str, read: history.History, most: int) -> list[dict[str, Any]]:
    rows = _thinned(list(zip(read.steps, read.timestamps, read.values, strict=True)), most)
    return [
        {
            "run_id": str(run_id),
            "key": key,
            "value": value,
            "timestamp": convert.to_millis(stamp),
            "step": step,
        }
        for step, stamp, value in rows
    ]


def _thinned(rows: list[Any], most: int) -> list[Any]:
    """At most ``most`` of ``rows``, evenly spaced, the first and the last kept; only the last
    for one (MLflow's answer to ``max_results=1``). The rollups pick up to three points per
    bucket (lowest, highest, first NaN), so a downsampled read may hold a few more."""
    if len(rows) <= most:
        return rows
    if most == 1:
        return rows[-1:]
    span = len(rows) - 1
    return [rows[round(i * span / (most - 1))] for i in range(most)]
