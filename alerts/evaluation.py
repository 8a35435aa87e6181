"""Triggers evaluated as things happen to runs (deciders of ``tracking.events``).

Every handler runs inside the ingest or update transaction that caused it
(``events.decide_with``): the alert it opens and the notifications it writes
commit together with the points or the status change, so no crash between
the two can lose a decision. A batch
of points costs one query when the project has no metric rules, and the
metric triggers look only at the batch and the per-key summary (plus, for
``for_points`` and ``metric_stagnant``, a handful of indexed rows), never at
the whole history. The windowed triggers (``metric_window``, ``metric_change``,
``metric_zscore``) read the newest window + ``for_points`` points stored before
the batch in one indexed query per rule, and compute in one pass
(:mod:`alerts.windowed`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from alerts import firing
from alerts.models import AlertRule, Trigger
from alerts.triggers import METRIC_TRIGGERS, OPERATORS, duration
from alerts.windowed import (
    Seen,
    Verdict,
    change_percent,
    change_verdicts,
    streak,
    window_size,
    window_verdicts,
    zscore_verdicts,
)
from tracking import events
from tracking.models import MetricPoint, MetricRollup, MetricSeries, Run, RunStatus, SdkAlert
from tracking.rollups import ROLLUP_LEVELS


def connect() -> None:
    events.decide_with(events.RunStatusChanged, on_status_changed)
    events.decide_with(events.PointsIngested, on_points)
    events.decide_with(events.SdkAlertRaised, on_sdk_alert)


def rules_for(project_id: int, triggers: tuple[str, ...]) -> list[AlertRule]:
    return list(AlertRule.objects.filter(project_id=project_id, trigger__in=triggers, enabled=True))


def applies(rule: AlertRule, run: Run) -> bool:
    """Whether the rule's run filters (group, every tag) take this run."""
    if rule.group and run.group != rule.group:
        return False
    if rule.tags:
        tags = {tag.name for tag in run.tag_rows.all()}
        return set(rule.tags) <= tags
    return True


def _matching(
    project_id: int, run_id: int, triggers: tuple[str, ...]
) -> tuple[Run, list[AlertRule]] | None:
    """The run and the rules that take it; None when the project has no such rule."""
    rules = rules_for(project_id, triggers)
    if not rules:
        return None
    runs = Run.objects.select_related("project__team")
    if any(rule.tags for rule in rules):  # one query for the tags, whatever the number of rules
        runs = runs.prefetch_related("tag_rows")
    run = runs.get(pk=run_id)
    return run, [rule for rule in rules if applies(rule, run)]


# --- Status changes ------------------------------------------------------------------------


def on_status_changed(event: events.RunStatusChanged) -> None:
    triggers = (Trigger.RUN_FAILED, Trigger.RUN_FINISHED)
    matched = _matching(event.project_id, event.run_id, triggers)
    if matched is None:
        return
    run, rules = matched
    for rule in rules:
        if rule.trigger == Trigger.RUN_FAILED:
            _run_failed(rule, run, event)
        elif event.new == RunStatus.FINISHED:
            firing.fire(rule=rule, run=run, summary=f"{run.name} finished", values=_ended(run))


def _run_failed(rule: AlertRule, run: Run, event: events.RunStatusChanged) -> None:
    if event.new in rule.params.get("statuses", []):
        summary = f"{run.name} {event.new}" + (f": {run.error}" if run.error else "")
        firing.fire(rule=rule, run=run, summary=summary, values=_ended(run))
    elif event.new == RunStatus.RUNNING:  # a crashed run reported again
        firing.resolve(rule=rule, run=run, values={"status": event.new})


def _ended(run: Run) -> dict[str, Any]:
    return {"status": run.status, "exit_code": run.exit_code, "error": run.error}


# --- Points ----------------------------------------------------------------------------------


