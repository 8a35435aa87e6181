from __future__ import annotations

import json

import pytest

from tracking import events
from tracking.models import MetricPoint, MetricSeries, Run


@pytest.fixture
def run(world):
    response = world.editor.client().post("/api/v1/runs", {"project": "acme/mnist"}, format="json")
    return Run.objects.get(pk=response.json()["id"])


def post(client, run, body, *, raw=False):
    payload = body if raw else json.dumps(body)
    return client.post(f"/api/v1/runs/{run.pk}/metrics", payload, content_type="application/json")


def points(n, *, key="loss", start=0):
    """Points as the SDK sends them: with their steps and timestamps."""
    return [
        {"key": key, "step": s, "value": 1.0 / (1 + s), "timestamp": 1_700_000_000.0 + s}
        for s in range(start, start + n)
    ]


def stored(run, key="loss"):
    return list(
        MetricPoint.objects.filter(series__run=run, series__key=key)
        .order_by("step")
        .values_list("step", "value")
    )


def test_it_stores_a_batch_and_updates_the_summary(world, run):
    batch = points(500) + points(200, key="acc")
    response = post(world.editor.client(), run, {"points": batch})
    assert response.status_code == 200
    assert response.json() == {"accepted": 700, "duplicates": 0, "replayed": False}
    loss = MetricSeries.objects.get(run=run, key="loss")
    assert (loss.count, loss.first_step, loss.last_step) == (500, 0, 499)
    assert loss.last_value == pytest.approx(1 / 500)
    assert (loss.min_value, loss.max_value) == (pytest.approx(1 / 500), 1.0)
    assert len(stored(run, "acc")) == 200


