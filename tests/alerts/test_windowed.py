"""The windowed metric triggers: metric_window, metric_change and metric_zscore.

Each fires when its condition holds for ``for_points`` deciding points in a
row (across batches), resolves when the latest one no longer holds, leaves
NaN out, refuses bad params naming the field, and costs a batch a number of
queries that does not grow with the run's history. The last tests send a
real message through a real server, broker, worker and loopback receiver.
"""

from __future__ import annotations

import io
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.models import Alert, AlertRule, AlertState
from alerts.windowed import (
    LAZY_WORK_PER_POINT,
    Judge,
    Seen,
    Stretch,
    Window,
    WindowJudge,
    ZscoreJudge,
    streak,
)
from tests.alerts.conftest import make_rule
from tests.alerts.receiver import Receiver
from tests.conftest import World
from tests.sdk.server import LabbookServer
from tests.support import wait_until
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run

DB = pytest.mark.django_db(transaction=True)  # events are dispatched after commit
DELIVERY_TIMEOUT = 60


def _run(world: World, name: str = "r") -> Run:
    return tracking_services.run_create(user=world.owner.user, project=world.project, name=name)


def _log(run: Run, values: dict[int, float | None], key: str = "loss") -> None:
    metrics_ingest(run=run, points=[Point(key, s, v, 1.0 + s) for s, v in values.items()])


def _alerts() -> list[tuple[str, str]]:
    return [(a.state, a.summary) for a in Alert.objects.order_by("pk")]


def _window(**params: Any) -> dict[str, Any]:
    return {"key": "loss", "agg": "mean", "op": ">", "value": 2, **params}


def _change(**params: Any) -> dict[str, Any]:
    return {"key": "loss", "mode": "min", "percent": 20, **params}


def _zscore(**params: Any) -> dict[str, Any]:
    return {"key": "loss", "window_points": 10, "z": 2, "direction": "above", **params}


ALTERNATING = {step: 1.0 if step % 2 == 0 else 1.2 for step in range(10)}  # mean 1.1, std 0.1


# --- metric_window ---------------------------------------------------------------------------


@DB
def test_a_window_mean_fires_after_for_points_windows_across_batches_and_resolves(world, hook):
    make_rule(world, hook, "metric_window", _window(window_points=3, for_points=2))
    run = _run(world)
    _log(run, {0: 1.0, 1: 1.0, 2: 1.0})
    _log(run, {3: 4.0})  # mean 2: not above 2
    _log(run, {4: 4.0})  # mean 3: one window above
    assert _alerts() == []
    _log(run, {5: 4.0})  # mean 4: two in a row, across two batches
    assert _alerts() == [
        ("firing", "mean of loss over 3 points > 2 in r for 2 points (mean 4 at step 5)")
    ]
    alert = Alert.objects.get()
    assert {k: alert.values[k] for k in ("key", "step", "value", "aggregate", "points")} == {
        "key": "loss",
        "step": 5,
        "value": 4.0,
        "aggregate": 4.0,
        "points": 2,
    }
    _log(run, {6: 0.0, 7: 0.0})  # means 2.67, then 1.33
    assert _alerts()[0][0] == AlertState.RESOLVED


@DB
def test_a_single_spike_does_not_fire_while_the_window_mean_stays_under(world, hook):
    make_rule(world, hook, "metric_window", _window(window_points=5))
    run = _run(world)
    _log(run, {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0})
    _log(run, {4: 5.0})  # a threshold on the value would fire; the mean is 1.8
    _log(run, {5: 1.0})
    assert _alerts() == []


@DB
def test_a_window_leaves_nan_out_and_a_nan_batch_changes_nothing(world, hook):
    make_rule(world, hook, "metric_window", _window(window_points=3, agg="max", value=5))
    run = _run(world)
    _log(run, {0: 1.0, 1: None, 2: 6.0})  # max of (1, 6): NaN left out
    assert _alerts() == [("firing", "max of loss over 3 points > 5 in r (max 6 at step 2)")]
    _log(run, {3: None, 4: float("inf")})
    assert _alerts()[0][0] == AlertState.FIRING


