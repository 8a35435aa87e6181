"""MLflow's search filter and order_by over Labbook runs (``tracking.mlflow.search``).

Five runs cover the storage forms: ``alpha`` was logged through MLflow (flat
string params, MLflow tags), ``beta`` through Labbook's SDK (nested JSON
config with numbers, a bool and a null); the rest vary status, time and user.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.db.models import QuerySet

from tests.conftest import World, make_world
from tracking import services
from tracking.ingest import metrics_ingest, parse_points
from tracking.mlflow.http import MlflowError
from tracking.mlflow.search import MAX_CLAUSES, MAX_LENGTH, MAX_ORDER_BY, filter_runs, order_runs
from tracking.models import Project, Run
from tracking.patterns import like_regex

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_MS = 1_704_067_200_000
DAY = timedelta(days=1)
ALL = {"alpha", "beta", "gamma", "delta", "epsilon"}
WEIRD = "".join(chr(c) for c in range(32, 127) if chr(c) != "'") + "\n\tÉé😀"


def make_run(
    world,
    name,
    *,
    user=None,
    config=None,
    tags=None,
    metrics=None,
    status=None,
    started=T0,
    ended=None,
    project: Project | None = None,
) -> Run:
    run = services.run_create(
        user=user or world.owner.user,
        project=project or world.project,
        name=name,
        config=config or {},
        metadata={"mlflow_tags": tags} if tags is not None else {},
    )
    for key, values in (metrics or {}).items():
        points = [{"key": key, "step": step, "value": v} for step, v in enumerate(values)]
        metrics_ingest(run=run, points=parse_points(points))
    if status:
        services.run_update(run=run, data={"status": status})
    # The services stamp the clock; searching by time needs moments of our choosing.
    moments = {"created_at": started} | ({"ended_at": ended} if ended else {})
    Run.objects.filter(pk=run.pk).update(**moments)
    return run


@pytest.fixture(scope="module")
def scene(django_db_setup: None, django_db_blocker: Any) -> Iterator[tuple[World, dict[str, Run]]]:
    """The personas and the five runs, built once for the module in a transaction rolled back
    at its end; each test runs in a savepoint of it (``db``). 500 tests each building five
    runs cost about a minute and a half of a CI pass."""
    with django_db_blocker.unblock(), transaction.atomic():
        built = make_world()
        yield built, five_runs(built)
        transaction.set_rollback(True)


@pytest.fixture
def world(scene: tuple[World, dict[str, Run]], db: None) -> World:
    """This module's ``world``: the scene's, so the five runs are always there."""
    return scene[0]


@pytest.fixture
def lab(scene: tuple[World, dict[str, Run]], db: None) -> dict[str, Run]:
    return scene[1]


def five_runs(world: World) -> dict[str, Run]:
    alice, bob, carol = world.owner.user, world.editor.user, world.viewer.user
    runs = [
        make_run(
            world, "alpha", user=alice, status="finished", ended=T0 + timedelta(hours=1),
            config={"lr": "0.1", "optimizer": "Adam", "optimizer.momentum": "0.9",
                    "note": "100%_sure", "weird": WEIRD},
            tags={"mlflow.runName": "alpha", "mlflow.user": "alice", "team": "vision",
                  "priority": "b"},
            metrics={"acc": [0.5, 0.91], "loss": [0.2]},
        ),
        make_run(
            world, "beta", user=bob, status="crashed", started=T0 + DAY,
            ended=T0 + DAY + timedelta(hours=1),
            config={"lr": 0.01, "optimizer": {"name": "sgd", "momentum": 0.8},
                    "augment": True, "seed": 3, "scheduler": None},
            tags={"team": "Vision"},
            metrics={"acc": [0.75], "loss": ["NaN"]},
        ),
        make_run(
            world, "gamma", user=alice, status="failed", started=T0 + 2 * DAY,
            ended=T0 + 2 * DAY + timedelta(minutes=30), tags={"priority": "a"},
            metrics={"loss": [0.5], "val loss": [0.3]},
        ),
        make_run(world, "delta", user=carol, started=T0 + 3 * DAY, config={"lr": "0.1"}),
        make_run(
            world, "epsilon", user=alice, status="killed", started=T0 + DAY,
            ended=T0 + DAY + timedelta(hours=2), config={"lr": "1e-3"},
            metrics={"acc": [0.91]},
        ),
    ]  # fmt: skip
    return {run.name: run for run in runs}


def found(filter_string: str | None, runs: QuerySet[Run] | None = None) -> set[str]:
    runs = Run.objects.all() if runs is None else runs
    return set(filter_runs(runs, filter_string).values_list("name", flat=True))


def apart(world: World) -> Project:
    """A project of its own, away from the five runs."""
    return services.project_create(user=world.owner.user, team_slug="acme", slug="apart")


def ordered(order_by: list[str]) -> list[str]:
    return list(order_runs(Run.objects.all(), order_by).values_list("name", flat=True))


def filter_error(filter_string: str) -> MlflowError:
    with pytest.raises(MlflowError) as caught:
        list(filter_runs(Run.objects.all(), filter_string))
    assert caught.value.code == "INVALID_PARAMETER_VALUE"
    return caught.value


def order_error(order_by) -> MlflowError:
    with pytest.raises(MlflowError) as caught:
        list(order_runs(Run.objects.all(), order_by))
    assert caught.value.code == "INVALID_PARAMETER_VALUE"
    return caught.value


# --- Filter: what matches -----------------------------------------------------------------


@pytest.mark.parametrize("filter_string", [None, "", "   \n\t"])
def test_it_keeps_every_run_without_a_filter(lab, filter_string):
    assert found(filter_string) == ALL


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("metrics.acc > 0.8", {"alpha", "epsilon"}),
        ("metrics.acc >= 0.91", {"alpha", "epsilon"}),
        ("metrics.acc = 0.75", {"beta"}),
        ("metrics.acc != 0.75", {"alpha", "epsilon"}),
        ("metrics.acc < 0.8", {"beta"}),
        ("metrics.acc <= 0.75", {"beta"}),
        ("metrics.acc < 0.6", set()),  # alpha's 0.5 is not its latest value
        ("metric.loss < 1", {"alpha", "gamma"}),  # NaN is no number
        ("metrics.loss != 0.2", {"beta", "gamma"}),  # but NaN differs from every number
        ("metrics.loss > -1e400", {"alpha", "gamma"}),
        ("metrics.acc<+1E0", {"alpha", "beta", "epsilon"}),
        ("metrics.`val loss` < 0.5", {"gamma"}),
        ('metrics."val loss" <= .3', {"gamma"}),
        ("metrics.nope != 1", set()),
    ],
)
def test_it_filters_by_the_latest_metric_value(lab, filter_string, expected):
    assert found(filter_string) == expected


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("params.lr = '0.1'", {"alpha", "delta"}),
        ("params.lr = '0.01'", {"beta"}),  # an SDK number compares as its JSON text
        ('params.lr = "0.1"', {"alpha", "delta"}),
        ("params.lr != '0.1'", {"beta", "epsilon"}),  # gamma has no lr: it never matches
        ("params.optimizer = 'Adam'", {"alpha"}),
        ("params.`optimizer.momentum` = '0.9'", {"alpha"}),  # MLflow's flat dotted key
        ("params.optimizer.momentum = '0.8'", {"beta"}),  # the SDK's nested config
        ("params.optimizer.momentum IS NOT NULL", {"alpha", "beta"}),
        ("params.optimizer.name LIKE 's%'", {"beta"}),
        ("params.augment = 'true'", {"beta"}),
        ("params.seed = '3'", {"beta"}),
        ("params.scheduler IS NULL", ALL),  # a JSON null counts as missing
        ("params.lr IS NULL", {"gamma"}),
        ("params.lr is not null", {"alpha", "beta", "delta", "epsilon"}),
        ("param.lr ILIKE '1E%'", {"epsilon"}),
        ("parameters.lr LIKE '1E%'", set()),
        ("parameter.optimizer LIKE 'Ada_'", {"alpha"}),
        ("params.optimizer LIKE 'ada_'", set()),
        ("params.optimizer ILIKE 'ada_'", {"alpha"}),
        ("params.note LIKE '100\\%\\_sure'", {"alpha"}),
        ("params.note LIKE '100\\%\\_%'", {"alpha"}),
        ("params.note LIKE '100\\_%'", set()),
        ("params.note LIKE '%sure'", {"alpha"}),
        ("params.note LIKE '%%%'", {"alpha"}),
    ],
)
def test_it_filters_by_flat_and_nested_params(lab, filter_string, expected):
    assert found(filter_string) == expected


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("tags.team = 'vision'", {"alpha"}),
        ("tags.team != 'vision'", {"beta"}),
        ("tags.team LIKE 'V%'", {"beta"}),
        ("tags.team ILIKE 'VISION'", {"alpha", "beta"}),
        ("tags.team ILIKE '%SIO_'", {"alpha", "beta"}),
        ("tags.team IS NULL", {"gamma", "delta", "epsilon"}),
        ("tag.team IS NOT NULL", {"alpha", "beta"}),
        ("tags.`mlflow.runName` = 'alpha'", {"alpha"}),
        ("tags.mlflow.runName = 'alpha'", {"alpha"}),
        ("tags.'mlflow.user' = 'alice'", {"alpha"}),
    ],
)
def test_it_filters_by_mlflow_tags(lab, filter_string, expected):
    assert found(filter_string) == expected


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("status = 'FINISHED'", {"alpha"}),
        ("status = 'FAILED'", {"beta", "gamma"}),  # crashed is FAILED to MLflow
        ("attributes.status != 'FAILED'", {"alpha", "delta", "epsilon"}),
        ("status = 'KILLED'", {"epsilon"}),
        ("status = 'RUNNING'", {"delta"}),
        ("status = 'SCHEDULED'", set()),
        ("status != 'SCHEDULED'", ALL),
        ("status = 'finished'", set()),
        ("status ILIKE 'finished'", {"alpha"}),
        ("status LIKE 'F%'", {"alpha", "beta", "gamma"}),
        ("run_name = 'alpha'", {"alpha"}),
        ("attributes.run_name LIKE '%a'", {"alpha", "beta", "gamma", "delta"}),
        ("`Run name` = 'beta'", {"beta"}),
        ("run.run_name ILIKE 'EPS%'", {"epsilon"}),
        ("attr.run_name != 'alpha'", ALL - {"alpha"}),
        ("user_id = 'alice'", {"alpha", "gamma", "epsilon"}),
        ("user_id != 'alice'", {"beta", "delta"}),
        ("user_id LIKE 'b%'", {"beta"}),
        ("end_time > 0", ALL - {"delta"}),  # a running run has no end
        (f"end_time < {T0_MS + 3_600_001}", {"alpha"}),
        (f"created >= {T0_MS + 86_400_000}", {"beta", "gamma", "delta", "epsilon"}),
        (f"`Created` < {T0_MS}", set()),
    ],
)
def test_it_filters_by_attributes(lab, filter_string, expected):
    assert found(filter_string) == expected


def test_it_joins_clauses_with_and_in_any_case(lab):
    assert found("status = 'FAILED' AND metrics.loss > 0.4") == {"gamma"}
    assert found("user_id = 'alice' and metrics.acc > 0 And params.lr = '1e-3'") == {"epsilon"}
    assert found("status='FAILED'AND`Run name`='beta'") == {"beta"}


def test_run_id_takes_equality_and_lists_of_strings(lab):
    alpha, beta = lab["alpha"].pk, lab["beta"].pk
    assert found(f"run_id = '{alpha}'") == {"alpha"}
    assert found(f"run_id != '{alpha}'") == ALL - {"alpha"}
    assert found(f"attributes.run_id IN ('{alpha}', \"{beta}\",)") == {"alpha", "beta"}
    assert found(f"run_id NOT IN ('{alpha}', '{beta}')") == {"gamma", "delta", "epsilon"}
    assert found(f"run_id LIKE '{alpha}'") == {"alpha"}
    assert found(f"run_id IN ('0{alpha}', ' {alpha}', 'abc', '{'9' * 30}')") == set()
    assert found(f"run_id IN ('{alpha}\u0661', '+{alpha}', '{alpha}.0')") == set()
    assert found("run_id NOT IN ('abc')") == ALL
    assert found("run_id = ''") == set()


def test_start_time_compares_whole_milliseconds(world):
    project = apart(world)
    make_run(world, "r", started=T0 + timedelta(microseconds=1_500), project=project)
    runs = Run.objects.filter(project=project)
    cases = {
        f"start_time = {T0_MS + 1}": True,
        f"start_time = {T0_MS}": False,
        f"start_time = {T0_MS + 2}": False,
        f"start_time = {T0_MS + 1}.5": False,
        f"start_time != {T0_MS + 1}": False,
        f"start_time != {T0_MS}": True,
        f"start_time > {T0_MS}": True,
        f"start_time > {T0_MS + 1}": False,
        f"start_time >= {T0_MS + 1}": True,
        f"start_time >= {T0_MS + 1}.5": False,
        f"start_time < {T0_MS + 2}": True,
        f"start_time < {T0_MS + 1}": False,
        f"start_time <= {T0_MS + 1}": True,
        f"start_time <= {T0_MS}.9": False,
        "start_time < 1e400": True,
        "start_time > -1e400": True,
        "start_time > 99999999999999999999999": False,
        "start_time < -99999999999999999999999": False,
    }
    assert {text: found(text, runs) == {"r"} for text in cases} == cases


def test_like_is_case_sensitive_and_takes_regex_characters_literally(lab):
    pattern = WEIRD.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    assert found(f"params.weird = '{WEIRD}'") == {"alpha"}
    assert found(f"params.weird LIKE '{pattern}'") == {"alpha"}
    assert found(f"params.weird LIKE '{pattern[:40]}%'") == {"alpha"}
    assert found(f"params.weird LIKE '%{pattern[-30:]}'") == {"alpha"}
    assert found(f"params.weird LIKE '{pattern.swapcase()}'") == set()
    ascii_part = pattern[: pattern.index("\n")]
    assert found(f"params.weird ILIKE '{ascii_part.swapcase()}%'") == {"alpha"}
    assert found("params.weird LIKE '%.*%'") == set()


def test_like_with_many_wildcards_stays_fast(world):
    """A backtracking translation of this pattern would hold the query for hours: the suite's
    timeout (pyproject's ``timeout``) is the ceiling. What keeps it fast is that every middle
    segment commits to its first match (an atomic group) where Python matches."""
    pattern = "%a%a%a%a%a%a%a%a%a%a%b"
    assert like_regex(pattern, ignore_case=False, python=True).count("(?>.*?a)") == 10
    project = apart(world)
    make_run(world, "long", config={"text": "a" * 6000}, project=project)
    runs = Run.objects.filter(project=project)
    assert found(f"params.text LIKE '{pattern}'", runs) == set()
    assert found("params.text ILIKE '%a%a%a%a%a%a%a%a%a%a%'", runs) == {"long"}


def test_it_narrows_a_given_queryset(lab, world):
    runs = Run.objects.filter(project=world.project, created_by=world.owner.user)
    names = filter_runs(runs, "metrics.acc > 0").values_list("name", flat=True)
    assert set(names) == {"alpha", "epsilon"}


def test_a_search_is_one_query(lab, django_assert_num_queries):
    runs = filter_runs(
        Run.objects.all(),
        "metrics.acc > 0.1 AND params.lr = '0.1' AND tags.team IS NOT NULL "
        "AND status != 'KILLED' AND start_time > 0 AND run_id NOT IN ('0')",
    )
    with django_assert_num_queries(1):
        names = [run.name for run in order_runs(runs, ["metrics.acc DESC", "params.lr"])]
    assert names == ["alpha"]


# --- Filter: what is refused --------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter_string", "message"),
    [
        ("metrics.acc > 0.8 OR metrics.acc < 0.1", "Invalid clause(s) in filter string: 'OR'"),
        ("foo = 'x'", "Invalid attribute key 'foo' specified. Valid keys are"),
        ("metrix.acc > 1", "Invalid entity type 'metrix'. Valid values are ['metric'"),
        ("datasets.name = 'x'", "datasets"),
        ("artifact_uri = 'x'", "artifact_uri"),
        ("lifecycle_stage = 'active'", "Invalid attribute key 'lifecycle_stage'"),
        ("metrics.acc LIKE '1'", "Expected numeric value type for metric. Found '1'"),
        ("metrics.acc LIKE 1", "metrics.acc takes >, >=, =, !=, <, <=; not LIKE"),
        ("params.lr > '1'", "params.lr takes =, !=, LIKE, ILIKE"),
        ("run_name IS NULL", "IS NULL / IS NOT NULL is only supported for tags and params"),
        ("params.lr IN ('a')", "Only run_id takes IN"),
        ("status NOT IN ('RUNNING')", "Only ['run_id'] attributes support comparison with a list"),
        ("metrics.acc > 'high'", "Expected numeric value type for metric. Found 'high'"),
        ("start_time > '2024'", "numeric attribute: start_time. Found '2024'"),
        ("params.lr = 0.1", "quoted string value for parameter (e.g. 'my-value'). Got value 0.1"),
        ("run_id = 1", "Expected a quoted string value for attributes. Got value 1"),
        ("metrics.acc > high", "Expected a value"),
        ("params.lr = 'unterminated", "Unterminated single quote"),
        ('params.lr = "x', "Unterminated double quote"),
        ("params.`lr = 'x'", "Unterminated backtick quote"),
        ("metrics.acc", "Invalid clause(s) in filter string: 'metrics.acc'"),
        ("metrics.acc >", "Invalid clause(s) in filter string: 'metrics.acc', '>'"),
        ("metrics.acc > 1 AND", "Expected a clause"),
        ("metrics.acc > 1 metrics.loss < 1", "Expected AND between clauses"),
        ("(metrics.acc > 1)", "no parentheses"),
        ("run_id IN ()", "IN takes a list of quoted strings"),
        ("run_id IN ('1' '2')", "IN takes a list of quoted strings"),
        ("run_id IN '1'", "IN takes a list of quoted strings"),
        ("run_id IN ('1', 2)", "IN takes a list of quoted strings"),
        ("run_id IN ('1'", "Expected ',' or ')'"),
        ("metrics. > 1", "names no key"),
        ("params.0 = 'x'", "whole number"),
        ("tags.`-1` = 'x'", "whole number"),
        ("metrics.acc == 1", "not =="),
        ("metrics.acc ~ 1", "Unexpected '~'"),
        ("params.lr NOT LIKE 'x'", "Expected a comparator"),
        ("params.lr IS NOT 'x'", "Expected a comparator"),
        ("status = 'X' AND AND status = 'Y'", "Invalid attribute key 'AND'"),
        ("params.lr = 'a\x00'", "NUL"),
        ("params.lr = '\ud800'", "surrogate"),
        ("metrics.a > 1 AND " * MAX_CLAUSES + "metrics.a > 1", f"At most {MAX_CLAUSES} clauses"),
        ("x" * (MAX_LENGTH + 1), f"At most {MAX_LENGTH} characters"),
    ],
)
def test_it_refuses_an_invalid_filter_naming_the_problem(lab, filter_string, message):
    assert message in filter_error(filter_string).message


def test_it_refuses_a_filter_that_is_not_a_string(lab):
    assert filter_error(42).message == "filter: Must be a string."


# --- Ordering -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        # Default: start_time DESC, then (MLflow's tie-break) the lower run id first.
        ([], ["delta", "gamma", "beta", "epsilon", "alpha"]),
        # Missing (gamma, delta) last in both directions, in the default order.
        (["metrics.acc DESC"], ["epsilon", "alpha", "beta", "delta", "gamma"]),
        (["metrics.acc"], ["beta", "epsilon", "alpha", "delta", "gamma"]),
        (["metrics.acc asc"], ["beta", "epsilon", "alpha", "delta", "gamma"]),
        # beta's loss is NaN: with the missing ones.
        (["metrics.loss ASC"], ["alpha", "gamma", "delta", "beta", "epsilon"]),
        (["metrics.loss DESC"], ["gamma", "alpha", "delta", "beta", "epsilon"]),
        (["params.lr"], ["beta", "delta", "alpha", "epsilon", "gamma"]),
        (["params.lr DESC"], ["epsilon", "delta", "alpha", "beta", "gamma"]),
        (["tags.priority"], ["gamma", "alpha", "delta", "beta", "epsilon"]),
        (["tags.priority DESC"], ["alpha", "gamma", "delta", "beta", "epsilon"]),
        (["status", "metrics.acc DESC"], ["beta", "gamma", "alpha", "epsilon", "delta"]),
        (["status DESC", "run_name"], ["delta", "epsilon", "alpha", "beta", "gamma"]),
        (["attributes.end_time"], ["alpha", "beta", "epsilon", "gamma", "delta"]),
        (["end_time DESC"], ["gamma", "epsilon", "beta", "alpha", "delta"]),
        (["run_name DESC"], ["gamma", "epsilon", "delta", "beta", "alpha"]),
        (["start_time ASC"], ["alpha", "beta", "epsilon", "gamma", "delta"]),
        (["created"], ["alpha", "beta", "epsilon", "gamma", "delta"]),
        (["user_id", "run_name"], ["alpha", "epsilon", "gamma", "beta", "delta"]),
        (["run_id DESC"], ["epsilon", "delta", "gamma", "beta", "alpha"]),
        (["run_id"], ["alpha", "beta", "gamma", "delta", "epsilon"]),
        (
            ["metrics.`val loss` DESC", "tags.priority"],
            ["gamma", "alpha", "delta", "beta", "epsilon"],
        ),
    ],
)
def test_it_orders_with_missing_values_last(lab, order_by, expected):
    assert ordered(order_by) == expected


def test_ordering_keeps_a_filter(lab):
    runs = order_runs(filter_runs(Run.objects.all(), "status = 'FAILED'"), ["run_name DESC"])
    assert [run.name for run in runs] == ["gamma", "beta"]


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        (["metrics.acc SIDEWAYS"], "Invalid ordering key in order_by clause"),
        (["metrics.acc DESC extra"], "Could not be parsed"),
        ([""], "Invalid order_by clause ''. Could not be parsed."),
        (["'metrics.acc'"], "Could not be parsed"),
        (["metrics.acc; DROP TABLE tracking_run"], "Unexpected ';'"),
        (["unknown"], "Invalid attribute key 'unknown' specified"),
        (["artifact_uri"], "artifact_uri"),
        (["metrics.acc", "metrics.acc DESC"], "ordered by twice"),
        (["start_time", "created DESC"], "ordered by twice"),
        (["metrics.`acc"], "Unterminated backtick quote"),
        (["params.0"], "whole number"),
        ([1], "Must be a string"),
        ("metrics.acc", "Must be a list"),
        ([f"metrics.m{i}" for i in range(MAX_ORDER_BY + 1)], f"At most {MAX_ORDER_BY} items"),
    ],
)
def test_it_refuses_an_invalid_order_by_naming_the_problem(lab, order_by, message):
    assert message in order_error(order_by).message


# --- Any string: an answer or an MlflowError -----------------------------------------
# hypothesis is not installed: a table of nasty strings, and seeded random ones.

NASTY = [
    "params.`a\"b` = 'x'",
    "params.`a.-1` = 'x'",
    "params.`a.0.b` LIKE '%'",
    "tags.`$[0]` = 'x'",
    "params.`*` LIKE '%'",
    "tags.`😀` = '😀'",
    "params.é = 'ü'",
    "params.`` IS NULL",
    "params.x = ''",
    "params.x LIKE '\\'",
    "params.x LIKE '%%%%%_'",
    "params.x LIKE '(?='",
    "params.x ILIKE '[a-'",
    "params.x LIKE '\\\\%\\'",
    "params.x = '''",
    "run_id IN ('99999999999999999999999')",
    "run_id LIKE '%'",
    "start_time = 1e400",
    "start_time < -1e400",
    "end_time != 0",
    "metrics.x > 1e400",
    "metrics.x != -1e400",
    "metrics.`'; DROP TABLE tracking_run; --` > 1",
    "status LIKE '%'",
    "``",
    "`",
    "'",
    "\\",
    "AND",
    "OR",
    "metrics.x > 1 AND metrics.x > 1 AND",
    "params.a.b.c.d.e.f.g.h = 'x'",
    "params.x IS NOT NULL AND tags.y IS NULL",
    "params.x = 'a' AND params.x = 'b'",
    "metrics.x >= 0x10",
    "metrics.x > 1.2.3",
    "metrics.x > 1e",
    'params.`x` = "\'"',
    "run_id IN ('1',)",
    "run_id IN (,)",
    "run_id IN ((('1')))",
    "\u200b",
    "status = 'RUNNING'\u00a0AND run_name = 'x'",
    "\uff33\uff34\uff21\uff34\uff35\uff33 = 'x'",  # full-width letters
    "params.\uff58 = 'x'",
]
NUMBER, TEXT = ["=", "!=", ">", ">=", "<", "<="], ["=", "!=", "LIKE", "ILIKE", "IS NULL", "IN"]
OPERANDS = {
    "number": (NUMBER, ["0.5", "-1e400", "1e400", f"{T0_MS}", ".5", "-0", "1E-3"]),
    "text": (TEXT, ["'0.1'", "'%a_'", "'FAILED'", '"x"', "''", "'é😀'", "'\\'", "'%\\%%'"]),
}
IDENTIFIERS = {
    "metrics.acc": "number", "metrics.`val loss`": "number", "start_time": "number",
    "end_time": "number", "params.lr": "text", "params.optimizer.name": "text",
    "params.`a b`": "text", "tags.team": "text", "status": "text", "run_id": "text",
    "run_name": "text", "user_id": "text",
}  # fmt: skip
FRAGMENTS = [
    "metrics.", "params.", "`", "'", '"', "=", "!=", ">", " LIKE ", " IN ", " NOT ", " IS ",
    "NULL", "(", ")", ",", " AND ", " OR ", "0", "-1", "1e400", ".5", "%", "_", "\\", "é",
    "😀", "\n", " ", " DESC",
]  # fmt: skip


def generated_strings(count: int, seed: int = 20240101) -> list[str]:
    """Filters of one to three clauses, some then damaged by an insertion or a deletion."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        text = " AND ".join(random_clause(rng) for _ in range(rng.randint(1, 3)))
        at = rng.randrange(len(text))
        if rng.random() < 0.25:
            text = text[:at] + rng.choice(FRAGMENTS) + text[at:]
        elif rng.random() < 0.33:
            text = text[:at] + text[at + 1 :]
        texts.append(text)
    return texts


def random_clause(rng: random.Random) -> str:
    identifier, kind = rng.choice(list(IDENTIFIERS.items()))
    if rng.random() < 0.1:
        kind = rng.choice(list(OPERANDS))  # now and then, the wrong kind of operand
    comparators, values = OPERANDS[kind]
    comparator = rng.choice(comparators)
    if comparator == "IS NULL":
        return f"{identifier} IS {rng.choice(['', 'NOT '])}NULL"
    if comparator == "IN":
        return f"{identifier} {rng.choice(['', 'NOT '])}IN ('1', {rng.choice(values)})"
    return f"{identifier} {comparator} {rng.choice(values)}"


def answers_or_refuses(search) -> bool:
    try:
        list(search())
    except MlflowError as error:
        assert error.code == "INVALID_PARAMETER_VALUE"
        return False
    return True


@pytest.mark.parametrize("text", NASTY + generated_strings(300))
def test_any_string_gets_an_answer_or_an_mlflow_error(lab, text):
    answers_or_refuses(lambda: filter_runs(Run.objects.all(), text))
    answers_or_refuses(lambda: order_runs(Run.objects.all(), [text]))


def test_the_generated_strings_include_valid_searches(lab):
    texts = generated_strings(300)
    valid = [t for t in texts if answers_or_refuses(lambda t=t: filter_runs(Run.objects.all(), t))]
    assert len(valid) >= 90  # a third of them reach past the parser into SQL
