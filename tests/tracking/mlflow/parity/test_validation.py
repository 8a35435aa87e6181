"""Bad arguments, answered as a real ``mlflow server`` answers them: status, code and words.

Most calls name a run or experiment that does not exist ("nope", "0"): MLflow checks
the arguments before it looks the run up, and so does Labbook, so neither side's ids
(which ``Pair.neutral`` would have to put back in messages full of numbers) appear.
"""

from __future__ import annotations

import re

import pytest

from tracking.models import Run

pytestmark = [pytest.mark.subprocess, pytest.mark.xdist_group("mlflow-parity")]

NOPE = "nope"  # a run id neither side has
LONG = "k" * 251


def metric(**fields):
    return {"key": "m", "value": 1.0, "timestamp": 1, "step": 0, **fields}


def params(count, **fields):
    return [{"key": f"p{i}", "value": "v", **fields} for i in range(count)]


def refused_alike(pair, method, path, body):
    ours, theirs = pair.call(method, path, body)
    status, _, _ = pair.same(ours, theirs)
    assert status in (400, 404), ours.body
    return ours


# --- Item 3: types and required arguments, on every endpoint ------------------------------

TYPE_CASES = [
    ("POST", "experiments/create", {"name": 123}),
    ("POST", "experiments/create", {"name": True}),
    ("POST", "experiments/create", {"name": [1]}),
    ("POST", "experiments/create", {"name": {"a": 1}}),
    ("POST", "experiments/create", {"name": "x", "artifact_location": 9.0}),
    ("POST", "experiments/create", {"name": "x", "tags": "5"}),
    ("POST", "experiments/create", {"name": "x", "tags": {"a": 1}}),
    ("POST", "experiments/create", {"name": ""}),
    ("POST", "experiments/create", {"name": None}),
    ("POST", "experiments/create", {}),
    ("POST", "experiments/create", {"name": "x" * 501}),
    ("GET", "experiments/get", {}),
    ("GET", "experiments/get", {"experiment_id": "abc"}),
    ("GET", "experiments/get-by-name", {}),
    ("POST", "experiments/delete", {"experiment_id": 1}),
    ("POST", "experiments/delete", {"experiment_id": "abc"}),
    ("POST", "experiments/restore", {}),
    ("POST", "experiments/update", {"experiment_id": "0"}),
    ("POST", "experiments/update", {"experiment_id": "0", "new_name": 5}),
    ("POST", "experiments/update", {"experiment_id": "0", "new_name": ""}),
    ("POST", "experiments/set-experiment-tag", {"experiment_id": 1, "key": "a", "value": "v"}),
    ("POST", "experiments/set-experiment-tag", {"experiment_id": "0", "key": "a", "value": 5}),
    ("POST", "experiments/set-experiment-tag", {"experiment_id": "0", "key": "a!b"}),
    ("POST", "experiments/search", {"max_results": "abc"}),
    ("POST", "experiments/search", {"max_results": 10, "order_by": "name"}),
    ("POST", "experiments/search", {"max_results": 10, "filter": 5}),
    ("POST", "runs/create", {"experiment_id": 0}),
    ("POST", "runs/create", {"experiment_id": "0", "start_time": "abc"}),
    ("POST", "runs/create", {"experiment_id": "0", "run_name": 5}),
    ("POST", "runs/create", {"experiment_id": "abc"}),
    (
        "POST",
        "runs/create",
        {"experiment_id": "0", "run_name": "a", "tags": [{"key": "mlflow.runName", "value": "b"}]},
    ),
    ("GET", "runs/get", {}),
    ("GET", "runs/get", {"run_id": NOPE}),
    ("POST", "runs/update", {"run_id": NOPE, "end_time": "x"}),
    ("POST", "runs/update", {"run_id": NOPE, "run_name": 5}),
    ("POST", "runs/delete", {"run_id": 31}),
    ("POST", "runs/restore", {}),
    ("POST", "runs/set-tag", {"run_id": 31, "key": "a", "value": "b"}),
    ("POST", "runs/set-tag", {"run_id": NOPE, "key": "a", "value": 41}),
    ("POST", "runs/set-tag", {"run_id": NOPE, "key": 41, "value": "b"}),
    ("POST", "runs/set-tag", {"run_id": NOPE, "value": "b"}),
    ("POST", "runs/set-tag", {"key": "a", "value": "b"}),
    ("POST", "runs/set-tag", {"run_id": NOPE, "key": "a!b", "value": "b"}),
    ("POST", "runs/set-tag", {"run_id": NOPE, "key": LONG, "value": "b"}),
    ("POST", "runs/delete-tag", {"run_id": NOPE, "key": 5}),
    ("POST", "runs/log-metric", {"run_id": NOPE, "key": "m", "value": "abc", "timestamp": 1}),
    ("POST", "runs/log-metric", {"run_id": NOPE, "key": "m", "value": 1, "timestamp": "x"}),
    ("POST", "runs/log-metric", {"run_id": NOPE, "key": "m", "value": 1}),
    ("POST", "runs/log-metric", {"run_id": NOPE, "key": "m", "timestamp": 1}),
    ("POST", "runs/log-metric", {"run_id": NOPE, "key": "m", "value": 1, "timestamp": -5}),
    ("POST", "runs/log-metric", {"run_id": NOPE, "key": "a!b", "value": 1, "timestamp": 1}),
    ("POST", "runs/log-metric", {"run_id": NOPE, "key": LONG, "value": 1, "timestamp": 1}),
    ("POST", "runs/log-parameter", {"run_id": NOPE, "key": "p", "value": 5}),
    ("POST", "runs/log-parameter", {"run_id": NOPE, "key": "/p", "value": "v"}),
    ("POST", "runs/log-parameter", {"run_id": NOPE, "key": LONG, "value": "v"}),
    ("POST", "runs/log-batch", {"run_id": 31}),
    ("POST", "runs/log-batch", {"run_id": NOPE, "metrics": "x"}),
    ("GET", "metrics/get-history", {"run_id": NOPE}),
    ("GET", "metrics/get-history", {"metric_key": "m"}),
    ("GET", "metrics/get-history", {"run_id": NOPE, "metric_key": "m", "max_results": "0"}),
    ("POST", "runs/search", {"experiment_ids": "0"}),
    ("POST", "runs/search", {"experiment_ids": ["abc"]}),
    ("POST", "runs/search", {"experiment_ids": ["0"], "filter": 5}),
    ("POST", "runs/search", {"experiment_ids": ["0"], "order_by": [5]}),
    ("POST", "runs/search", {"experiment_ids": ["0"], "max_results": "abc"}),
]