@DB
def test_a_time_window_holds_the_points_of_the_last_seconds(world, hook):
    make_rule(world, hook, "metric_window", _window(window_seconds=3, agg="max", value=5))
    run = _run(world)  # _log stamps step s at 1 + s seconds
    _log(run, {0: 6.0})
    assert _alerts() == [("firing", "max of loss over 3 s > 5 in r (max 6 at step 0)")]
    _log(run, {1: 1.0, 2: 1.0})  # step 0 is 2 s older than step 2: still in
    assert _alerts()[0][0] == AlertState.FIRING
    _log(run, {3: 1.0})  # 3 s older than step 3: out
    assert _alerts()[0][0] == AlertState.RESOLVED


# --- metric_change ---------------------------------------------------------------------------


@DB
def test_a_change_fires_when_worse_than_the_best_for_for_points_and_resolves(world, hook):
    make_rule(world, hook, "metric_change", _change(for_points=2))
    run = _run(world)
    _log(run, {0: 1.0, 1: 0.5, 2: 0.55})  # best 0.5; the margin is 0.1
    _log(run, {3: 0.7})
    assert _alerts() == []
    _log(run, {4: 0.65})
    assert _alerts() == [
        ("firing", "loss more than 20% above its best 0.5 in r for 2 points (now 0.65 at step 4)")
    ]
    values = Alert.objects.get().values
    assert (values["best"], values["step"], round(values["change_percent"])) == (0.5, 4, 30)
    _log(run, {5: 0.58})
    assert _alerts()[0][0] == AlertState.RESOLVED


@DB
def test_a_single_spike_above_the_best_does_not_fire_with_for_points_2(world, hook):
    make_rule(world, hook, "metric_change", _change(for_points=2))
    run = _run(world)
    _log(run, {0: 0.5, 1: 0.9, 2: 0.5, 3: 0.9, 4: 0.55})
    assert _alerts() == []


@DB
def test_a_change_leaves_nan_out_and_higher_is_better_in_mode_max(world, hook):
    make_rule(world, hook, "metric_change", _change(key="acc", mode="max", for_points=2))
    run = _run(world)
    _log(run, {0: 0.9, 1: 0.7, 2: None}, key="acc")  # 0.9 - 0.18 = 0.72
    _log(run, {3: 0.71}, key="acc")  # NaN neither breaks nor counts
    assert _alerts() == [
        ("firing", "acc more than 20% below its best 0.9 in r for 2 points (now 0.71 at step 3)")
    ]
    _log(run, {4: None}, key="acc")
    assert _alerts()[0][0] == AlertState.FIRING


@DB
def test_against_a_best_of_zero_any_worse_value_is_beyond(world, hook):
    make_rule(world, hook, "metric_change", _change())
    run = _run(world)
    _log(run, {0: 0.0, 1: 0.0})
    assert _alerts() == []
    _log(run, {2: 0.001})
    assert _alerts() == [
        ("firing", "loss more than 20% above its best 0 in r (now 0.001 at step 2)")
    ]
    assert Alert.objects.get().values["change_percent"] is None


@DB
def test_a_change_compares_with_the_baseline_runs_best(world, hook):
    baseline = _run(world, "base")
    _log(baseline, {0: 0.8, 1: 0.4, 2: 0.6})
    make_rule(world, hook, "metric_change", _change(against="baseline", baseline_run=baseline.pk))
    run = _run(world)
    _log(run, {0: 0.45})  # within 0.4 + 0.08
    assert _alerts() == []
    _log(run, {1: 0.5})
    assert _alerts() == [
        ("firing", "loss more than 20% above the best of base 0.4 in r (now 0.5 at step 1)")
    ]


