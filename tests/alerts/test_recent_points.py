"""What a process keeps of watched series between batches is used only while it is right.

A windowed rule's batch reads the newest stored points unless this process
judged the series' previous batch; these tests check it reads nothing then,
and reads again (and decides as if it had always read) after another writer's
batch, a rolled-back batch, or a point stored before the end of the series.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from alerts import recent_points
from alerts.models import Alert, AlertRule
from tests.alerts.conftest import make_rule
from tests.conftest import World
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import MetricPoint, Run

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = {"key": "loss", "agg": "mean", "window_points": 4, "op": ">", "value": 2}


def _run(world: World) -> Run:
    return tracking_services.run_create(user=world.owner.user, project=world.project, name="r")


def _log(run: Run, values: dict[int, float]) -> list[str]:
    """Store the points; answers the SQL of the reads of stored points it made."""
    points = [Point("loss", step, value, 1.0 + step) for step, value in values.items()]
    with CaptureQueriesContext(connection) as queries:
        metrics_ingest(run=run, points=points)
    read = f"FROM {MetricPoint._meta.db_table}"
    return [q["sql"] for q in queries.captured_queries if read in q["sql"] and "step" in q["sql"]]


def _firing() -> list[str]:
    return [a.summary for a in Alert.objects.filter(state="firing")]


def test_the_next_batch_of_a_series_it_judged_reads_no_stored_points(world, hook):
    make_rule(world, hook, "metric_window", WINDOW)
    run = _run(world)
    assert len(_log(run, {0: 1.0, 1: 1.0})) == 1  # nothing kept yet: one read
    assert _log(run, {2: 1.0, 3: 1.0}) == []
    assert _log(run, {4: 3.0, 5: 3.0}) == []  # mean of 1, 1, 3, 3 = 2: not above
    assert _firing() == []
    assert _log(run, {6: 3.5}) == []  # mean of 1, 3, 3, 3.5 = 2.625
    assert _firing() == ["mean of loss over 4 points > 2 in r (mean 2.625 at step 6)"]


def test_another_writers_batch_makes_it_read_again(world, hook):
    rule = make_rule(world, hook, "metric_window", WINDOW)
    run = _run(world)
    _log(run, {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0})
    # Another process stores a batch: here, one this process does not judge.
    AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
    _log(run, {4: 5.0, 5: 5.0})
    AlertRule.objects.filter(pk=rule.pk).update(enabled=True)
    reads = _log(run, {6: 1.0})  # mean of 1, 5, 5, 1 = 3: only with the other batch seen
    assert len(reads) == 1
    assert _firing() == ["mean of loss over 4 points > 2 in r (mean 3 at step 6)"]


def test_a_rolled_back_batch_is_not_taken_for_stored(world, hook):
    make_rule(world, hook, "metric_window", WINDOW)
    run = _run(world)
    _log(run, {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0})
    with pytest.raises(RuntimeError), transaction.atomic():
        _log(run, {4: 9.0, 5: 9.0, 6: 9.0})  # judged, kept, then rolled back
        raise RuntimeError("the request failed after the points")
    assert len(_log(run, {4: 1.0})) == 1  # the count tells: it reads again
    assert _firing() == []  # 1, 1, 1, 1: the 9s never happened


def test_a_point_stored_before_the_end_makes_it_read_again(world, hook):
    make_rule(world, hook, "metric_window", WINDOW)
    run = _run(world)
    _log(run, {0: 1.0, 2: 1.0, 4: 1.0, 6: 1.0})
    assert len(_log(run, {3: 9.0})) == 1  # before the last kept point: read
    assert len(_log(run, {7: 9.0})) == 1  # the kept stretch went with the earlier batch
    # 1 (step 4), 1 (6)... the window ending at step 7 is 3: 9, 4: 1, 6: 1, 7: 9 → mean 5
    assert _firing() == ["mean of loss over 4 points > 2 in r (mean 5 at step 7)"]


def test_what_is_kept_stays_under_its_budget(monkeypatch):
    monkeypatch.setattr(recent_points, "MAX_POINTS", 10)
    for series in range(5):
        rows = [(step, 1.0, float(step)) for step in range(4)]
        recent_points.keep(series, rows=rows, batch=[], count=4, last=(3, 3.0, 0), limit=4)
    assert recent_points._total <= 10
    assert list(recent_points._kept) == [3, 4]  # the least recently judged went first
