"""Errors MLflow's client and tools depend on, answered as a real ``mlflow server`` does."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.xdist_group("mlflow-parity")]


@pytest.mark.parametrize(("method", "path"), [("POST", "experiments/nothing"), ("GET", "no/where")])
def test_a_path_neither_implements_answers_404(pair, method, path):
    """MLflow's Flask answers its HTML 404 page; Labbook the JSON error its client reads."""
    ours, theirs = pair.call(method, path, {"name": "x"} if method == "POST" else None)
    assert ours.status == theirs.status == 404
    assert ours.body["error_code"] == "ENDPOINT_NOT_FOUND"


@pytest.mark.parametrize("tags", ["5", [1], [{"key": 1, "value": "v"}]])
def test_experiment_create_refuses_bad_tags_and_creates_nothing(pair, tags):
    name = f"tagged{pair.suffix}"
    ours, theirs = pair.call("POST", "experiments/create", {"name": name, "tags": tags})
    assert ours.status == theirs.status == 400
    assert ours.body["error_code"] == theirs.body["error_code"]
    ours, theirs = pair.call("GET", "experiments/get-by-name", {"experiment_name": name})
    pair.same(ours, theirs)