@DB
def test_a_baseline_run_of_another_project_is_refused(world):
    other = tracking_services.project_create(
        user=world.outsider.user, team_slug="rival", slug="theirs"
    )
    theirs = tracking_services.run_create(user=world.outsider.user, project=other, name="x")
    body = {
        "project": "acme/mnist",
        "name": "worse than baseline",
        "trigger": "metric_change",
        "params": _change(against="baseline", baseline_run=theirs.pk),
    }
    response = world.owner.client().post("/api/v1/alert-rules", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == "params.baseline_run"
    ours = _run(world, "base")
    body["params"]["baseline_run"] = ours.pk
    assert world.owner.client().post("/api/v1/alert-rules", body, format="json").status_code == 201


@pytest.mark.django_db
def test_an_imported_rule_compares_with_the_imported_copy_of_its_baseline(world, hook, tmp_path):
    from django.core.management import call_command

    baseline = _run(world, "base")
    _log(baseline, {0: 0.4})
    make_rule(world, hook, "metric_change", _change(against="baseline", baseline_run=baseline.pk))
    path = tmp_path / "mnist.jsonl"
    call_command("export_project", "acme/mnist", str(path), stdout=io.StringIO())
    call_command("import_project", str(path), "--team", "rival", stdout=io.StringIO())
    copied = AlertRule.objects.get(project__team__slug="rival")
    copy = Run.objects.get(project__team__slug="rival", name="base")
    assert copy.pk != baseline.pk and copied.params["baseline_run"] == copy.pk


@DB
def test_a_rule_whose_baseline_run_is_gone_decides_nothing_and_can_still_be_disabled(world, hook):
    baseline = _run(world, "base")
    _log(baseline, {0: 0.4})
    rule = make_rule(
        world, hook, "metric_change", _change(against="baseline", baseline_run=baseline.pk)
    )
    Run.objects.filter(pk=baseline.pk).delete()
    _log(_run(world), {0: 9.0})
    assert _alerts() == []
    patched = world.owner.client().patch(
        f"/api/v1/alert-rules/{rule.pk}", {"enabled": False}, format="json"
    )
    assert patched.status_code == 200, patched.content


# --- metric_zscore ---------------------------------------------------------------------------


@DB
def test_a_zscore_fires_after_for_points_outliers_across_batches_and_resolves(world, hook):
    make_rule(world, hook, "metric_zscore", _zscore(for_points=2))
    run = _run(world)
    _log(run, ALTERNATING)
    _log(run, {10: 3.0})  # z = 19 against mean 1.1, std 0.1
    assert _alerts() == []
    _log(run, {11: 3.0})  # z = 2.96: the first outlier is in its window now
    assert _alerts() == [
        (
            "firing",
            "loss z-score +2.96 > 2 against its previous 10 points in r for 2 points"
            " (now 3 at step 11)",
        )
    ]
    assert math.isclose(Alert.objects.get().values["z"], 1.7 / math.sqrt(0.33))
    _log(run, {12: 1.1})
    assert _alerts()[0][0] == AlertState.RESOLVED


@DB
def test_a_single_outlier_does_not_fire_with_for_points_2(world, hook):
    make_rule(world, hook, "metric_zscore", _zscore(for_points=2, direction="both"))
    run = _run(world)
    _log(run, {**ALTERNATING, 10: 3.0, 11: 1.1})
    assert _alerts() == []


@DB
def test_a_window_of_equal_values_makes_no_outlier(world, hook):
    make_rule(world, hook, "metric_zscore", _zscore())
    run = _run(world)
    _log(run, dict.fromkeys(range(10), 1.0))
    _log(run, {10: 5.0})  # deviation 0: not an outlier
    assert _alerts() == []


@DB
def test_a_zscore_leaves_nan_out_of_the_window_and_the_streak(world, hook):
    make_rule(world, hook, "metric_zscore", _zscore(direction="below"))
    run = _run(world)
    _log(run, {**ALTERNATING, 5: None})  # nine finite values in the window: mean 1.1
    _log(run, {10: 0.0})
    ((state, summary),) = _alerts()
    assert state == AlertState.FIRING and summary.startswith("loss z-score -")
    _log(run, {11: None})
    assert _alerts()[0][0] == AlertState.FIRING


# --- Params ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "params", "field"),
    [
        ("metric_window", _window(window_points=1), "params.window_points"),
        ("metric_window", _window(window_points=1001), "params.window_points"),
        ("metric_window", _window(window_seconds=0), "params.window_seconds"),
        ("metric_window", _window(window_seconds=86_401), "params.window_seconds"),
        ("metric_window", _window(), "params.window_points"),  # neither
        ("metric_window", _window(window_points=5, window_seconds=60), "params.window_points"),
        ("metric_window", _window(window_points=5, agg="median"), "params.agg"),
        ("metric_window", _window(window_points=5, for_points=1001), "params.for_points"),
        ("metric_change", _change(percent=0), "params.percent"),
        ("metric_change", _change(percent=10_001), "params.percent"),
        ("metric_change", _change(against="baseline"), "params.baseline_run"),
        ("metric_change", _change(baseline_run=1), "params.baseline_run"),  # against best
        ("metric_change", _change(against="baseline", baseline_run=2**63), "params.baseline_run"),
        ("metric_change", _change(against="baseline", baseline_run=999_999), "params.baseline_run"),
        ("metric_zscore", _zscore(window_points=9), "params.window_points"),
        ("metric_zscore", _zscore(window_points=1001), "params.window_points"),
        ("metric_zscore", _zscore(z=0), "params.z"),
        ("metric_zscore", _zscore(z=101), "params.z"),
        ("metric_zscore", _zscore(direction="sideways"), "params.direction"),
    ],
)
@pytest.mark.django_db
def test_bad_windowed_params_are_refused_naming_the_field(world, trigger, params, field):
    body = {"project": "acme/mnist", "name": "r", "trigger": trigger, "params": params}
    response = world.owner.client().post("/api/v1/alert-rules", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field


@pytest.mark.django_db
def test_windowed_params_are_stored_with_their_defaults(world):
    body = {"project": "acme/mnist", "name": "r", "trigger": "metric_change", "params": _change()}
    response = world.owner.client().post("/api/v1/alert-rules", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["params"] == {
        **_change(),
        "against": "best",
        "baseline_run": None,
        "for_points": 1,
    }


# --- The rule form --------------------------------------------------------------------------

RULES = "/acme/mnist/alerts/rules/"


def _form(trigger: str, **fields: str) -> dict[str, str]:
    posted = {"name": trigger, "trigger": trigger, "group_wait": "0", "enabled": "1"}
    return {**posted, **{f"{trigger}.{name}": value for name, value in fields.items()}}


@pytest.mark.django_db
def test_the_rule_form_offers_each_windowed_trigger_with_starting_values(client, world):
    client.force_login(world.owner.user)
    page = client.get(f"{RULES}new").content.decode()
    for trigger in ("metric_window", "metric_change", "metric_zscore"):
        assert f'<fieldset class="trigger-params" data-trigger="{trigger}">' in page
    assert 'name="metric_window.window_points" value="50" min="2" max="1000"' in page
    assert 'name="metric_window.window_seconds" value="" min="1" max="86400"' in page
    assert 'name="metric_change.percent" value="20"' in page
    assert 'name="metric_zscore.window_points" value="100" min="10" max="1000"' in page
    assert 'name="metric_zscore.z" value="3"' in page


@pytest.mark.django_db
def test_a_windowed_rule_is_made_from_the_form_and_listed_in_words(client, world):
    client.force_login(world.owner.user)
    posted = _form(
        "metric_window",
        key="val/loss",
        agg="max",
        window_points="",
        window_seconds="600",
        op=">=",
        value="0.5",
        for_points="3",
    )
    response = client.post(f"{RULES}new", posted)
    assert response.status_code == 302, response.content.decode()
    rule = AlertRule.objects.get()
    assert rule.params == {
        "key": "val/loss",
        "agg": "max",
        "window_points": None,
        "window_seconds": 600,
        "op": ">=",
        "value": 0.5,
        "for_points": 3,
    }
    listed = client.get(RULES).content.decode()
    assert "Fires when the max of val/loss over 10 min &gt;= 0.5 for 3 points in a row." in listed
    edit = client.get(f"{RULES}{rule.pk}/").content.decode()
    assert 'name="metric_window.window_points" value=""' in edit  # not "None"


@pytest.mark.django_db
def test_a_bad_percent_shows_next_to_its_field(client, world):
    client.force_login(world.owner.user)
    posted = _form("metric_change", key="loss", mode="min", percent="0", against="best")
    page = client.post(f"{RULES}new", {**posted, "metric_change.for_points": "1"})
    assert page.status_code == 400
    text = page.content.decode()
    assert (
        "A number above 0, at most 10,000." in text.split('id="p-metric_change-percent-error"')[1]
    )
    assert not AlertRule.objects.exists()


# --- Cost ------------------------------------------------------------------------------------


def _with_history(world: World, history: int) -> tuple[Run, list[Point]]:
    """A run with ``history`` points stored, and its next batch of 10.

    A multiple of 7 points of history ends the same way, so its alerts stand the same.
    """
    run = _run(world, f"h{history}")
    metrics_ingest(
        run=run, points=[Point("loss", s, 1.0 + (s % 7) / 10, 1.0 + s) for s in range(history)]
    )
    return run, [Point("loss", s, 1.3, 1.0 + s) for s in range(history, history + 10)]


@DB
def test_a_batch_costs_the_same_queries_however_long_the_history(
    world, hook, django_assert_max_num_queries
):
    baseline = _run(world, "base")
    _log(baseline, {0: 1.0})
    make_rule(world, hook, "metric_window", _window(window_points=50, for_points=3))
    make_rule(world, hook, "metric_window", _window(window_seconds=600, for_points=3))
    make_rule(world, hook, "metric_change", _change(for_points=20))
    make_rule(world, hook, "metric_change", _change(against="baseline", baseline_run=baseline.pk))
    make_rule(world, hook, "metric_zscore", _zscore(window_points=100, for_points=3))
    run, batch = _with_history(world, 210)
    with CaptureQueriesContext(connection) as short:
        metrics_ingest(run=run, points=batch)
    assert len(short) <= 40  # the batch, its savepoints, the rules and run, 1 or 2 reads a rule
    run, batch = _with_history(world, 4900)
    with django_assert_max_num_queries(len(short)):
        metrics_ingest(run=run, points=batch)


@DB
def test_fifty_rules_over_ten_keys_cost_a_batch_about_one_query_a_key(world, hook):
    keys = [f"m{i}" for i in range(10)]
    run = _run(world)

    def log(first: int, steps: int) -> int:
        points = [
            Point(key, s, 1.0 + (s * 7 + k) % 11 / 100, 1.0 + s)
            for s in range(first, first + steps)
            for k, key in enumerate(keys)
        ]
        with CaptureQueriesContext(connection) as queries:
            metrics_ingest(run=run, points=points)
        return len(queries)

    log(0, 1200)
    without = (log(1200, 1), log(1201, 100))
    for i, key in enumerate(keys):
        window = {"window_points": 50} if i % 2 else {"window_seconds": 600}
        for trigger, params in [
            ("metric_threshold", {"key": key, "op": ">", "value": 10, "for_points": 3}),
            ("metric_window", _window(key=key, value=10, **window)),
            ("metric_change", _change(key=key, percent=500)),
            ("metric_zscore", _zscore(key=key, window_points=100, z=50)),
            ("metric_nan", {"key": key}),
        ]:
            make_rule(world, hook, trigger, params, name=f"{trigger} {key}")
    assert AlertRule.objects.count() == 50
    log(1301, 1)
    assert log(1302, 1) <= without[0] + len(keys) + 3  # the rules, the run, its open alerts
    assert log(1303, 100) <= without[1] + len(keys) + 3
    assert _alerts() == []


# --- The sliding window's arithmetic ---------------------------------------------------------


def test_the_sliding_window_agrees_with_recomputing_each_window():
    values = [1e9 + (i * 7919 % 101) / 10 for i in range(3000)]
    window = Window()
    for position, value in enumerate(values):
        window.push(position, Seen(position, value, float(position)))
        if len(window) > 100:
            window.pop()
        held = values[max(0, position - 99) : position + 1]
        mean = math.fsum(held) / len(held)
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in held) / len(held))
        assert math.isclose(window.mean(), mean, rel_tol=1e-12)
        assert math.isclose(window.std(), std, rel_tol=1e-6, abs_tol=1e-9)
        assert (window.min(), window.max()) == (min(held), max(held))