def on_points(event: events.PointsIngested) -> None:
    matched = _matching(event.project_id, event.run_id, METRIC_TRIGGERS)
    if matched is None:
        return
    run, rules = matched
    for rule in rules:
        key = rule.params["key"]
        if key not in event.series:
            continue
        if rule.trigger in WINDOWED:
            WINDOWED[rule.trigger](rule, run, key, _batch(event, key), event.series[key])
            continue
        points = [(step, value) for k, step, value, _t in event.points() if k == key]
        summary = event.series[key]
        if rule.trigger == Trigger.METRIC_NAN:
            _metric_nan(rule, run, key, points)
        elif rule.trigger == Trigger.METRIC_THRESHOLD:
            _threshold(rule, run, key, points, summary)
        else:
            _stagnant(rule, run, key, summary)


def _finite(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)


def _metric_nan(
    rule: AlertRule, run: Run, key: str, points: list[tuple[int, float | None]]
) -> None:
    bad = next(((step, value) for step, value in points if not _finite(value)), None)
    if bad is not None:
        shown = "NaN" if bad[1] is None or math.isnan(bad[1]) else str(bad[1])
        firing.fire(
            rule=rule,
            run=run,
            summary=f"{key} is {shown} at step {bad[0]} in {run.name}",
            values={"key": key, "step": bad[0], "value": shown},
        )
    elif points and _finite(points[-1][1]):
        firing.resolve(rule=rule, run=run, values={"step": points[-1][0]})


def _threshold(
    rule: AlertRule,
    run: Run,
    key: str,
    points: list[tuple[int, float | None]],
    summary: Mapping[str, Any],
) -> None:
    params = rule.params
    beyond = OPERATORS[params["op"]]
    needed = params.get("for_points", 1)
    streak = 0
    for _step, value in reversed(points):
        if not (_finite(value) and beyond(value, params["value"])):
            break
        streak += 1
    if streak == len(points) and streak < needed:
        streak += _earlier_streak(run, key, points[0][0], needed - streak, params)
    last_step, last_value = points[-1]
    if streak >= needed:
        firing.fire(
            rule=rule,
            run=run,
            summary=f"{key} {params['op']} {params['value']:g} in {run.name}"
            + (f" for {streak} points" if needed > 1 else "")
            + f" (now {last_value:.4g} at step {last_step})",
            values={"key": key, "value": last_value, "step": last_step, "points": streak},
        )
    elif streak == 0:
        firing.resolve(rule=rule, run=run, values={"value": last_value, "step": last_step})


def _earlier_streak(run: Run, key: str, before: int, most: int, params: dict[str, Any]) -> int:
    """How many of the points just before ``before`` were beyond the threshold too."""
    earlier = (
        MetricPoint.objects.filter(series__run=run, series__key=key, step__lt=before)
        .order_by("-step", "-timestamp", "-seq")  # latest first, in the points' one order
        .values_list("value", flat=True)[:most]
    )
    streak = 0
    for value in earlier:
        if not (_finite(value) and OPERATORS[params["op"]](value, params["value"])):
            break
        streak += 1
    return streak


def _stagnant(rule: AlertRule, run: Run, key: str, summary: Mapping[str, Any]) -> None:
    """Fires when the best value is ``patience_steps`` behind the last step."""
    params = rule.params
    best_step = _best_step(run, key, params["mode"])
    if best_step is None:
        return
    last_step = summary["last_step"]
    if last_step - best_step >= params["patience_steps"]:
        best = summary["min_value"] if params["mode"] == "min" else summary["max_value"]
        firing.fire(
            rule=rule,
            run=run,
            summary=f"{key} has not improved on {best:.4g} (step {best_step}) for"
            f" {last_step - best_step} steps in {run.name}",
            values={"key": key, "best": best, "best_step": best_step, "step": last_step},
        )
    else:
        firing.resolve(rule=rule, run=run, values={"best_step": best_step})