def test_it_stores_10000_points_in_a_bounded_number_of_queries(
    world, run, django_assert_max_num_queries
):
    batch = [{"key": f"k{i % 10}", "step": i // 10, "value": float(i)} for i in range(10_000)]
    client = world.editor.client()
    with django_assert_max_num_queries(30):
        response = post(client, run, {"points": batch})
    assert response.json()["accepted"] == 10_000
    assert MetricPoint.objects.filter(series__run=run).count() == 10_000


def test_it_refuses_more_than_10000_points_and_writes_nothing(world, run):
    response = post(world.editor.client(), run, {"points": points(10_001)})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_points"
    assert response.json()["error"]["field"] == "points"
    assert MetricPoint.objects.count() == 0


def test_a_resent_batch_stores_nothing_twice(world, run):
    client = world.editor.client()
    batch = {"points": points(300)}
    assert post(client, run, batch).json()["accepted"] == 300
    again = post(client, run, batch).json()
    assert again == {"accepted": 0, "duplicates": 300, "replayed": False}
    assert MetricSeries.objects.get(run=run, key="loss").count == 300
    assert len(stored(run)) == 300


def test_a_resent_batch_id_is_answered_without_reapplying(world, run):
    client = world.editor.client()
    assert post(client, run, {"batch_id": "b-1", "points": points(10)}).json()["accepted"] == 10
    replay = post(client, run, {"batch_id": "b-1", "points": points(10, start=10)}).json()
    assert replay == {"accepted": 0, "duplicates": 10, "replayed": True}
    assert len(stored(run)) == 10


def test_another_value_for_a_stored_step_is_kept_beside_the_first(world, run):
    client = world.editor.client()
    post(client, run, {"points": [{"key": "loss", "step": 7, "value": 1.5, "timestamp": 5.0}]})
    response = post(
        client,
        run,
        {
            "points": [
                {"key": "loss", "step": 7, "value": 9.0, "timestamp": 5.0},
                {"key": "loss", "step": 7, "value": 1.5, "timestamp": 5.0},
            ]
        },
    )
    assert response.json() == {"accepted": 1, "duplicates": 1, "replayed": False}
    assert stored(run) == [(7, 1.5), (7, 9.0)]


def test_a_partially_overlapping_batch_counts_only_new_points(world, run):
    client = world.editor.client()
    post(client, run, {"points": points(100)})
    response = post(client, run, {"points": points(100, start=50)})
    assert response.json() == {"accepted": 50, "duplicates": 50, "replayed": False}
    series = MetricSeries.objects.get(run=run, key="loss")
    assert (series.count, series.last_step) == (150, 149)


def test_out_of_order_batches_keep_the_summary_right(world, run):
    client = world.editor.client()
    post(client, run, {"points": [{"key": "loss", "step": 10, "value": 0.5}]})
    post(client, run, {"points": [{"key": "loss", "step": 3, "value": 0.9}]})
    series = MetricSeries.objects.get(run=run, key="loss")
    assert (series.first_step, series.last_step, series.last_value) == (3, 10, 0.5)


def test_nan_and_infinity_round_trip(world, run):
    body = (
        '{"points": [{"key": "loss", "step": 0, "value": 1.0},'
        ' {"key": "loss", "step": 1, "value": NaN},'
        ' {"key": "loss", "step": 2, "value": "Infinity"},'
        ' {"key": "loss", "step": 3, "value": "-inf"},'
        ' {"key": "loss", "step": 4, "value": null}]}'
    )
    client = world.editor.client()
    assert post(client, run, body, raw=True).json()["accepted"] == 5
    history = client.get(f"/api/v1/runs/{run.pk}/metrics/loss").json()
    assert history["values"] == [1.0, "NaN", "Infinity", "-Infinity", "NaN"]
    keys = client.get(f"/api/v1/runs/{run.pk}/metrics").json()["metrics"]
    assert keys[0]["nonfinite_count"] == 4
    assert keys[0]["last"] == "NaN"
    assert (keys[0]["min"], keys[0]["max"]) == ("-Infinity", "Infinity")


def test_timestamps_are_taken_as_unix_seconds_or_iso(world, run):
    client = world.editor.client()
    post(
        client,
        run,
        {
            "points": [
                {"key": "loss", "step": 0, "value": 1, "timestamp": 1700000000.5},
                {"key": "loss", "step": 1, "value": 1, "timestamp": "2023-11-14T22:13:21Z"},
            ]
        },
    )
    history = client.get(f"/api/v1/runs/{run.pk}/metrics/loss").json()
    assert history["timestamps"] == [1700000000.5, 1700000001.0]


@pytest.mark.parametrize(
    ("bad_point", "field"),
    [
        ({"key": "loss", "step": -1, "value": 1}, "points[1].step"),
        ({"key": "loss", "step": 1.5, "value": 1}, "points[1].step"),
        ({"key": "loss", "step": "3", "value": 1}, "points[1].step"),
        ({"key": "loss", "step": True, "value": 1}, "points[1].step"),
        ({"key": "loss", "step": 2**63, "value": 1}, "points[1].step"),
        ({"key": "loss", "step": 1, "value": "high"}, "points[1].value"),
        ({"key": "loss", "step": 1, "value": [1]}, "points[1].value"),
        ({"key": "loss", "step": 1, "value": 10**400}, "points[1].value"),
        ({"key": "loss", "step": 1}, "points[1].value"),
        ({"key": "", "step": 1, "value": 1}, "points[1].key"),
        ({"key": " loss", "step": 1, "value": 1}, "points[1].key"),
        ({"key": "k" * 251, "step": 1, "value": 1}, "points[1].key"),
        ({"key": 5, "step": 1, "value": 1}, "points[1].key"),
        ({"step": 1, "value": 1}, "points[1].key"),
        ({"key": "loss", "step": 1, "value": 1, "timestamp": "yesterday"}, "points[1].timestamp"),
        (
            {"key": "loss", "step": 1, "value": 1, "timestamp": "2023-11-14T22:13:21"},
            "points[1].timestamp",
        ),
        ({"key": "loss", "step": 1, "value": 1, "timestamp": -5}, "points[1].timestamp"),
        ({"key": "loss", "step": 1, "value": 1, "unit": "s"}, "points[1].unit"),
        ([1, 2], "points[1]"),
    ],
)
def test_one_bad_point_rejects_the_batch_naming_it(world, run, bad_point, field):
    batch = {"points": [{"key": "loss", "step": 0, "value": 1}, bad_point]}
    response = post(world.editor.client(), run, batch)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["field"] == field
    assert MetricPoint.objects.count() == 0
    assert MetricSeries.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "points"),
        ({"points": {"loss": 1}}, "points"),
        ({"points": [], "extra": 1}, "extra"),
        ({"points": [], "batch_id": ""}, "batch_id"),
        ({"points": [], "batch_id": "x" * 65}, "batch_id"),
    ],
)
def test_it_rejects_bad_batches(world, run, body, field):
    response = post(world.editor.client(), run, body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_it_refuses_viewers_and_hides_the_run_from_outsiders(world, run):
    assert post(world.viewer.client(), run, {"points": points(1)}).status_code == 403
    assert post(world.outsider.client(), run, {"points": points(1)}).status_code == 404
    assert MetricPoint.objects.count() == 0


def test_it_marks_the_run_seen_and_revives_a_crashed_run(world, run):
    Run.objects.filter(pk=run.pk).update(status="crashed")
    post(world.editor.client(), run, {"points": points(1)})
    refreshed = Run.objects.get(pk=run.pk)
    assert refreshed.status == "running"
    assert refreshed.last_seen_at > run.last_seen_at


def test_it_publishes_the_stored_points_after_commit(
    world, run, django_capture_on_commit_callbacks
):
    seen: list[events.PointsIngested] = []
    events.subscribe(events.PointsIngested, seen.append)
    try:
        client = world.editor.client()
        post(client, run, {"points": points(2)})
        with django_capture_on_commit_callbacks(execute=True):
            post(client, run, {"points": points(3)})
    finally:
        events.unsubscribe(events.PointsIngested, seen.append)
    assert len(seen) == 1
    assert [(key, step) for key, step, _, _ in seen[0].points()] == [("loss", 2)]
    assert seen[0].series["loss"]["count"] == 3


def test_a_run_summary_shows_last_values(world, run):
    client = world.editor.client()
    post(client, run, {"points": points(10)})
    body = client.get(f"/api/v1/runs/{run.pk}").json()
    assert body["summary"] == {"loss": pytest.approx(0.1)}


def test_old_batch_ids_are_forgotten_but_points_stay_unique(world, run):
    from datetime import timedelta

    from django.utils import timezone

    from tracking.ingest import ingest_batches_prune
    from tracking.models import IngestBatch

    client = world.editor.client()
    post(client, run, {"batch_id": "old", "points": points(5)})
    post(client, run, {"batch_id": "new", "points": points(5, start=5)})
    IngestBatch.objects.filter(batch_id="old").update(created_at=timezone.now() - timedelta(days=8))
    assert ingest_batches_prune() == 1
    assert list(IngestBatch.objects.values_list("batch_id", flat=True)) == ["new"]
    again = post(client, run, {"batch_id": "old", "points": points(5)}).json()
    assert again == {"accepted": 0, "duplicates": 5, "replayed": False}


def test_the_prune_task_is_scheduled():
    from labbook.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "tracking.ingest_batches_prune" in tasks
    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    assert "tracking.ingest_batches_prune" in app.tasks