def _series(seed: int, length: int) -> list[Seen]:
    """Noisy values with NaN, infinities, runs of equal values; timestamps that never go back."""
    rng = random.Random(seed)
    points, time, value = [], 100.0, 1.0
    for step in range(length):
        time += rng.choice([0.0, 0.5, 1.0, 1.0, 7.0])
        roll = rng.random()
        if roll < 0.05:
            shown: float | None = None
        elif roll < 0.07:
            shown = rng.choice([math.inf, -math.inf])
        elif roll < 0.5:
            shown = value  # the same again: runs of equal values
        else:
            value = rng.gauss(1.0, 0.3) * (1e6 if seed % 3 == 0 else 1)
            shown = value
        points.append(Seen(step, shown, time))
    return points


def _same(lazy: Judge, index: int, verdict: Any) -> bool:
    mine = lazy.verdict(index)
    if mine.figure is None or verdict.figure is None:
        return mine == verdict
    return mine.beyond == verdict.beyond and math.isclose(mine.figure, verdict.figure, rel_tol=1e-9)


def _judges(points: list[Seen], seed: int) -> Iterator[Judge]:
    """Each kind of window, over all the points and over a tail of them, cut off or whole."""
    stretch = Stretch(points)
    for offset in (0, 37):
        for whole in (True, False):
            for agg in ("mean", "min", "max"):
                for window in ({"window_points": 2}, {"window_points": 25}, {"window_seconds": 9}):
                    params = {"agg": agg, "for_points": 1, **window}
                    limit = 1.03 if seed % 3 else 1.03e6
                    beyond = limit.__lt__
                    yield WindowJudge(stretch, offset, params, beyond, whole=whole)
        for direction in ("above", "below", "both"):
            params = {"window_points": 10, "z": 1.3, "direction": direction, "for_points": 1}
            yield ZscoreJudge(stretch, offset, params)