@pytest.mark.parametrize(("method", "path", "body"), TYPE_CASES)
def test_a_bad_or_missing_argument_is_refused_in_mlflows_words(pair, method, path, body):
    refused_alike(pair, method, path, body)


def test_a_run_id_sent_as_a_number_writes_to_no_run(pair):
    """The number of a run that exists on Labbook: refused as MLflow refuses any number."""
    pair.experiment("exp", "typed")
    created = pair.labbook("POST", "runs/create", {"experiment_id": "{exp}"})
    run_id = int(created.body["run"]["info"]["run_id"])
    body = {"run_id": run_id, "key": "a", "value": "b"}
    ours, theirs = (
        pair.labbook("POST", "runs/set-tag", body),
        pair.mlflow("POST", "runs/set-tag", body),
    )
    assert ours.error == theirs.error
    assert ours.status == 400
    assert "a" not in Run.objects.get(pk=run_id).metadata.get("mlflow_tags", {})


# --- Item 4: log-batch, in the words of MLflow's validation and SQL store --------------------

BATCH_CASES = {
    "too many metrics": {"metrics": [metric()] * 1001},
    "too many params": {"params": params(101)},
    "too many tags": {"tags": params(101)},
    "too many in all": {"metrics": [metric()] * 950, "params": params(60)},
    "metric without timestamp": {"metrics": [{"key": "m", "value": 1}]},
    "metric without key": {"metrics": [{"value": 1, "timestamp": 1}]},
    "param without key": {"params": [{"value": "v"}]},
    "tag without key": {"tags": [{"value": "v"}]},
    "param key too long": {"params": [{"key": LONG, "value": "v"}]},
    "metric key too long": {"metrics": [metric(key=LONG)]},
    "tag key too long": {"tags": [{"key": LONG, "value": "v"}]},
    "bad characters": {"params": [{"key": "a!b", "value": "v"}]},
    "a name that is a path": {"params": [{"key": "a/../b", "value": "v"}]},
    "a name from the root": {"tags": [{"key": "/ab", "value": "v"}]},
    "bad metric name": {"metrics": [metric(key="a//b")]},
    "negative timestamp": {"metrics": [metric(), metric(timestamp=-1)]},
    "param twice": {"params": [{"key": "d", "value": "a"}, {"key": "d", "value": "b"}]},
    "param twice alike": {"params": [{"key": "d", "value": "a"}, {"key": "d", "value": "a"}]},
}


@pytest.mark.parametrize("body", BATCH_CASES.values(), ids=BATCH_CASES.keys())
def test_log_batch_refuses_in_mlflows_words_before_it_looks_the_run_up(pair, body):
    refused_alike(pair, "POST", "runs/log-batch", {"run_id": NOPE, **body})


def test_a_changed_param_is_refused_in_mlflows_words_batch_and_single(pair):
    pair.experiment("exp", "params")
    pair.run("run", "exp")
    first = {"run_id": "{run}", "params": [{"key": "fixed", "value": "a"}]}
    ours, theirs = pair.call("POST", "runs/log-batch", first)
    assert ours.status == theirs.status == 200
    changed = {"run_id": "{run}", "params": [{"key": "fixed", "value": "b"}]}
    refused_alike(pair, "POST", "runs/log-batch", changed)
    single = {"run_id": "{run}", "key": "fixed", "value": "c"}
    refused_alike(pair, "POST", "runs/log-parameter", single)


