"""`demo_seed`: the demo team, project and runs that `manage.py up --demo` shows."""

from __future__ import annotations

from collections import Counter

import pytest

from tracking import services
from tracking.demo import demo_seed
from tracking.models import Membership, MetricPoint, MetricSeries, Project, Role, Run, RunStatus


@pytest.fixture
def admin(db):
    user, _ = services.user_get_or_create(username="admin")
    return user


def series(run_name: str, key: str) -> MetricSeries:
    return MetricSeries.objects.get(run__name=run_name, key=key)


def test_it_creates_the_team_with_the_owner(admin) -> None:
    team = demo_seed(owner=admin)
    assert team.slug == "demo"
    assert Membership.objects.get(team=team, user=admin).role == Role.OWNER
    assert Project.objects.filter(team=team, slug="mnist").exists()


def test_it_creates_only_ended_runs(admin) -> None:
    """Nothing keeps a demo run alive: one left running would crash and page ten minutes later."""
    demo_seed(owner=admin)
    statuses = Counter(
        Run.objects.filter(project__team__slug="demo").values_list("status", flat=True)
    )
    assert statuses == {RunStatus.FINISHED: 4, RunStatus.FAILED: 1, RunStatus.KILLED: 1}
    assert "every run has ended" in Project.objects.get(slug="mnist").description


def test_it_gives_every_run_config_tags_group_host_and_git(admin) -> None:
    demo_seed(owner=admin)
    for run in Run.objects.filter(project__team__slug="demo"):
        assert {"lr", "batch_size", "optimizer", "epochs"} <= run.config.keys()
        assert run.group and run.host and services.run_tags(run)
        assert len(run.git["commit"]) == 40 and run.git["branch"]


def test_it_logs_curves_with_points(admin) -> None:
    demo_seed(owner=admin)
    for run in Run.objects.filter(project__team__slug="demo"):
        keys = set(run.metric_series.values_list("key", flat=True))
        assert keys == {"train/loss", "val/loss", "val/acc", "lr"}
    loss = series("cnn-sgd-baseline", "train/loss")
    assert loss.count == 3000 == MetricPoint.objects.filter(series=loss).count()
    assert loss.last_value < loss.max_value / 10
    acc = series("cnn-sgd-baseline", "val/acc")
    assert acc.last_value > 0.95


def test_it_ends_the_failed_run_on_a_nan(admin) -> None:
    demo_seed(owner=admin)
    failed = Run.objects.get(project__team__slug="demo", status=RunStatus.FAILED)
    assert failed.exit_code == 1
    assert "Traceback" in failed.notes and failed.ended_at is not None
    loss = series(failed.name, "train/loss")
    assert loss.nonfinite_count == 1
    assert MetricPoint.objects.get(series=loss, step=loss.last_step).value is None


def test_it_gives_finished_runs_a_summary_and_exit_code(admin) -> None:
    demo_seed(owner=admin)
    for run in Run.objects.filter(project__team__slug="demo", status=RunStatus.FINISHED):
        assert run.exit_code == 0
        assert run.summary["best/val/acc"] >= run.summary["val/acc"] > 0.9


def test_it_does_not_duplicate_when_run_twice(admin) -> None:
    first = demo_seed(owner=admin)
    runs, points = Run.objects.count(), MetricPoint.objects.count()
    assert demo_seed(owner=admin) == first
    assert (Run.objects.count(), MetricPoint.objects.count()) == (runs, points)


def test_it_gives_runs_a_past_timeline_and_the_failure_its_error(admin) -> None:
    demo_seed(owner=admin)
    failed = Run.objects.get(status=RunStatus.FAILED)
    assert failed.error.startswith("FloatingPointError")
    assert failed.traceback.startswith("Traceback")
    for run in Run.objects.all():
        assert run.created_at < run.last_seen_at
        assert run.ended_at == run.last_seen_at