@pytest.mark.parametrize("seed", range(6))
def test_verdicts_worked_out_from_the_end_agree_with_the_slide(seed):
    points = _series(seed, 400)
    for judge in _judges(points, seed):
        slid = judge.slide()
        assert len(slid) == judge.length
        assert all(_same(judge, index, verdict) for index, verdict in enumerate(slid))
        for start in (0, judge.length - 1, judge.length - 30):
            count, latest = streak(slid)
            for enough in (1, 3, 1000):
                trail = judge.trail(start, enough)
                assert trail is not None
                if latest is None or latest < start:
                    assert trail.latest is None
                else:
                    assert (trail.latest, trail.count) == (latest, min(count, enough))
                    assert trail.verdict is not None and trail.verdict.beyond == slid[latest].beyond


def test_a_long_streak_gives_up_within_its_budget_rather_than_going_quadratic():
    points = [Seen(step, 5.0 + step % 3, float(step)) for step in range(3000)]
    judge = WindowJudge(
        Stretch(points), 0, {"agg": "mean", "window_points": 1000}, (2.0).__lt__, whole=True
    )
    assert judge.trail(2000, enough=1000) is None  # a thousand windows of a thousand points
    assert judge.work <= LAZY_WORK_PER_POINT * len(points) + 1000
    assert streak(judge.slide()) == (2001, 2999)


