"""The periodic scan: stalls fire and resolve, silent runs crash, reminders repeat."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from alerts import scan, services
from alerts.models import Alert, AlertState, Notification
from tests.alerts.conftest import make_rule
from tests.conftest import World
from tests.support import require_postgres
from tracking import selectors
from tracking import services as tracking_services
from tracking.demo import DEMO_PROJECT, DEMO_TEAM, demo_seed
from tracking.models import Run, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def _silent_run(world: World, name: str, seconds: int) -> Run:
    run = tracking_services.run_create(user=world.owner.user, project=world.project, name=name)
    Run.objects.filter(pk=run.pk).update(last_seen_at=timezone.now() - timedelta(seconds=seconds))
    return Run.objects.get(pk=run.pk)


def test_a_silent_run_stalls_once_and_resolves_when_it_reports_again(world, hook):
    make_rule(world, hook, "run_stalled", {"after_seconds": 300})
    quiet = _silent_run(world, "quiet", 400)
    _silent_run(world, "fresh", 10)
    assert scan.scan().stalled == 1
    assert scan.scan().stalled == 0  # still the same incident
    (alert,) = Alert.objects.all()
    assert alert.run == quiet and alert.summary == "quiet has been silent for 6 min"
    tracking_services.run_heartbeat(run=quiet)
    assert scan.scan().recovered == 1
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    assert [n.event for n in Notification.objects.order_by("pk")] == ["fired", "resolved"]


def test_a_run_silent_past_the_crash_delay_crashes_and_fires_run_failed(world, hook, settings):
    settings.LABBOOK = {**settings.LABBOOK, "RUN_CRASH_AFTER_SECONDS": 600}
    make_rule(world, hook, "run_failed", {"statuses": ["crashed"]})
    make_rule(world, hook, "run_stalled", {"after_seconds": 300})
    gone = _silent_run(world, "gone", 700)
    result = scan.scan()
    assert result.crashed == 1
    gone.refresh_from_db()
    assert gone.status == RunStatus.CRASHED
    summaries = dict(Alert.objects.values_list("rule__trigger", "state"))
    assert summaries["run_failed"] == "firing"
    assert summaries.get("run_stalled", "resolved") == "resolved"  # inhibited or ended


def test_a_firing_alert_is_repeated_after_its_interval(world, hook):
    make_rule(world, hook, "run_failed", repeat_interval=3600)
    run = tracking_services.run_create(user=world.owner.user, project=world.project, name="r")
    tracking_services.run_update(run=run, data={"status": "failed"})
    assert scan.scan().reminded == 0
    Alert.objects.update(last_notified_at=timezone.now() - timedelta(hours=2))
    assert scan.scan().reminded == 1
    assert scan.scan().reminded == 0
    assert [n.event for n in Notification.objects.order_by("pk")] == ["fired", "repeat"]
    assert Alert.objects.get().repeats == 1


def test_two_scans_racing_fire_and_crash_once(world, hook, settings):
    require_postgres()  # SQLite serializes writers: the race needs a real concurrent database
    settings.LABBOOK = {**settings.LABBOOK, "RUN_CRASH_AFTER_SECONDS": 600}
    make_rule(world, hook, "run_failed", {"statuses": ["crashed"]})
    make_rule(world, hook, "run_stalled", {"after_seconds": 60})
    for i in range(20):
        _silent_run(world, f"r{i}", 700)
    make_rule(world, hook, "run_finished")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run_scan() -> None:
        try:
            start.wait()
            scan.scan()
        except BaseException as error:  # reported by the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run_scan) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert Run.objects.filter(status=RunStatus.CRASHED).count() == 20
    failed = Alert.objects.filter(rule__trigger="run_failed")
    assert failed.count() == 20  # once per run, whichever scan won
    assert Notification.objects.filter(alert__in=failed, event="fired").count() == 20


def test_the_demo_raises_no_false_alarm(world, hook, settings):
    """A run_failed rule on the demo project stays quiet long after the crash delay."""
    demo_seed(owner=world.owner.user)
    project = selectors.project_get_for_user(world.owner.user, f"{DEMO_TEAM}/{DEMO_PROJECT}")
    demo_hook = _demo_destination(world, project.team)
    data = {"name": "failed", "trigger": "run_failed", "destinations": [demo_hook.pk]}
    services.rule_create(user=world.owner.user, project=project, data=data)
    crash_after = settings.LABBOOK["RUN_CRASH_AFTER_SECONDS"]
    later = timezone.now() + timedelta(seconds=crash_after * 3)
    assert scan.scan(now=later).crashed == 0
    assert not Run.objects.filter(status__in=[RunStatus.RUNNING, RunStatus.CRASHED]).exists()
    assert not Alert.objects.exists()


def _demo_destination(world: World, team):
    return services.destination_create(
        user=world.owner.user,
        team=team,
        role="owner",
        kind="email",
        name="demo",
        config={"addresses": ["demo@example.com"]},
    )
