"""Deleting, restoring and renaming experiments and runs, and experiment tags, side by side with
a real ``mlflow server``: each step answers the same, and so does each refusal."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.xdist_group("mlflow-parity")]


def ok(pair: Any, method: str, path: str, body: Any) -> tuple[Any, Any]:
    ours, theirs = pair.call(method, path, body)
    assert ours.status == theirs.status == 200, (ours.body, theirs.body)
    return ours.body, theirs.body


def stage(pair: Any, kind: str, placeholder: str) -> tuple[str, str]:
    slot = "{" + placeholder + "}"
    if kind == "experiment":
        ours, theirs = ok(pair, "GET", "experiments/get", {"experiment_id": slot})
        return ours["experiment"]["lifecycle_stage"], theirs["experiment"]["lifecycle_stage"]
    ours, theirs = ok(pair, "GET", "runs/get", {"run_id": slot})
    return ours["run"]["info"]["lifecycle_stage"], theirs["run"]["info"]["lifecycle_stage"]


def test_an_experiment_deleted_restored_and_deleted_twice(pair):
    pair.experiment("e", "lifecycle")
    ok(pair, "POST", "experiments/delete", {"experiment_id": "{e}"})
    assert stage(pair, "experiment", "e") == ("deleted", "deleted")
    pair.same(*pair.call("POST", "experiments/delete", {"experiment_id": "{e}"}))
    pair.same(*pair.call("POST", "runs/create", {"experiment_id": "{e}"}))
    ok(pair, "POST", "experiments/restore", {"experiment_id": "{e}"})
    assert stage(pair, "experiment", "e") == ("active", "active")
    pair.same(*pair.call("POST", "experiments/restore", {"experiment_id": "{e}"}))


def test_a_deleted_experiment_is_searched_by_view_type(pair):
    pair.experiment("e", "hidden")
    ok(pair, "POST", "experiments/delete", {"experiment_id": "{e}"})
    for view_type in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL"):
        body = {"max_results": 1000, "view_type": view_type, "filter": "name LIKE '%hidden%'"}
        ours, theirs = ok(pair, "POST", "experiments/search", body)
        found = [
            [e["lifecycle_stage"] for e in answer.get("experiments", [])]
            for answer in (ours, theirs)
        ]
        assert found[0] == found[1], view_type


def test_renaming_an_experiment(pair):
    pair.experiment("e", "before")
    pair.experiment("other", "taken")
    ok(
        pair,
        "POST",
        "experiments/update",
        {"experiment_id": "{e}", "new_name": "after" + pair.suffix},
    )
    ours, theirs = ok(pair, "GET", "experiments/get", {"experiment_id": "{e}"})
    assert ours["experiment"]["name"].endswith(theirs["experiment"]["name"])
    ok(pair, "POST", "experiments/delete", {"experiment_id": "{e}"})
    ours, theirs = pair.call(
        "POST", "experiments/update", {"experiment_id": "{e}", "new_name": "x"}
    )
    # MLflow answers its INVALID_STATE with a 500, which the client retries: Labbook a 400.
    assert (theirs.status, ours.status) == (500, 400)
    assert (
        ours.error[1:]
        == theirs.error[1:]
        == ("INVALID_STATE", "Cannot rename a non-active experiment.")
    )
    pair.same(*pair.call(
        "POST", "experiments/set-experiment-tag", {"experiment_id": "{e}", "key": "k", "value": "v"}
    ))  # fmt: skip


def test_renaming_to_a_taken_name_is_refused(pair):
    """MLflow's store hits its unique constraint and answers BAD_REQUEST with the SQL error;
    Labbook says the name is taken (docs/mlflow.md lists the difference)."""
    pair.experiment("e", "before")
    pair.experiment("other", "taken")
    body = {"experiment_id": "{e}", "new_name": "{other.name}"}
    ours, theirs = pair.call("POST", "experiments/update", body)
    assert (theirs.status, theirs.body["error_code"]) == (400, "BAD_REQUEST")
    assert "UNIQUE constraint failed" in theirs.body["message"]
    assert (ours.status, ours.body["error_code"]) == (400, "RESOURCE_ALREADY_EXISTS")
    assert "already exists" in ours.body["message"]


def test_experiment_tags_set_overwritten_and_deleted(pair):
    pair.experiment("e", "tagged")
    for value in ("one", "two"):
        body = {"experiment_id": "{e}", "key": "stage", "value": value}
        ok(pair, "POST", "experiments/set-experiment-tag", body)
    ours, theirs = ok(pair, "GET", "experiments/get", {"experiment_id": "{e}"})
    tags = [
        {t["key"]: t["value"] for t in answer["experiment"].get("tags", [])}
        for answer in (ours, theirs)
    ]
    assert tags[0]["stage"] == tags[1]["stage"] == "two"
    ok(pair, "POST", "experiments/delete-experiment-tag", {"experiment_id": "{e}", "key": "stage"})
    pair.same(*pair.call(
        "POST", "experiments/delete-experiment-tag", {"experiment_id": "{e}", "key": "stage"}
    ))  # fmt: skip


def test_a_run_deleted_restored_and_searched_by_view_type(pair):
    pair.experiment("e", "runs")
    pair.run("r", "e")
    ok(pair, "POST", "runs/delete", {"run_id": "{r}"})
    assert stage(pair, "run", "r") == ("deleted", "deleted")
    for view_type in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL"):
        body = {"experiment_ids": ["{e}"], "run_view_type": view_type}
        ours, theirs = ok(pair, "POST", "runs/search", body)
        assert len(ours.get("runs", [])) == len(theirs.get("runs", [])), view_type
    pair.same(*pair.call("POST", "runs/log-batch", {"run_id": "{r}", "params": [
        {"key": "lr", "value": "1"}
    ]}))  # fmt: skip
    ok(pair, "POST", "runs/restore", {"run_id": "{r}"})
    assert stage(pair, "run", "r") == ("active", "active")


def test_a_run_deleted_twice_and_restored_twice(pair):
    pair.experiment("e", "twice")
    pair.run("r", "e")
    ok(pair, "POST", "runs/delete", {"run_id": "{r}"})
    pair.same(*pair.call("POST", "runs/delete", {"run_id": "{r}"}))
    ok(pair, "POST", "runs/restore", {"run_id": "{r}"})
    pair.same(*pair.call("POST", "runs/restore", {"run_id": "{r}"}))