def test_a_time_window_whose_timestamps_go_back_is_slid():
    points = [Seen(step, 1.0, float(10 - step % 4)) for step in range(20)]
    params = {"agg": "max", "window_seconds": 3}
    judge = WindowJudge(Stretch(points), 0, params, (0.5).__lt__, whole=True)
    assert judge.trail(0, enough=1) is None
    assert streak(judge.slide())[1] == 19


# --- End to end: a real server, broker, worker and receiver ---------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    from django.conf import settings

    from tests.workers import celery_worker

    env = {"ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1", "ALERTS_RETRY_BASE_SECONDS": "1"}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    home: Path = tmp_path_factory.mktemp("windowed") / "home"
    with LabbookServer(home, env=env) as running, celery_worker(running):
        yield running


def _fired_message(
    server: LabbookServer, project: str, params: dict[str, Any], trigger: str, points: list
) -> dict[str, Any]:
    """Make a webhook rule, log ``points`` in batches; the first message the receiver got."""
    with Receiver() as receiver, server.client() as client:
        destination = client.post(
            "/api/v1/destinations",
            json={"team": "lab", "kind": "webhook", "name": project, "config": {
                "url": receiver.url("/hook"), "secret": "a-webhook-secret-of-32-characters!"}},
        ).raise_for_status().json()  # fmt: skip
        run_id = server.create_run(f"lab/{project}")
        client.post(
            "/api/v1/alert-rules",
            json={
                "project": f"lab/{project}",
                "name": trigger,
                "trigger": trigger,
                "params": params,
                "destinations": [destination["id"]],
                "group_wait": 0,
            },
        ).raise_for_status()
        for batch in points:
            body = {"points": [{"key": "loss", "step": s, "value": v} for s, v in batch.items()]}
            client.post(f"/api/v1/runs/{run_id}/metrics", json=body).raise_for_status()
        assert wait_until(lambda: receiver.requests, timeout=DELIVERY_TIMEOUT), server.output()
        return json.loads(receiver.requests[0].body)


