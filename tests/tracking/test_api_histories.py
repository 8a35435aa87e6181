"""GET /api/v1/metrics/<key>?runs=...: one metric of a sweep in one read.

A compare page of 200 runs draws each chart from one request: every run the caller may read,
downsampled with spikes kept, in the order named; runs that are not there (another team's,
deleted, without the metric) listed as missing without telling which is which.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kernel.charts import MAX_CHART_RUNS
from tracking import services
from tracking.api.views import MAX_HISTORIES_POINTS
from tracking.ingest import Point, metrics_ingest


def log(run, steps: range, *, key: str = "loss", spike: int | None = None) -> None:
    points = [
        Point(key, step, 1e6 if step == spike else 1.0 / (step + 1), 1_700_000_000.0 + step)
        for step in steps
    ]
    metrics_ingest(run=run, points=points)


def read(client, key: str = "loss", **params):
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return client.get(f"/api/v1/metrics/{key}?{query}")


@pytest.fixture
def sweep(world):
    runs = [
        services.run_create(user=world.owner.user, project=world.project, name=f"trial-{i}")
        for i in range(5)
    ]
    for index, run in enumerate(runs):
        log(run, range(2_000 if index == 0 else 10), spike=1_234 if index == 0 else None)
    return runs


def test_it_answers_every_named_run_in_the_order_named(world, sweep):
    ids = [sweep[3].pk, sweep[0].pk, sweep[1].pk]
    answer = read(world.viewer.client(), runs=",".join(map(str, ids)), max_points=100)

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["key"] == "loss"
    assert [line["run"] for line in body["histories"]] == ids
    assert body["missing"] == []
    long, short = body["histories"][1], body["histories"][0]
    assert long["downsampled"] is True and long["total"] == 2_000
    assert len(long["steps"]) <= 100 + 2
    assert 1_234 in long["steps"], "the spike is kept"
    assert long["values"][long["steps"].index(1_234)] == 1e6
    assert short["downsampled"] is False and short["steps"] == list(range(10))
    assert len(short["timestamps"]) == 10


def test_a_step_range_reads_only_that_range(world, sweep):
    answer = read(
        world.owner.client(), runs=sweep[0].pk, max_points=50, step_min=1_000, step_max=1_099
    )
    (line,) = answer.json()["histories"]
    assert line["steps"][0] >= 1_000 and line["steps"][-1] <= 1_099
    assert line["total"] == 100


def test_runs_out_of_reach_are_missing_and_not_told_apart(world, sweep):
    rival_project = services.project_create(
        user=world.outsider.user, team_slug="rival", slug="secret"
    )
    theirs = services.run_create(user=world.outsider.user, project=rival_project)
    log(theirs, range(5))
    quiet = services.run_create(user=world.owner.user, project=world.project)  # no loss
    gone = services.run_create(user=world.owner.user, project=world.project)
    log(gone, range(5))
    gone.deleted_at = timezone.now()  # MLflow's delete-run
    gone.save(update_fields=["deleted_at"])
    absent = 9_999_999

    ids = [sweep[0].pk, theirs.pk, quiet.pk, gone.pk, absent]
    body = read(world.viewer.client(), runs=",".join(map(str, ids)), max_points=10).json()

    assert [line["run"] for line in body["histories"]] == [sweep[0].pk]
    assert body["missing"] == [theirs.pk, quiet.pk, gone.pk, absent]


def test_an_outsider_reads_nothing(world, sweep):
    body = read(world.outsider.client(), runs=sweep[0].pk, max_points=10).json()
    assert body == {"key": "loss", "histories": [], "missing": [sweep[0].pk]}


def test_anonymous_is_refused(anonymous, sweep):
    assert read(anonymous, runs=sweep[0].pk, max_points=10).status_code == 401


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"max_points": 10}, "runs", "at least one run"),
        ({"runs": "", "max_points": 10}, "runs", "at least one run"),
        ({"runs": "1,x", "max_points": 10}, "runs", "Comma-separated run ids"),
        ({"runs": "0", "max_points": 10}, "runs", "Comma-separated run ids"),
        ({"runs": "9" * 20, "max_points": 10}, "runs", "Comma-separated run ids"),
        (
            {"runs": ",".join(map(str, range(1, MAX_CHART_RUNS + 2))), "max_points": 10},
            "runs",
            f"At most {MAX_CHART_RUNS}",
        ),
        ({"runs": "1"}, "max_points", "Required"),
        ({"runs": "1", "max_points": 1}, "max_points", "between 2"),
        ({"runs": "1", "max_points": "ten"}, "max_points", "integer"),
        ({"runs": "1", "max_points": 10, "step_min": -1}, "step_min", "between 0"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(world, params, field, says):
    answer = read(world.owner.client(), **params)
    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    assert error["field"] == field
    assert says.lower() in error["message"].lower()


def test_the_points_of_one_read_are_capped(world):
    ids = ",".join(str(i) for i in range(1, MAX_CHART_RUNS + 1))
    most = MAX_HISTORIES_POINTS // MAX_CHART_RUNS
    refused = read(world.owner.client(), runs=ids, max_points=most + 1)
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "max_points"
    assert f"At most {most} for {MAX_CHART_RUNS} runs" in refused.json()["error"]["message"]
    assert read(world.owner.client(), runs=ids, max_points=most).status_code == 200


def test_the_queries_do_not_grow_with_the_runs(world):
    client = world.owner.client()
    read(client, runs="1", max_points=2)  # the token's first use of the minute is recorded

    def queries(count: int) -> int:
        runs = [
            services.run_create(user=world.owner.user, project=world.project) for _ in range(count)
        ]
        for run in runs:
            log(run, range(300))  # longer than max_points: each is downsampled
        with CaptureQueriesContext(connection) as captured:
            answer = read(client, runs=",".join(str(r.pk) for r in runs), max_points=50)
        assert answer.status_code == 200
        assert len(answer.json()["histories"]) == count
        return len(captured)

    assert queries(3) == queries(30)


def test_a_chart_by_step_reads_its_lines_without_timestamps(world, sweep):
    ids = f"{sweep[0].pk},{sweep[1].pk}"
    client = world.owner.client()
    lean = read(client, runs=ids, max_points=100, timestamps="false").json()["histories"]
    full = read(client, runs=ids, max_points=100).json()["histories"]
    assert [line["timestamps"] for line in lean] == [[], []]
    assert [line["steps"] for line in lean] == [line["steps"] for line in full]
    assert len(full[1]["timestamps"]) == 10
    ranged = read(client, runs=ids, max_points=100, step_min=5, timestamps="0").json()
    assert [line["timestamps"] for line in ranged["histories"]] == [[], []]
    refused = read(client, runs=ids, max_points=100, timestamps="maybe")
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "timestamps"
