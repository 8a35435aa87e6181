"""Value filters on runs (tracking/run_filters.py): the syntax, what each column reads, and
the runs API's ``filter`` parameter, on the test database (SQLite here, PostgreSQL in CI)."""

from __future__ import annotations

import pytest

from kernel.errors import ApplicationError
from tracking import ingest, run_filters, selectors, services
from tracking.models import Run, RunStatus


def make_run(world, name, *, config=None, summary=None, metrics=None, tags=(), status=None):
    run = services.run_create(
        user=world.editor.user, project=world.project, name=name, config=config or {}
    )
    if summary:
        Run.objects.filter(pk=run.pk).update(summary=summary)
    for key, value in (metrics or {}).items():
        points = ingest.parse_points([{"key": key, "value": value, "step": 0}])
        ingest.metrics_ingest(run=run, points=points)
    if tags:
        services.runs_tag(runs=[run], add=list(tags))
    if status:
        Run.objects.filter(pk=run.pk).update(status=status)
    return run


@pytest.fixture
def sweep(world):
    hi = {"lr": 1e-3, "optimizer": "adam", "amp": True}
    make_run(world, "adam-hi", config=hi, metrics={"val/acc": 0.95})
    make_run(world, "adam-lo", config={"lr": 1e-4, "optimizer": "adam"}, metrics={"val/acc": 0.85})
    make_run(
        world,
        "sgd",
        config={"lr": "0.01", "optimizer": {"name": "sgd", "momentum": 0.9}},  # MLflow: text
        metrics={"val/acc": 0.7},
        tags=["baseline"],
        status=RunStatus.FAILED,
    )
    make_run(world, "bare", summary={"val/acc": 0.99, "note": "best"}, metrics={"val/acc": 0.1})
    return world


def names(world, *filters):
    runs = selectors.runs_for_user(world.owner.user, project=world.project)
    runs = run_filters.apply(runs, run_filters.parse(list(filters)))
    return sorted(runs.values_list("name", flat=True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("summary.val/acc > 0.9", ["adam-hi", "bare"]),  # bare: its summary, not the metric
        ("summary.val/acc <= 0.85", ["adam-lo", "sgd"]),
        ("summary.val/acc = 0.7", ["sgd"]),
        ("summary.val/acc != 0.7", ["adam-hi", "adam-lo", "bare"]),
        ("config.lr <= 1e-3", ["adam-hi", "adam-lo"]),
        ("config.lr > 0.005", ["sgd"]),  # numeric text compares as a number
        ("config.lr = 0.01", ["sgd"]),
        ("config.optimizer = adam", ["adam-hi", "adam-lo"]),
        ("config.optimizer != adam", ["sgd"]),  # an object is not adam
        ("config.optimizer.name = sgd", ["sgd"]),  # the nested value by its dotted path
        ("config.optimizer.momentum >= 0.9", ["sgd"]),
        ("config.optimizer ~ AD", ["adam-hi", "adam-lo"]),
        ("config.missing = 1", []),
        ("config.amp = true", ["adam-hi"]),  # as JSON writes it, on both databases
        ("config.amp != false", ["adam-hi"]),
        ("config.missing != 1", []),  # a run without the value never matches
        ("name ~ adam", ["adam-hi", "adam-lo"]),
        ("name = 'adam-hi'", ["adam-hi"]),
        ("status = failed", ["sgd"]),
        ("status != failed", ["adam-hi", "adam-lo", "bare"]),
        ("tag = baseline", ["sgd"]),
        ("tags != baseline", ["adam-hi", "adam-lo", "bare"]),
        ("summary.note = best", ["bare"]),
        ("config.optimizer = adam and summary.val/acc > 0.9", ["adam-hi"]),
        ("config.optimizer = adam AND config.lr < 5e-4", ["adam-lo"]),
    ],
)
def test_each_column_and_operator_reads_what_the_table_shows(sweep, text, expected):
    assert names(sweep, text) == expected


def test_and_inside_quotes_is_part_of_the_value(world):
    make_run(world, "this and that")
    assert names(world, "name = 'this and that'") == ["this and that"]
    assert names(world, 'name = "this and that" and status = running') == ["this and that"]


def test_repeated_filters_all_apply(sweep):
    assert names(sweep, "config.optimizer = adam", "summary.val/acc < 0.9") == ["adam-lo"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("lr > 1", "Unknown column 'lr'"),
        ("config.lr", "write a column, an operator and a value"),
        ("config.lr >", "has no value"),
        ("config.optimizer > adam", "compares numbers"),
        ("status = sleeping", "status is one of"),
        ("tag > 3", "tag takes = or !="),
        ("name < 3", "name is text"),
        ("config." + "k" * 300 + " = 1", "at most 250 characters"),
        (" and ".join(["name = a"] * 11), "At most 10 conditions"),
        ("name = " + "x" * 1001, "at most 1000 characters"),
    ],
)
def test_bad_filters_say_what_is_wrong(text, says):
    with pytest.raises(ApplicationError) as raised:
        run_filters.parse([text])
    assert raised.value.field == "filter"
    assert says in raised.value.message


def test_huge_numbers_and_odd_text_compare_without_a_database_error(world):
    make_run(world, "odd", config={"lr": "1e400", "x": "9" * 60, "y": " 2 ", "z": None})
    assert names(world, "config.lr > 0") == []  # past a float: text, never a cast error
    assert names(world, "config.x > 0") == []
    assert names(world, "config.y = 2") == ["odd"]
    assert names(world, "config.z = null") == []  # JSON null is missing on both databases
    assert names(world, "config.lr = '1e400'") == ["odd"]


def test_a_condition_reads_back_as_it_parses():
    conditions = run_filters.parse(["summary.val/acc > 0.9 and config.optimizer = 'a and b'"])
    assert run_filters.parse([run_filters.describe(conditions)]) == conditions


def test_the_runs_api_takes_the_same_filters(sweep):
    client = sweep.viewer.client()
    answer = client.get(
        "/api/v1/runs", {"project": "acme/mnist", "filter": "summary.val/acc > 0.9"}
    )
    assert answer.status_code == 200, answer.json()
    assert sorted(run["name"] for run in answer.json()["results"]) == ["adam-hi", "bare"]
    both = client.get(
        "/api/v1/runs?project=acme/mnist&filter=config.optimizer%20%3D%20adam"
        "&filter=config.lr%20%3C%205e-4"
    )
    assert [run["name"] for run in both.json()["results"]] == ["adam-lo"]


def test_the_runs_api_refuses_a_bad_filter_naming_the_field(sweep):
    answer = sweep.viewer.client().get("/api/v1/runs", {"filter": "config.lr >> 1"})
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "filter"


def test_a_filter_never_reaches_another_teams_runs(sweep):
    answer = sweep.outsider.client().get("/api/v1/runs", {"filter": "summary.val/acc > 0"})
    assert answer.status_code == 200
    assert answer.json()["results"] == []
