"""Triggers evaluated as things happen to runs (deciders of ``tracking.events``).

Every handler runs inside the ingest or update transaction that caused it
(``events.decide_with``): the alert it opens and the notifications it writes
commit together with the points or the status change, so no crash between
the two can lose a decision. A batch
of points costs one query when the project has no metric rules, and the
metric triggers look only at the batch and the per-key summary (plus, for
``for_points`` and ``metric_stagnant``, a handful of indexed rows), never at
the whole history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from alerts import firing
from alerts.models import AlertRule, Trigger
from alerts.triggers import METRIC_TRIGGERS, OPERATORS
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
