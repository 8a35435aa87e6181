"""Points are never moved or replaced: several points per step, on ingest and on every read.

A point is (key, step, value, timestamp). Only an exact duplicate is dropped;
a point without a step goes after its key's last step; the readers (history
pages, downsampling, summaries, rollups, export/import) see every point once,
in one order: step, then timestamp, then arrival.
"""

from __future__ import annotations

import io
import json
import math
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from tracking import rollups, services
from tracking.history import histories, metric_history, parse_cursor
from tracking.ingest import Point, metrics_ingest
from tracking.models import MetricPoint, MetricRollup, MetricSeries, Run

T = 1_764_150_000.0
MILLIS_AS_SECONDS = [0.001, 1.001, 1_700_000_000.001, 1_764_150_000.123, 99_999_999_999.999]


@pytest.fixture
def run(world) -> Run:
    response = world.editor.client().post("/api/v1/runs", {"project": "acme/mnist"}, format="json")
    return Run.objects.get(pk=response.json()["id"])


def post(client, run: Run, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/runs/{run.pk}/metrics", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def stored(run: Run, key: str = "loss") -> list[tuple[int, float | None, float]]:
    """(step, value, timestamp) of every point of ``key``, in primary-key order."""
    points = MetricPoint.objects.filter(series__run=run, series__key=key)
    return list(
        points.order_by("step", "timestamp", "seq").values_list("step", "value", "timestamp")
    )


def point(step: int | None, value: Any, stamp: float | None = None, key: str = "loss") -> dict:
    found: dict[str, Any] = {"key": key, "value": value}
    if step is not None:
        found["step"] = step
    if stamp is not None:
        found["timestamp"] = stamp
    return found


# --- The native API -------------------------------------------------------------------------


def test_another_value_at_a_stored_step_is_kept(world, run):
    client = world.editor.client()
    post(client, run, {"points": [point(7, 1.5, T)]})
    answer = post(client, run, {"points": [point(7, 9.0, T), point(7, 8.0, T + 1)]})
    assert answer == {"accepted": 2, "duplicates": 0, "replayed": False}
    assert stored(run) == [(7, 1.5, T), (7, 9.0, T), (7, 8.0, T + 1)]
    series = MetricSeries.objects.get(run=run, key="loss")
    assert (series.count, series.last_step, series.last_value) == (3, 7, 8.0)


def test_an_exact_duplicate_is_dropped_nan_included(world, run):
    client = world.editor.client()
    batch = [point(0, 1.0, T), point(1, None, T + 1), point(2, "Infinity", T + 2)]
    assert post(client, run, {"points": batch})["accepted"] == 3
    again = post(client, run, {"points": [*batch, point(1, "NaN", T + 1), point(0, 1.0, T)]})
    assert again == {"accepted": 0, "duplicates": 5, "replayed": False}
    assert stored(run) == [(0, 1.0, T), (1, None, T + 1), (2, math.inf, T + 2)]
    assert MetricSeries.objects.get(run=run, key="loss").count == 3


def test_points_without_a_step_go_after_their_keys_last_step(world, run):
    client = world.editor.client()
    post(client, run, {"points": [point(step, 1.0, T + step) for step in range(5)]})
    batch = [
        point(None, 0.5, T + 10),
        point(None, 0.4, T + 11),
        point(None, 0.9, T + 12, key="acc"),
        point(10, 0.3, T + 13),
        point(None, 0.2, T + 14),
        point(3, 0.1, T + 15),  # an explicit step is kept as sent, even behind
    ]
    assert post(client, run, {"points": batch})["accepted"] == 6
    assert [step for step, _, _ in stored(run)] == [0, 1, 2, 3, 3, 4, 5, 6, 10, 11]
    assert stored(run, "acc") == [(0, 0.9, T + 12)]


def test_explicit_steps_are_kept_whatever_order_they_arrive_in(world, run):
    client = world.editor.client()
    sent = [point(step, step / 10, T + step) for step in (1, 2, 3, 4, 5)]
    sent += [point(0, 9.0, T + 10), point(6, 0.6, T + 11)]
    for one in sent:
        assert post(client, run, {"points": [one]})["accepted"] == 1
    assert stored(run) == sorted((p["step"], p["value"], p["timestamp"]) for p in sent)
    series = MetricSeries.objects.get(run=run, key="loss")
    assert (series.first_step, series.last_step, series.last_value, series.count) == (0, 6, 0.6, 7)


def test_a_replayed_batch_id_is_all_duplicates_even_without_steps_or_timestamps(world, run):
    client = world.editor.client()
    batch = {"batch_id": "b-1", "points": [point(None, 1.0), point(None, 2.0)]}
    assert post(client, run, batch)["accepted"] == 2
    assert post(client, run, batch) == {"accepted": 0, "duplicates": 2, "replayed": True}
    assert [step for step, _, _ in stored(run)] == [0, 1]


def test_without_a_batch_id_points_the_server_stamps_are_new_each_time(world, run):
    # What docs/api.md says: re-sending is harmless with the same batch_id, or with
    # points that carry their steps and timestamps; the server's clock makes new points.
    client = world.editor.client()
    post(client, run, {"points": [point(0, 1.0)]})
    post(client, run, {"points": [point(0, 1.0)]})
    assert [(step, value) for step, value, _ in stored(run)] == [(0, 1.0), (0, 1.0)]


def test_millisecond_timestamps_read_back_exactly(world, run):
    client = world.editor.client()
    post(client, run, {"points": [point(i, 1.0, t) for i, t in enumerate(MILLIS_AS_SECONDS)]})
    body = client.get(f"/api/v1/runs/{run.pk}/metrics/loss").json()
    assert body["timestamps"] == MILLIS_AS_SECONDS
    keys = client.get(f"/api/v1/runs/{run.pk}/metrics").json()["metrics"]
    assert keys[0]["last_timestamp"] == MILLIS_AS_SECONDS[-1]


# --- Readers with several points per step -------------------------------------------------


def crowded(run: Run, *, seed: int = 1, key: str = "loss") -> list[tuple[int, float | None, float]]:
    """A series whose steps hold 1 to 4 points, one step 300, some sharing a timestamp;
    logged in shuffled batches. Answers what was logged, in primary-key order."""
    rng = random.Random(seed)
    logged = []
    for step in range(0, 3_000, 3):
        for n in range(rng.choice([1, 1, 2, 4])):
            logged.append(Point(key, step, rng.uniform(-1, 1), T + step + n // 2))
    logged += [Point(key, 1_500, rng.uniform(-1, 1), T + 9_000 + n) for n in range(300)]
    logged.append(Point(key, 600, None, T))
    logged.append(Point(key, 2_400, 50.0, T + 1))
    logged.append(Point(key, 2_401, -50.0, T + 1))
    rng.shuffle(logged)
    for start in range(0, len(logged), 700):
        metrics_ingest(run=run, points=logged[start : start + 700])
    order = sorted(range(len(logged)), key=lambda i: (logged[i].step, logged[i].timestamp))
    # Points sharing a step and timestamp come in arrival order (seq), as logged.
    return [(logged[i].step, logged[i].value, logged[i].timestamp) for i in order]


def all_pages(series: MetricSeries, limit: int) -> list[tuple]:
    rows, cursor = [], None
    while True:
        page = metric_history(series, limit=limit, cursor=cursor)
        assert len(page.steps) <= limit
        rows += list(zip(page.steps, page.values, page.timestamps, strict=True))
        if page.next_cursor is None:
            return rows
        assert page.next_step == parse_cursor(page.next_cursor)[0]
        cursor = parse_cursor(page.next_cursor)


def as_json(rows: list[tuple]) -> list[tuple]:
    return [(s, "NaN" if v is None else v, t) for s, v, t in rows]


def test_pages_smaller_than_a_step_never_split_or_skip_points(run):
    logged = crowded(run)
    series = MetricSeries.objects.get(run=run, key="loss")
    assert stored(run) == logged
    for limit in (1, 7, 299, 301, 5_000):
        assert all_pages(series, limit) == as_json(logged), limit


def test_the_api_pages_with_next_cursor_and_still_tells_next_step(world, run):
    metrics_ingest(run=run, points=[Point("loss", 0, float(n), T + n // 2) for n in range(10)])
    client = world.viewer.client()
    seen, query = [], {"limit": 3}
    while True:
        body = client.get(f"/api/v1/runs/{run.pk}/metrics/loss", query).json()
        seen += body["values"]
        if body["next_cursor"] is None:
            assert body["next_step"] is None
            break
        assert body["next_step"] == 0
        query = {"limit": 3, "cursor": body["next_cursor"]}
    assert seen == [float(n) for n in range(10)]
    bad = client.get(f"/api/v1/runs/{run.pk}/metrics/loss", {"cursor": "0:nope:1"})
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "cursor")


def test_downsampling_keeps_real_points_extremes_nan_and_both_ends(run):
    logged = crowded(run)
    series = MetricSeries.objects.get(run=run, key="loss")
    history = metric_history(series, max_points=100)
    assert history.downsampled and history.total == len(logged)
    kept = list(zip(history.steps, history.values, history.timestamps, strict=True))
    assert len(kept) <= 100 + 2 + 50
    real = set(as_json(logged))
    assert all(row in real for row in kept)
    assert kept == sorted(kept, key=lambda row: (row[0], row[2]))  # primary-key order
    assert as_json(logged)[0] == kept[0] and as_json(logged)[-1] == kept[-1]
    assert (600, "NaN", T) in kept
    assert (2_400, 50.0, T + 1) in kept and (2_401, -50.0, T + 1) in kept
    assert len([row for row in kept if row[0] == 1_500]) <= 3  # not all 300 of them


def test_a_zoom_starting_inside_a_crowded_step_has_its_first_and_last_points(run):
    logged = crowded(run)
    series = MetricSeries.objects.get(run=run, key="loss")
    history = metric_history(series, max_points=20, step_min=1_500, step_max=1_800)
    inside = [row for row in as_json(logged) if 1_500 <= row[0] <= 1_800]
    kept = list(zip(history.steps, history.values, history.timestamps, strict=True))
    assert history.total == len(inside)
    assert (kept[0], kept[-1]) == (inside[0], inside[-1])
    assert min(inside, key=lambda r: r[1]) in kept and max(inside, key=lambda r: r[1]) in kept


def test_many_series_at_once_answer_what_one_at_a_time_does(world, run):
    crowded(run, key="a", seed=1)
    crowded(run, key="b", seed=2)
    metrics_ingest(run=run, points=[Point("c", 0, float(n), T + n) for n in range(50)])
    series_list = list(MetricSeries.objects.filter(run=run).order_by("key"))
    for max_points in (2, 100, 400, 5_000):
        together = histories(series_list, max_points=max_points)
        for series in series_list:
            alone = metric_history(series, max_points=max_points)
            assert together[series.pk].as_dict() == alone.as_dict(), (series.key, max_points)


def test_summaries_and_rollups_count_every_point(run):
    logged = crowded(run)
    series = MetricSeries.objects.get(run=run, key="loss")
    finite = [v for _, v, _ in logged if v is not None]
    first, last = logged[0], logged[-1]  # primary-key order: step, time, arrival
    assert series.count == len(logged) and series.nonfinite_count == 1
    assert (series.first_step, series.first_value, series.first_timestamp) == first
    assert (series.last_step, series.last_value, series.last_timestamp) == last
    assert (series.min_value, series.max_value) == (min(finite), max(finite))
    for lo, hi in ((0, 10**6), (1_500, 1_500), (1_499, 1_503), (601, 2_399)):
        plain = len([row for row in logged if lo <= row[0] <= hi])
        assert rollups.count_in_range(series.pk, lo, hi) == plain, (lo, hi)


def test_the_last_point_is_the_highest_step_then_the_latest_timestamp(run):
    for one in [Point("k", 5, 1.0, T + 10), Point("k", 5, 2.0, T + 20), Point("k", 5, 3.0, T + 15)]:
        metrics_ingest(run=run, points=[one])
    metrics_ingest(run=run, points=[Point("k", 3, 4.0, T + 100)])
    series = MetricSeries.objects.get(run=run, key="k")
    assert (series.last_step, series.last_value, series.last_timestamp) == (5, 2.0, T + 20)
    assert (series.first_step, series.first_value) == (3, 4.0)


def test_a_step_and_timestamp_shared_by_two_values_keeps_both_in_arrival_order(run):
    metrics_ingest(run=run, points=[Point("k", 1, 2.0, T), Point("k", 1, 1.0, T)])
    metrics_ingest(run=run, points=[Point("k", 1, 3.0, T), Point("k", 1, 1.0, T)])
    rows = MetricPoint.objects.filter(series__key="k").order_by("seq")
    assert list(rows.values_list("seq", "value")) == [(0, 2.0), (1, 1.0), (2, 3.0)]
    series = MetricSeries.objects.get(run=run, key="k")
    assert (series.last_value, series.last_seq) == (3.0, 2)


def test_the_csv_download_holds_every_point_of_a_crowded_step(world, run, monkeypatch):
    from workspace import run_pages

    monkeypatch.setattr(run_pages, "CSV_PAGE", 4)
    metrics_ingest(run=run, points=[Point("loss", 0, float(n), T + n // 3) for n in range(10)])
    client = Client()
    client.force_login(world.viewer.user)
    path = f"/{run.project.team.slug}/{run.project.slug}/runs/{run.pk}/metrics.csv"
    response = client.get(path, {"key": "loss"})
    assert response.status_code == 200, path
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [line.split(",")[1] for line in lines[1:]] == [str(float(n)) for n in range(10)]


# --- Export and import ----------------------------------------------------------------------


def test_export_and_import_carry_every_point_exactly(world, run, tmp_path: Path, monkeypatch):
    from tracking.portability import runs as portable_runs

    monkeypatch.setattr(portable_runs, "POINTS_PER_LINE", 7)  # steps span lines
    metrics_ingest(
        run=run, points=[Point("ms", i, 1.0, t) for i, t in enumerate(MILLIS_AS_SECONDS)]
    )
    metrics_ingest(run=run, points=[Point("loss", 0, float(n), T + n // 3) for n in range(20)])
    metrics_ingest(run=run, points=[Point("loss", 0, float(n), T + n // 3) for n in range(20, 25)])
    metrics_ingest(run=run, points=[Point("loss", 1, None, T), Point("loss", 1, 0.5, T)])
    services.team_create(slug="lab", owner=world.outsider.user)
    path = tmp_path / "out.jsonl"
    call_command("export_project", "acme/mnist", str(path), stdout=io.StringIO())
    call_command("import_project", str(path), "--team", "lab", stdout=io.StringIO())
    copy = Run.objects.get(project__team__slug="lab")
    for key in ("ms", "loss"):
        assert points_of(copy, key) == points_of(run, key), key
        assert summary_of(copy, key) == summary_of(run, key), key
        assert cells_of(copy, key) == cells_of(run, key), key
    assert [t for _, _, t in stored(copy, "ms")] == MILLIS_AS_SECONDS


def points_of(run: Run, key: str) -> list[tuple]:
    points = MetricPoint.objects.filter(series__run=run, series__key=key)
    return list(points.order_by("step", "timestamp", "seq").values_list(*POINT_FIELDS))


POINT_FIELDS = ("step", "timestamp", "seq", "value")
SUMMARY_FIELDS = (
    "count", "nonfinite_count", "first_step", "first_timestamp", "first_value",
    "last_step", "last_timestamp", "last_seq", "last_value", "min_value", "max_value",
)  # fmt: skip


def summary_of(run: Run, key: str) -> tuple:
    return MetricSeries.objects.filter(run=run, key=key).values_list(*SUMMARY_FIELDS).get()


def cells_of(run: Run, key: str) -> list[tuple]:
    cells = MetricRollup.objects.filter(series__run=run, series__key=key)
    return list(cells.order_by("level", "bucket").values_list(*rollups.CELL_COLUMNS))


# --- Concurrent writers -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_of_one_run_store_each_point_exactly_once(world):
    if connection.vendor == "sqlite":
        pytest.skip("in-memory SQLite has no concurrent writers: the server tests cover SQLite")
    run = services.run_create(user=world.owner.user, project=world.project)
    shared = [Point("loss", step, float(step), T + step) for step in range(400)]
    own = {w: [Point("loss", s, -float(w), T + s) for s in range(0, 400, 7)] for w in range(6)}
    own_nan = {w: [Point("loss", 3, None, T + 1000 + w)] for w in range(6)}
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            mine = shared + own[writer] + own_nan[writer] + shared[:50]
            random.Random(writer).shuffle(mine)
            start.wait()
            for first in range(0, len(mine), 60):
                metrics_ingest(run=Run.objects.get(pk=run.pk), points=mine[first : first + 60])
        except BaseException as error:  # reported by the test below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    expected = {(p.step, p.value, p.timestamp) for p in shared}
    for writer in range(6):
        expected |= {(p.step, p.value, p.timestamp) for p in own[writer] + own_nan[writer]}
    got = stored(run)
    assert len(got) == len(set(got)) == len(expected)
    assert set(got) == expected
    series = MetricSeries.objects.get(run=run, key="loss")
    assert series.count == len(expected)
    assert rollups.count_in_range(series.pk, 0, 10**6) == len(expected)


VALUES = [0.0, 1.0, None, math.inf]


def test_ingest_never_replaces_a_point_whatever_the_batches(run):
    """Property: any batches of any points store exactly the distinct points sent."""
    rng = random.Random(11)
    sent = []
    for _ in range(40):
        batch = [
            Point("p", rng.randrange(30), rng.choice([*VALUES, rng.random()]), T + rng.randrange(3))
            for _ in range(rng.randrange(1, 40))
        ]
        sent += batch
        metrics_ingest(run=run, points=batch)
    distinct = {(p.step, p.value, p.timestamp) for p in sent}
    got = stored(run, "p")
    assert len(got) == len(distinct) and set(got) == distinct
