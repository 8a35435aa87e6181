"""Migration 0004 keeps every stored point (seq 0) and fills the new summary and rollup columns.

A fresh database is migrated to 0003, given points the way the old code
stored them (one per step), then migrated to the end and read with today's
code: in a subprocess, on its own SQLite file, and on a throwaway PostgreSQL
database when the test run uses PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.migrations import run_migration_script

pytestmark = pytest.mark.subprocess

T = 1_764_150_000.123

SCRIPT = f"""
import json

import django

django.setup()
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

call_command("migrate", "tracking", "0003", verbosity=0)
old = MigrationExecutor(connection).loader.project_state(
    ("tracking", "0003_token_scope_and_expiry")
).apps
team = old.get_model("tracking", "Team").objects.create(slug="t", name="t")
project = old.get_model("tracking", "Project").objects.create(team=team, slug="p")
run = old.get_model("tracking", "Run").objects.create(project=project, name="r")
series = old.get_model("tracking", "MetricSeries").objects.create(
    run=run, key="loss", count=3, nonfinite_count=1, first_step=0, last_step=20,
    last_value=0.5, last_timestamp={T} + 20, min_value=0.5, max_value=2.0,
)
Point = old.get_model("tracking", "MetricPoint")
Point.objects.bulk_create([
    Point(series=series, step=0, value=2.0, timestamp={T}),
    Point(series=series, step=3, value=None, timestamp={T} + 3),
    Point(series=series, step=20, value=0.5, timestamp={T} + 20),
])
Rollup = old.get_model("tracking", "MetricRollup")
for level in range(1, 7):
    Rollup.objects.create(
        series=series, level=level, bucket=0, min_step=0 if level == 1 else 20,
        min_value=2.0 if level == 1 else 0.5, max_step=0, max_value=2.0, nan_step=3,
        count=2 if level == 1 else 3,
    )
Rollup.objects.create(
    series=series, level=1, bucket=1, min_step=20, min_value=0.5, max_step=20,
    max_value=0.5, nan_step=None, count=1,
)

call_command("migrate", verbosity=0)

from tracking.history import metric_history
from tracking.ingest import Point as New, metrics_ingest
from tracking.models import MetricPoint, MetricRollup, MetricSeries, Run

CELLS = ("min_step", "min_timestamp", "min_seq", "max_step", "max_timestamp", "max_seq",
         "nan_step", "nan_timestamp", "nan_seq", "count")
migrated = list(MetricRollup.objects.filter(level=2).values_list(*CELLS))
series = MetricSeries.objects.get()
metrics_ingest(run=Run.objects.get(), points=[New("loss", 20, 0.25, {T} + 20)])
series.refresh_from_db()
print(json.dumps({{
    "points": list(MetricPoint.objects.order_by("step", "timestamp", "seq").values_list(
        "step", "timestamp", "seq", "value")),
    "series": [series.first_step, series.first_timestamp, series.first_value,
               series.last_step, series.last_timestamp, series.last_seq, series.last_value,
               series.count],
    "migrated": migrated,
    "rollups": list(MetricRollup.objects.filter(level=2).values_list(*CELLS)),
    "chart": metric_history(series, max_points=2).as_dict(),
}}))
"""


def migrate_old_points(env: dict[str, str]) -> dict:
    return run_migration_script(SCRIPT, env)


def test_old_points_survive_the_migration_with_seq_0(database_env: dict[str, str]):
    found = migrate_old_points(database_env)
    assert found["points"] == [
        [0, T, 0, 2.0],
        [3, T + 3, 0, None],
        [20, T + 20, 0, 0.5],
        [20, T + 20, 1, 0.25],  # a second value at a step: kept beside the first
    ]
    assert found["series"] == [0, T, 2.0, 20, T + 20, 1, 0.25, 4]
    assert found["migrated"] == [[20, T + 20, 0, 0, T, 0, 3, T + 3, 0, 3]]
    assert found["rollups"] == [[20, T + 20, 1, 0, T, 0, 3, T + 3, 0, 4]]
    chart = found["chart"]
    assert chart["downsampled"] is True
    assert (chart["steps"][0], chart["timestamps"][0], chart["values"][0]) == (0, T, 2.0)
    assert (3, "NaN") in zip(chart["steps"], chart["values"], strict=True)
