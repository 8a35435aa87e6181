"""``experiments/delete-experiment-tag`` and ``metrics/get-history-bulk-interval``, side by side
with a real ``mlflow server``: the same answers, and the same errors word for word."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.xdist_group("mlflow-parity")]

BULK = "metrics/get-history-bulk-interval"
T0 = 1_700_000_000_000  # ms
RUNS = ("a", "b", "long")


def _tags(answer: Any) -> dict[str, str]:
    tags = answer.body["experiment"].get("tags", [])
    return {tag["key"]: tag["value"] for tag in tags if not tag["key"].startswith("mlflow.")}


def _log(pair: Any, run: str, points: list[tuple[int, Any]], key: str = "loss") -> None:
    metrics = [
        {"key": key, "value": value, "timestamp": T0 + step, "step": step} for step, value in points
    ]
    for start in range(0, len(metrics), 1000):
        batch = {"run_id": "{" + run + "}", "metrics": metrics[start : start + 1000]}
        ours, theirs = pair.call("POST", "runs/log-batch", batch)
        assert ours.status == theirs.status == 200, (ours.body, theirs.body)


def _neutral(pair: Any, answer: Any, *, side: int) -> list[dict[str, Any]]:
    """The answer's points, each run id put back to its run's placeholder (only runs':
    Labbook's small integer ids may also be an experiment's)."""
    runs = {ids[side]: "{" + name + "}" for name, ids in pair.ids.items() if name in RUNS}
    return [
        {**point, "run_id": runs.get(point["run_id"], point["run_id"])}
        for point in (answer.body or {}).get("metrics", [])
    ]


def _same_points(pair: Any, query: dict[str, Any]) -> list[dict[str, Any]]:
    ours, theirs = pair.call("GET", BULK, query)
    assert ours.status == theirs.status == 200, (ours.body, theirs.body)
    mine = _neutral(pair, ours, side=0)
    assert mine == _neutral(pair, theirs, side=1)
    return mine


@pytest.fixture
def tagged(pair: Any) -> Any:
    pair.experiment("exp", "tagged")
    ours, theirs = pair.call(
        "POST",
        "experiments/set-experiment-tag",
        {"experiment_id": "{exp}", "key": "k", "value": "v"},
    )
    assert ours.status == theirs.status == 200
    return pair


@pytest.fixture
def logged(pair: Any) -> Any:
    """Runs ``a`` (steps 0-9) and ``b`` (steps 0, 5, 10, 15, with a NaN)."""
    pair.experiment("exp", "bulk")
    pair.run("a", "exp")
    pair.run("b", "exp")
    _log(pair, "a", [(step, 1.0 / (step + 1)) for step in range(10)])
    # NaN as proto JSON writes it. No infinity: MLflow's SQL store keeps it as the largest
    # float (1.8e308), Labbook as itself ("Infinity"), in every history answer alike.
    _log(pair, "b", [(0, 3.0), (5, "NaN"), (10, 7.5), (15, -2.5)])
    return pair


# --- experiments/delete-experiment-tag ----------------------------------------------------------


def test_delete_experiment_tag_removes_the_tag(tagged):
    ours, theirs = tagged.call(
        "POST", "experiments/delete-experiment-tag", {"experiment_id": "{exp}", "key": "k"}
    )
    assert (ours.status, ours.body) == (theirs.status, theirs.body) == (200, {})
    ours, theirs = tagged.call("GET", "experiments/get", {"experiment_id": "{exp}"})
    assert _tags(ours) == _tags(theirs) == {}


@pytest.mark.parametrize("experiment", ["{exp}", "0"])
def test_delete_experiment_tag_of_a_missing_tag_is_not_found(tagged, experiment):
    ours, theirs = tagged.call(
        "POST", "experiments/delete-experiment-tag", {"experiment_id": experiment, "key": "nope"}
    )
    status, code, _message = tagged.same(ours, theirs)
    assert (status, code) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_delete_experiment_tag_twice_is_not_found_the_second_time(tagged):
    body = {"experiment_id": "{exp}", "key": "k"}
    tagged.call("POST", "experiments/delete-experiment-tag", body)
    ours, theirs = tagged.call("POST", "experiments/delete-experiment-tag", body)
    assert tagged.same(ours, theirs)[0] == 404


@pytest.mark.parametrize(
    "body",
    [
        {"experiment_id": "987654321", "key": "k"},
        {"experiment_id": "{exp}"},
        {"key": "k"},
        {"experiment_id": "{exp}", "key": ""},
    ],
    ids=["unknown-experiment", "no-key", "no-experiment", "empty-key"],
)
def test_delete_experiment_tag_refuses_what_mlflow_refuses(tagged, body):
    ours, theirs = tagged.call("POST", "experiments/delete-experiment-tag", body)
    assert tagged.same(ours, theirs)[0] in (400, 404)


def test_delete_experiment_tag_of_a_deleted_experiment_is_refused(tagged):
    tagged.call("POST", "experiments/delete", {"experiment_id": "{exp}"})
    ours, theirs = tagged.call(
        "POST", "experiments/delete-experiment-tag", {"experiment_id": "{exp}", "key": "k"}
    )
    assert tagged.same(ours, theirs)[:2] == (400, "INVALID_PARAMETER_VALUE")


# --- metrics/get-history-bulk-interval: answers -------------------------------------------------


def test_bulk_interval_answers_every_point_of_short_runs_in_the_order_asked(logged):
    points = _same_points(logged, {"run_ids": ["{b}", "{a}"], "metric_key": "loss"})
    assert [p["run_id"] for p in points] == ["{b}"] * 4 + ["{a}"] * 10
    assert [p["value"] for p in points[:4]] == [3.0, "NaN", 7.5, -2.5]


@pytest.mark.parametrize(
    "query",
    [
        {"start_step": "3", "end_step": "7"},
        {"start_step": "5", "end_step": "5"},
        {"start_step": "100", "end_step": "200"},
        {"max_results": "1"},
        {"max_results": "10"},
    ],
    ids=["range", "one-step", "empty-range", "one-result", "exactly-enough"],
)
def test_bulk_interval_samples_a_range_as_mlflow_does(logged, query):
    _same_points(logged, {"run_ids": ["{a}", "{b}"], "metric_key": "loss", **query})


@pytest.mark.parametrize(
    "query",
    [{"run_ids": "987654321"}, {"run_ids": "not-a-run"}, {"metric_key": "never-logged"}],
    ids=["unknown-run", "garbage-id", "unknown-key"],
)
def test_bulk_interval_answers_nothing_for_what_is_not_there(logged, query):
    assert _same_points(logged, {"run_ids": "{a}", "metric_key": "loss", **query}) == []


def test_bulk_interval_downsamples_a_long_run_to_logged_points_with_both_ends(pair):
    """MLflow keeps evenly spaced points, Labbook each rollup bucket's extremes
    (docs/mlflow.md): what both promise holds."""
    pair.experiment("exp", "long")
    pair.run("long", "exp")
    logged = {step: ((step * 7919) % 1000) / 10.0 for step in range(3000)}
    _log(pair, "long", sorted(logged.items()))
    query = {"run_ids": "{long}", "metric_key": "loss", "max_results": "100"}
    ours, theirs = pair.call("GET", BULK, query)
    assert ours.status == theirs.status == 200
    for answer in (ours, theirs):
        points = answer.body["metrics"]
        steps = [point["step"] for point in points]
        assert len(points) <= 100
        assert steps[0] == 0 and steps[-1] == 2999
        assert steps == sorted(steps)
        assert all(logged[p["step"]] == p["value"] for p in points)
        assert all(p["timestamp"] == T0 + p["step"] for p in points)
    extremes = {step for step, value in logged.items() if value in (0.0, 99.9)}
    # Labbook's own promise: a spike is never sampled away.
    assert extremes & {p["step"] for p in ours.body["metrics"]}


# --- metrics/get-history-bulk-interval: errors --------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"metric_key": "loss"},
        {"run_ids": "{a}"},
        {"run_ids": "{a}", "metric_key": ""},
        {"run_ids": [str(n) for n in range(101)], "metric_key": "loss"},
        {"run_ids": "{a}", "metric_key": "loss", "max_results": "0"},
        {"run_ids": "{a}", "metric_key": "loss", "max_results": "2501"},
        {"run_ids": "{a}", "metric_key": "loss", "max_results": "many"},
        {"run_ids": "{a}", "metric_key": "loss", "start_step": "x", "end_step": "3"},
        {"run_ids": "{a}", "metric_key": "loss", "start_step": "3"},
        {"run_ids": "{a}", "metric_key": "loss", "end_step": "3"},
        {"run_ids": "{a}", "metric_key": "loss", "start_step": "7", "end_step": "3"},
    ],
    ids=[
        "no-run-ids",
        "no-metric-key",
        "empty-metric-key",
        "101-runs",
        "max-results-0",
        "max-results-2501",
        "max-results-text",
        "start-step-text",
        "start-without-end",
        "end-without-start",
        "start-after-end",
    ],
)
def test_bulk_interval_refuses_what_mlflow_refuses(logged, query):
    ours, theirs = logged.call("GET", BULK, query)
    # No message names an id: compared as they are (Labbook's run 1 would be in "1 to 2500").
    assert ours.error == theirs.error
    assert ours.status == 400 and ours.body["error_code"] == "INVALID_PARAMETER_VALUE"


def test_bulk_interval_takes_a_hundred_runs(logged):
    ids = ["{a}", *(str(900_000_000 + n) for n in range(99))]
    points = _same_points(logged, {"run_ids": ids, "metric_key": "loss"})
    assert len(points) == 10


def test_bulk_interval_is_read_only(logged):
    ours, theirs = logged.call("POST", BULK, {"run_ids": ["{a}"], "metric_key": "loss"})
    assert ours.status >= 400 and theirs.status >= 400