def _best_step(run: Run, key: str, mode: str) -> int | None:
    """The first step holding the series' best value, from its top-level rollup cells."""
    series = MetricSeries.objects.filter(run=run, key=key).values_list("pk", flat=True).first()
    if series is None:
        return None
    cells = MetricRollup.objects.filter(series_id=series, level=ROLLUP_LEVELS)
    if mode == "min":
        cell = cells.exclude(min_value=None).order_by("min_value", "min_step").first()
        return None if cell is None else cell.min_step
    cell = cells.exclude(max_value=None).order_by("-max_value", "max_step").first()
    return None if cell is None else cell.max_step


# --- Windowed triggers: metric_window, metric_change, metric_zscore ------------------------


@dataclass(frozen=True)
class Batch:
    """One key's points of an ingested batch, in the points' order."""

    series_id: int
    points: list[Seen]
    first: tuple[int, float, int]  # the first point's place: (step, timestamp, seq)


def _batch(event: events.PointsIngested, key: str) -> Batch:
    series_id = next(sid for sid, name in event.keys.items() if name == key)
    rows = [point for sid, point in event.rows if sid == series_id]  # sorted by place already
    return Batch(
        series_id,
        [Seen(point.step, point.value, point.timestamp) for point in rows],
        (rows[0].step, rows[0].timestamp, rows[0].seq),
    )


def _stored_before(batch: Batch, limit: int) -> tuple[list[Seen], bool]:
    """The newest ``limit`` points stored before the batch, oldest first; and whether that is all.

    One query along the primary key, whatever the length of the history: the
    batch is already stored (this runs inside its transaction), so the read
    stops at the batch's first point.
    """
    step, stamp, seq = batch.first
    rows = list(
        MetricPoint.objects.filter(
            series_id=batch.series_id,
            step__lte=step,  # a range of the index; the tuple then leaves out the batch
            pk__lt=(batch.series_id, step, stamp, seq),
        )
        .order_by("-step", "-timestamp", "-seq")  # latest first, in the points' one order
        .values_list("step", "value", "timestamp")[:limit]
    )
    return [Seen(*row) for row in reversed(rows)], len(rows) < limit


@dataclass(frozen=True)
class Wording:
    """How a windowed alert reads: what is beyond (``head``), and its number now (``now``)."""

    head: str
    now: str
    values: dict[str, Any]


def _decide(
    rule: AlertRule,
    run: Run,
    key: str,
    points: Sequence[Seen],
    verdicts: Sequence[Verdict],
    start: int,
    words: Callable[[Seen, Verdict], Wording],
) -> None:
    """Fire or resolve like ``metric_threshold``, on the verdicts of ``points[start:]`` (the batch).

    Fires when the last ``for_points`` deciding points are beyond; resolves
    when the latest one is not; a batch that decides nothing changes nothing.
    """
    count, latest = streak(verdicts)
    if latest is None or latest < start:
        return
    point, verdict = points[latest], verdicts[latest]
    needed = rule.params["for_points"]
    wording = words(point, verdict)
    values = {"key": key, "step": point.step, "value": point.value, **wording.values}
    if count >= needed:
        firing.fire(
            rule=rule,
            run=run,
            summary=f"{wording.head} in {run.name}"
            + (f" for {count} points" if needed > 1 else "")
            + f" ({wording.now} at step {point.step})",
            values={**values, "points": count},
        )
    elif count == 0:
        firing.resolve(rule=rule, run=run, values=values)


def _window(rule: AlertRule, run: Run, key: str, batch: Batch, summary: Mapping[str, Any]) -> None:
    params = rule.params
    earlier, whole = _stored_before(batch, window_size(params) + params["for_points"])
    points = earlier + batch.points
    op, threshold = params["op"], params["value"]
    verdicts = window_verdicts(
        points, params, lambda figure: OPERATORS[op](figure, threshold), whole=whole
    )
    agg = params["agg"]
    seconds = params.get("window_seconds")
    span = duration(seconds) if seconds else f"{params['window_points']} points"

    def words(point: Seen, verdict: Verdict) -> Wording:
        return Wording(
            head=f"{agg} of {key} over {span} {op} {threshold:g}",
            now=f"{agg} {verdict.figure:.4g}",
            values={"agg": agg, "aggregate": verdict.figure},
        )

    _decide(rule, run, key, points, verdicts, len(earlier), words)