def test_long_param_and_tag_values_are_cut_as_mlflow_cuts_them(pair):
    pair.experiment("exp", "long")
    pair.run("run", "exp")
    body = {
        "run_id": "{run}",
        "params": [{"key": "p", "value": "v" * 6001}],
        "tags": [{"key": "t", "value": "w" * 8001}],
    }
    ours, theirs = pair.call("POST", "runs/log-batch", body)
    assert ours.status == theirs.status == 200
    ours, theirs = pair.call("GET", "runs/get", {"run_id": "{run}"})
    for answer in (ours, theirs):
        data = answer.body["run"]["data"]
        assert {p["key"]: len(p["value"]) for p in data["params"]} == {"p": 6000}
        assert {t["key"]: len(t["value"]) for t in data["tags"]}["t"] == 8000


# --- Item 4: runs/search ------------------------------------------------------------------

FILTERS = [
    "bogus",
    "metrics.acc >",
    "metrics.a > 1 OR metrics.b > 1",
    "metrics.acc > 'x'",
    "metrics.acc LIKE 'x'",
    "params.lr > 1",
    "params.lr = 1",
    "tags.t = 1",
    "foo.bar = 1",
    "attributes.bogus = 'x'",
    "lifecycle_stage = 'active'",
    "start_time = 'x'",
    "run_id = 5",
    "run_name IN ('a')",
    "metrics.a IS NULL",
]


def same_up_to_set_order(pair, ours, theirs):
    """``Pair.same``, but MLflow prints Python sets (its valid keys), whose order varies."""
    for answer in (ours, theirs):
        if isinstance(answer.body, dict) and "message" in answer.body:
            answer.body["message"] = re.sub(
                r"\{('[^']*'(?:, '[^']*')*)\}",
                lambda found: "{" + ", ".join(sorted(found.group(1).split(", "))) + "}",
                answer.body["message"],
            )
    return pair.same(ours, theirs)


@pytest.mark.parametrize("filter_string", FILTERS)
def test_a_bad_filter_is_refused_in_mlflows_words(pair, filter_string):
    body = {"experiment_ids": ["0"], "filter": filter_string}
    ours, theirs = pair.call("POST", "runs/search", body)
    assert same_up_to_set_order(pair, ours, theirs)[0] == 400


@pytest.mark.parametrize(
    "order_by", ["bogus", "attributes.bogus DESC", "metrics.acc SIDEWAYS", "a DESC b", "", "x.y"]
)
def test_a_bad_order_by_is_refused_in_mlflows_words(pair, order_by):
    body = {"experiment_ids": ["0"], "order_by": [order_by]}
    ours, theirs = pair.call("POST", "runs/search", body)
    assert same_up_to_set_order(pair, ours, theirs)[0] == 400


@pytest.mark.parametrize("max_results", [50001, -1, 0])
@pytest.mark.parametrize("path", ["runs/search", "experiments/search"])
def test_max_results_out_of_range_is_refused_in_mlflows_words(pair, path, max_results):
    refused_alike(pair, "POST", path, {"experiment_ids": ["0"], "max_results": max_results})


# --- Item 5: ties in ordering -------------------------------------------------------------


def test_runs_with_the_same_start_time_page_by_run_id_ascending(pair):
    pair.experiment("exp", "ties")
    for name in ("a", "b", "c", "d"):
        pair.run(name, "exp", run_name=name, start_time=1_700_000_000_000)
    search = {"experiment_ids": ["{exp}"], "max_results": 1}
    for side, call in ((0, pair.labbook), (1, pair.mlflow)):
        seen, token = [], None
        while True:
            answer = call(
                "POST", "runs/search", {**search, "page_token": token} if token else search
            )
            seen += [run["info"]["run_id"] for run in answer.body["runs"]]
            token = answer.body.get("next_page_token")
            if token is None:
                break
        ids = [pair.ids[name][side] for name in "abcd"]
        ascending = sorted(ids, key=int) if side == 0 else sorted(ids)
        assert seen == ascending, side


# --- Item 6: user_id ----------------------------------------------------------------------


@pytest.mark.parametrize("user_id", ["alice", ""])
def test_runs_keep_the_user_id_and_tags_the_client_sent(pair, world, user_id):
    pair.experiment("exp", "users")
    tags = [{"key": "mlflow.user", "value": user_id}] if user_id else []
    pair.run("run", "exp", user_id=user_id, tags=tags)
    ours, theirs = pair.call("GET", "runs/get", {"run_id": "{run}"})
    for answer in (ours, theirs):
        run = answer.body["run"]
        assert run["info"].get("user_id", "") == user_id
        sent = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}.get("mlflow.user")
        assert sent == (user_id or None)
    author = Run.objects.get(pk=pair.ids["run"][0]).created_by
    assert author == world.owner.user  # Labbook's own author: the token's user
