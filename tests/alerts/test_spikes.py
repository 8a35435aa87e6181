"""A condition that comes and goes inside one batch fires, then resolves.

The SDK sends about a batch a second, so a fast loop puts many steps in one:
a loss spike at step 250 followed by normal steps arrives in a single batch.
Judging only the batch's last points would never see it.
"""

from __future__ import annotations

import pytest

from alerts.models import Alert, Notification
from tests.alerts.conftest import make_rule
from tests.conftest import World
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

CALM = {step: 1.0 + 0.01 * (step % 3) for step in range(40)}


def _run(world: World) -> Run:
    return tracking_services.run_create(user=world.owner.user, project=world.project, name="r")


def _log(run: Run, values: dict[int, float]) -> None:
    metrics_ingest(run=run, points=[Point("loss", s, v, 1.0 + s) for s, v in values.items()])


def _events() -> list[tuple[str, str]]:
    return [(n.event, n.alert.summary) for n in Notification.objects.order_by("pk")]


def _spiked(run: Run, *, at: int, width: int = 1, value: float = 50.0) -> None:
    _log(run, CALM)
    batch = {step: 1.0 + 0.01 * (step % 3) for step in range(40, 60)}
    batch.update(dict.fromkeys(range(at, at + width), value))
    _log(run, batch)  # one batch: calm, the spike, calm again


def test_a_threshold_crossed_inside_a_batch_fires_and_resolves(world, hook):
    make_rule(world, hook, "metric_threshold", {"key": "loss", "op": ">", "value": 10})
    _spiked(_run(world), at=45)
    assert _events() == [
        ("fired", "loss > 10 in r (50 at step 45)"),
        ("resolved", "loss > 10 in r (50 at step 45)"),
    ]
    assert Alert.objects.get().values["step"] == 45


def test_for_points_counts_a_run_inside_the_batch_and_not_a_shorter_one(world, hook):
    make_rule(
        world, hook, "metric_threshold", {"key": "loss", "op": ">", "value": 10, "for_points": 3}
    )
    run = _run(world)
    _spiked(run, at=45, width=2)  # two points: not enough
    assert _events() == []
    _log(run, {60: 50.0, 61: 50.0, 62: 50.0, 63: 1.0})
    assert [event for event, _summary in _events()] == ["fired", "resolved"]
    assert Alert.objects.get().values["step"] == 62


def test_a_z_score_spike_inside_a_batch_fires_and_resolves(world, hook):
    make_rule(world, hook, "metric_zscore", {"key": "loss", "window_points": 20, "z": 6})
    _spiked(_run(world), at=45)
    assert [event for event, _summary in _events()] == ["fired", "resolved"]
    alert = Alert.objects.get()
    assert (alert.values["step"], alert.values["value"]) == (45, 50.0)
    assert alert.values["z"] > 6


def test_a_window_crossed_inside_a_long_batch_fires_and_resolves(world, hook):
    params = {"key": "loss", "agg": "mean", "window_points": 5, "op": ">", "value": 10}
    make_rule(world, hook, "metric_window", params)
    run = _run(world)
    _log(run, CALM)
    batch = dict.fromkeys(range(40, 140), 1.0)  # 100 points: judged in one slide
    batch.update(dict.fromkeys(range(70, 72), 60.0))  # the window ending at 70: mean 12.8
    _log(run, batch)
    assert [event for event, _summary in _events()] == ["fired", "resolved"]
    assert Alert.objects.get().values["step"] == 70


def test_an_open_alert_is_not_fired_again_by_a_spike(world, hook):
    make_rule(world, hook, "metric_threshold", {"key": "loss", "op": ">", "value": 10})
    run = _run(world)
    _log(run, {0: 50.0})
    _log(run, {1: 1.0, 2: 50.0, 3: 50.0})  # still beyond at the end: the same incident
    assert [event for event, _summary in _events()] == ["fired"]