def _change(rule: AlertRule, run: Run, key: str, batch: Batch, summary: Mapping[str, Any]) -> None:
    """Against the run's own best so far (its summary), or a baseline run's best."""
    params = rule.params
    best, whose = _best_of(params, key, summary)
    if best is None:
        return
    verdicts = change_verdicts(batch.points, params, best)
    earlier: list[Seen] = []
    count, _latest = streak(verdicts)
    if 0 < count < params["for_points"] and all(v.beyond is not False for v in verdicts):
        earlier, _whole = _stored_before(batch, params["for_points"])  # the streak may go on
        verdicts = change_verdicts(earlier, params, best) + verdicts
    worse = "above" if params["mode"] == "min" else "below"

    def words(point: Seen, verdict: Verdict) -> Wording:
        assert point.value is not None  # a point that decides is finite
        return Wording(
            head=f"{key} more than {params['percent']:g}% {worse} {whose} {best:.4g}",
            now=f"now {point.value:.4g}",
            values={
                "best": best,
                "against": params["against"],
                "baseline_run": params.get("baseline_run"),
                "change_percent": change_percent(point.value, best),
            },
        )

    _decide(rule, run, key, earlier + batch.points, verdicts, len(earlier), words)


def _best_of(
    params: Mapping[str, Any], key: str, summary: Mapping[str, Any]
) -> tuple[float | None, str]:
    """The best value to compare with, and whose it is; None when there is no finite one."""
    column = "min_value" if params["mode"] == "min" else "max_value"
    if params["against"] == "best":
        best, whose = summary.get(column), "its best"
    else:
        row = (
            MetricSeries.objects.filter(run_id=params["baseline_run"], key=key)
            .values_list(column, "run__name")
            .first()
        )
        best, whose = (None, "") if row is None else (row[0], f"the best of {row[1]}")
    return (best, whose) if _finite(best) else (None, "")


def _zscore(rule: AlertRule, run: Run, key: str, batch: Batch, summary: Mapping[str, Any]) -> None:
    params = rule.params
    earlier, _whole = _stored_before(batch, params["window_points"] + params["for_points"])
    points = earlier + batch.points
    verdicts = zscore_verdicts(points, params)
    limit, size = params["z"], params["window_points"]
    beyond = {"above": f"> {limit:g}", "below": f"< -{limit:g}"}.get(
        params["direction"], f"beyond ±{limit:g}"
    )

    def words(point: Seen, verdict: Verdict) -> Wording:
        return Wording(
            head=f"{key} z-score {verdict.figure:+.2f} {beyond} against its previous {size} points",
            now=f"now {point.value:.4g}",
            values={"z": verdict.figure, "window_points": size},
        )

    _decide(rule, run, key, points, verdicts, len(earlier), words)


WINDOWED: dict[str, Callable[[AlertRule, Run, str, Batch, Mapping[str, Any]], None]] = {
    Trigger.METRIC_WINDOW: _window,
    Trigger.METRIC_CHANGE: _change,
    Trigger.METRIC_ZSCORE: _zscore,
}


# --- Alerts from training code ---------------------------------------------------------------


def on_sdk_alert(event: events.SdkAlertRaised) -> None:
    matched = _matching(event.project_id, event.run_id, (Trigger.SDK_ALERT,))
    if matched is None or not matched[1]:
        return
    run, rules = matched
    raised = SdkAlert.objects.get(pk=event.alert_id)
    for rule in rules:
        if raised.level in rule.params.get("levels", []):
            firing.fire(
                rule=rule,
                run=run,
                condition=f"sdk:{raised.pk}",
                summary=f"{raised.title} ({run.name})",
                values={"title": raised.title, "text": raised.text, "level": raised.level},
            )