@pytest.mark.subprocess
def test_a_window_alert_reaches_the_webhook(server):
    message = _fired_message(
        server,
        "window",
        _window(window_points=3, for_points=2),
        "metric_window",
        [{0: 1.0, 1: 1.0, 2: 1.0}, {3: 4.0, 4: 4.0}, {5: 4.0}],
    )
    assert message["event"] == "alert.fired"
    assert message["alert"]["summary"].startswith("mean of loss over 3 points > 2 in ")
    assert message["alert"]["values"]["step"] == 5


@pytest.mark.subprocess
def test_a_change_alert_reaches_the_webhook(server):
    message = _fired_message(
        server,
        "change",
        _change(for_points=2),
        "metric_change",
        [{0: 1.0, 1: 0.5}, {2: 0.7}, {3: 0.7}],
    )
    assert message["alert"]["summary"].startswith("loss more than 20% above its best 0.5 in ")
    assert message["alert"]["values"]["best"] == 0.5


@pytest.mark.subprocess
def test_a_zscore_alert_reaches_the_webhook(server):
    message = _fired_message(server, "zscore", _zscore(), "metric_zscore", [ALTERNATING, {10: 3.0}])
    assert message["alert"]["summary"].startswith(
        "loss z-score +19.00 > 2 against its previous 10 points in "
    )
    assert message["alert"]["values"]["step"] == 10
