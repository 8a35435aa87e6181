"""Triggers fire once, resolve, respect filters, silences and inhibition; the outbox is written.

These run the real services and the real event dispatch (after commit), and
look at the rows they write: alerts and pending notifications. Delivery has
its own tests.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import services
from alerts.models import Alert, AlertState, Destination, Notification, NotificationStatus
from tests.alerts.conftest import make_rule
from tests.conftest import World
from tracking import selectors
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run

pytestmark = pytest.mark.django_db(transaction=True)  # events are dispatched after commit


def _run(world: World, name: str = "r", **fields) -> Run:
    return tracking_services.run_create(
        user=world.owner.user, project=world.project, name=name, **fields
    )


def _log(run: Run, key: str, values: dict[int, float | None]) -> None:
    metrics_ingest(run=run, points=[Point(key, s, v, 1.0 + s) for s, v in values.items()])


def _alerts(**filters) -> list[tuple[str, str]]:
    return [(a.state, a.summary) for a in Alert.objects.filter(**filters).order_by("pk")]


def test_a_failed_run_fires_once_and_notifies_each_destination(world, hook):
    make_rule(world, hook, "run_failed")
    run = _run(world)
    tracking_services.run_update(run=run, data={"status": "failed", "error": "OOM"})
    tracking_services.run_update(run=run, data={"notes": "again"})
    assert _alerts() == [("firing", "r failed: OOM")]
    (notification,) = Notification.objects.all()
    assert (notification.event, notification.status) == ("fired", NotificationStatus.PENDING)
    assert notification.destination == hook


def test_a_crashed_run_that_reports_again_resolves(world, hook):
    make_rule(world, hook, "run_failed", {"statuses": ["crashed"]})
    run = _run(world)
    tracking_services.run_update(run=run, data={"status": "crashed"})
    tracking_services.run_heartbeat(run=Run.objects.get(pk=run.pk))
    assert _alerts() == [("resolved", "r crashed")]
    assert [n.event for n in Notification.objects.order_by("pk")] == ["fired", "resolved"]


def test_status_filters_tags_and_groups_choose_the_runs(world, hook):
    make_rule(world, hook, "run_failed", {"statuses": ["crashed"]})
    make_rule(world, hook, "run_finished", tags=["nightly"], group="sweep")
    plain = _run(world, "plain")
    tracking_services.run_update(run=plain, data={"status": "failed"})
    tagged = _run(world, "tagged", tags=["nightly"], group="sweep")
    untagged = _run(world, "untagged", group="sweep")
    for run in (tagged, untagged):
        tracking_services.run_update(run=run, data={"status": "finished"})
    assert _alerts() == [("firing", "tagged finished")]


def test_nan_fires_on_the_first_bad_point_and_resolves_on_a_finite_one(world, hook):
    make_rule(world, hook, "metric_nan", {"key": "loss"})
    run = _run(world)
    _log(run, "loss", {0: 1.0, 1: None, 2: float("inf")})
    _log(run, "loss", {3: None})
    assert _alerts() == [("firing", "loss is NaN at step 1 in r")]
    _log(run, "other", {4: None})
    _log(run, "loss", {5: 0.5})
    assert _alerts(state=AlertState.RESOLVED) == [("resolved", "loss is NaN at step 1 in r")]


def test_a_threshold_fires_after_for_points_consecutive_points_across_batches(world, hook):
    make_rule(
        world, hook, "metric_threshold", {"key": "loss", "op": ">", "value": 2, "for_points": 3}
    )
    run = _run(world)
    _log(run, "loss", {0: 3.0, 1: 1.0, 2: 3.0})
    _log(run, "loss", {3: 4.0})
    assert _alerts() == []
    _log(run, "loss", {4: 5.0})  # steps 2, 3, 4: three in a row
    assert _alerts() == [("firing", "loss > 2 in r for 3 points (now 5 at step 4)")]
    _log(run, "loss", {5: 1.5})
    assert _alerts()[0][0] == "resolved"


def test_stagnation_fires_when_the_best_is_patience_steps_old(world, hook):
    make_rule(world, hook, "metric_stagnant", {"key": "val", "mode": "min", "patience_steps": 10})
    run = _run(world)
    _log(run, "val", {0: 1.0, 5: 0.5, 10: 0.6})
    assert _alerts() == []
    _log(run, "val", {15: 0.7})
    assert _alerts() == [("firing", "val has not improved on 0.5 (step 5) for 10 steps in r")]
    _log(run, "val", {16: 0.4})
    assert _alerts()[0][0] == "resolved"


def test_an_sdk_alert_fires_per_raised_alert_of_the_chosen_levels(world, hook):
    make_rule(world, hook, "sdk_alert", {"levels": ["error"]})
    run = _run(world)
    tracking_services.sdk_alert_raise(run=run, title="disk full", level="error")
    tracking_services.sdk_alert_raise(run=run, title="disk full", level="error")  # a repeat
    tracking_services.sdk_alert_raise(run=run, title="fyi", level="info")
    assert _alerts() == [("firing", "disk full (r)")]


def test_a_failure_quietly_resolves_the_runs_metric_alerts(world, hook):
    make_rule(world, hook, "metric_nan", {"key": "loss"})
    make_rule(world, hook, "run_failed")
    run = _run(world)
    _log(run, "loss", {0: None})
    tracking_services.run_update(run=run, data={"status": "failed"})
    nan, failed = Alert.objects.order_by("pk")
    assert (nan.state, nan.values["resolved_with"]) == ("resolved", {"inhibited_by": failed.pk})
    assert [n.event for n in Notification.objects.filter(alert=nan)] == ["fired"]  # no resolved


def test_a_silenced_notification_is_logged_not_sent(world, hook):
    rule = make_rule(world, hook, "run_failed")
    project = selectors.project_get_for_user(world.owner.user, "acme/mnist")
    services.silence_create(
        user=world.owner.user,
        role=project.role,
        project=project,
        until=timezone.now() + timedelta(hours=1),
        reason="maintenance",
    )
    tracking_services.run_update(run=_run(world), data={"status": "failed"})
    (notification,) = Notification.objects.all()
    assert notification.status == NotificationStatus.SILENCED
    assert Alert.objects.get().rule == rule


def test_disabled_rules_and_destinations_send_nothing(world, hook):
    make_rule(world, hook, "run_failed", enabled=False)
    tracking_services.run_update(run=_run(world), data={"status": "failed"})
    assert _alerts() == []
    make_rule(world, hook, "run_finished")
    Destination.objects.update(enabled=False)
    tracking_services.run_update(run=_run(world, "b"), data={"status": "finished"})
    assert len(_alerts()) == 1 and not Notification.objects.exists()


def test_a_project_without_metric_rules_costs_ingest_one_query(world, django_assert_num_queries):
    run = _run(world)
    from alerts import evaluation
    from tracking import events

    event = events.PointsIngested(run.pk, run.project_id, rows=[], keys={}, series={"x": {}})
    with django_assert_num_queries(1):
        evaluation.on_points(event)
