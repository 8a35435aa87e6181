"""Triggers evaluated as things happen to runs (deciders of ``tracking.events``).

Every handler runs inside the ingest or update transaction that caused it
(``events.decide_with``): the alert it opens and the notifications it writes
commit together with the points or the status change, so no crash between
the two can lose a decision. A batch
of points costs one query when the project has no metric rules, and the
metric triggers look only at the batch and the per-key summary (plus, for
``for_points`` and ``metric_stagnant``, a handful of indexed rows), never at
the whole history. With rules, a batch costs a few queries (the rules, the
run, its open alerts) and one indexed read a key for the windowed triggers
(``metric_window``, ``metric_change``, ``metric_zscore``): the newest points
stored before the batch, as many as its most demanding rule needs (its window
+ ``for_points``). Their verdicts are worked out from the last point back,
only as far as the decision needs (:mod:`alerts.windowed`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from django.db import connection

from alerts import firing, personal, recent_points
from alerts.models import AlertRule, Trigger
from alerts.triggers import METRIC_TRIGGERS, OPERATORS, duration
from alerts.windowed import (
    ChangeJudge,
    Judge,
    Seen,
    Stretch,
    Trail,
    Verdict,
    WindowJudge,
    ZscoreJudge,
    change_percent,
    streak,
    window_size,
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
    """Whether the rule's run filters (group, every tag) take this run; a personal rule
    (``owner`` set, ``alerts.personal``) takes only its owner's runs."""
    if rule.owner_id is not None and run.created_by_id != rule.owner_id:
        return False
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
    run = _run(run_id, rules)
    return run, [rule for rule in rules if applies(rule, run)]


def _run(run_id: int, rules: list[AlertRule]) -> Run:
    runs = Run.objects.select_related("project__team")
    if any(rule.tags for rule in rules):  # one query for the tags, whatever the number of rules
        runs = runs.prefetch_related("tag_rows")
    return runs.get(pk=run_id)


# --- Status changes ------------------------------------------------------------------------


def on_status_changed(event: events.RunStatusChanged) -> None:
    triggers = (Trigger.RUN_FAILED, Trigger.RUN_FINISHED)
    # A failure first makes its creator's personal rule if they asked (one query if not).
    personal.ensure_failure_rules(event.run_id, event.new)
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
    rules = [
        rule
        for rule in rules_for(event.project_id, METRIC_TRIGGERS)
        if rule.params["key"] in event.series
    ]
    if not rules:
        return
    run = _run(event.run_id, rules)
    evaluation = Evaluation(event, run, [rule for rule in rules if applies(rule, run)])
    for rule in evaluation.rules:
        HANDLERS[rule.trigger](evaluation, rule, rule.params["key"])


@dataclass(frozen=True)
class Batch:
    """One key's points of an ingested batch, in the points' order."""

    series_id: int
    points: list[Seen]
    first: tuple[int, float, int]  # the first point's place: (step, timestamp, seq)
    last: tuple[int, float, int]  # the last one's


Row = tuple[int, float | None, float]  # a stored point's (step, value, timestamp)


class Evaluation:
    """One ingested batch being judged: its run, the run's open alerts, each key's points.

    Made for each batch inside its transaction and dropped with it. The run's
    open alerts are read once: a rule whose alert is not open has nothing to
    resolve, and one whose alert is open has nothing to fire (``firing.fire``
    checks again under the open-fingerprint constraint, so a race still opens
    one alert). The points stored before the batch are read once a key, as
    many as the most demanding of its rules needs; each rule takes its tail.
    """

    def __init__(self, event: events.PointsIngested, run: Run, rules: list[AlertRule]) -> None:
        self.event, self.run, self.rules = event, run, rules
        self.open = firing.open_fingerprints(run)
        self.reach: dict[str, int] = {}  # key -> the most stored points one of its rules needs
        for rule in rules:
            if rule.trigger in REACH:
                key = rule.params["key"]
                self.reach[key] = max(self.reach.get(key, 0), REACH[rule.trigger](rule.params))
        self._batches: dict[str, Batch] = {}
        self._stored: dict[str, list[Row]] = {}
        self._stretches: dict[str, Stretch] = {}
        self._baselines: dict[tuple[int, str], Mapping[str, Any]] | None = None
        self._best_steps: dict[tuple[str, str], int | None] = {}

    def is_open(self, rule: AlertRule) -> bool:
        return firing.fingerprint(rule, self.run) in self.open

    def fire(self, rule: AlertRule, summary: str, values: dict[str, Any]) -> None:
        if self.is_open(rule):
            return
        if firing.fire(rule=rule, run=self.run, summary=summary, values=values) is not None:
            self.open.add(firing.fingerprint(rule, self.run))  # a later point may resolve it

    def resolve(self, rule: AlertRule, values: dict[str, Any]) -> None:
        if self.is_open(rule):
            firing.resolve(rule=rule, run=self.run, values=values)
            self.open.discard(firing.fingerprint(rule, self.run))

    def summary(self, key: str) -> Mapping[str, Any]:
        """The key's series after the batch: count, first and last step, min and max."""
        return self.event.series[key]

    def batch(self, key: str) -> Batch:
        if not self._batches:  # every key's points in one pass over the batch
            self._batches = _batches(self.event)
        return self._batches[key]

    def stored_before(self, rule: AlertRule) -> tuple[list[Seen], bool]:
        """The newest points the rule reads before the batch, oldest first; and whether that is all.

        One query a key, whichever of its rules asks first.
        """
        rows, whole = self._rows_before(rule)
        return [Seen(*row) for row in rows], whole

    def tail(self, rule: AlertRule) -> tuple[Stretch, int, bool]:
        """The key's stretch, where the rule's points start in it, and whether that is the first."""
        key = rule.params["key"]
        rows, whole = self._rows_before(rule)
        if key not in self._stretches:
            self._stretches[key] = Stretch([*self._stored[key], *self.batch(key).points])
        return self._stretches[key], len(self._stored[key]) - len(rows), whole

    def _rows_before(self, rule: AlertRule) -> tuple[list[Row], bool]:
        key, limit = rule.params["key"], REACH[rule.trigger](rule.params)
        if key not in self._stored:
            self._stored[key] = _recent_before(self.batch(key), self.reach[key], self.summary(key))
        stored = self._stored[key]
        return stored[-limit:], len(stored) < limit

    def baseline(self, run_id: int, key: str) -> Mapping[str, Any] | None:
        """A baseline run's series (``min_value``, ``max_value``, ``run__name``), if it has one.

        Read at the first rule that asks, for every baseline rule at once: one query.
        """
        if self._baselines is None:
            self._baselines = _baselines(self.rules)
        return self._baselines.get((run_id, key))

    def best_step(self, key: str, mode: str) -> int | None:
        """The first step holding the series' best value, from its top-level rollup cells."""
        if (key, mode) not in self._best_steps:
            cells = MetricRollup.objects.filter(
                series_id=self.batch(key).series_id, level=ROLLUP_LEVELS
            )
            if mode == "min":
                cell = cells.exclude(min_value=None).order_by("min_value", "min_step").first()
                step = None if cell is None else cell.min_step
            else:
                cell = cells.exclude(max_value=None).order_by("-max_value", "max_step").first()
                step = None if cell is None else cell.max_step
            self._best_steps[key, mode] = step
        return self._best_steps[key, mode]


def _baselines(rules: list[AlertRule]) -> dict[tuple[int, str], Mapping[str, Any]]:
    wanted = {
        (rule.params["baseline_run"], rule.params["key"])
        for rule in rules
        if rule.trigger == Trigger.METRIC_CHANGE and rule.params["against"] == "baseline"
    }
    rows = MetricSeries.objects.filter(
        run_id__in={run for run, _key in wanted}, key__in={key for _run, key in wanted}
    ).values("run_id", "key", "min_value", "max_value", "run__name")
    return {
        (row["run_id"], row["key"]): row for row in rows if (row["run_id"], row["key"]) in wanted
    }


def _batches(event: events.PointsIngested) -> dict[str, Batch]:
    grouped: dict[int, list[Any]] = {}
    for series_id, point in event.rows:  # sorted by place already
        grouped.setdefault(series_id, []).append(point)
    return {
        event.keys[series_id]: Batch(
            series_id,
            [Seen(point.step, point.value, point.timestamp) for point in rows],
            (rows[0].step, rows[0].timestamp, rows[0].seq),
            (rows[-1].step, rows[-1].timestamp, rows[-1].seq),
        )
        for series_id, rows in grouped.items()
    }


# The newest points of a series before a place, latest first, along the primary key.
NEWEST_BEFORE = (
    f'SELECT step, value, "timestamp" FROM {MetricPoint._meta.db_table}'  # noqa: S608 - constants
    ' WHERE series_id = %s AND step <= %s AND (step, "timestamp", seq) < (%s, %s, %s)'
    ' ORDER BY step DESC, "timestamp" DESC, seq DESC LIMIT %s'
)


def _recent_before(batch: Batch, limit: int, summary: Mapping[str, Any]) -> list[Row]:
    """:func:`_stored_before`, from what this process kept of the series when it is right
    (``alerts.recent_points``); what it keeps then takes the batch along."""
    count = summary["count"]
    rows = recent_points.before(
        batch.series_id,
        first=batch.first,
        count_before=count - len(batch.points),
        limit=limit,
        read=lambda wanted: _stored_before(batch, wanted),
    )
    if (summary["last_step"], summary["last_timestamp"]) != batch.last[:2]:
        recent_points.drop(batch.series_id)  # points came after the batch's: not the newest
        return rows
    judged = [(point.step, point.value, point.timestamp) for point in batch.points]
    recent_points.keep(
        batch.series_id, rows=rows, batch=judged, count=count, last=batch.last, limit=limit
    )
    return rows


def _stored_before(batch: Batch, limit: int) -> list[Row]:
    """The newest ``limit`` points stored before the batch, oldest first.

    One query along the primary key, whatever the length of the history: the
    batch is already stored (this runs inside its transaction), so the read
    stops at the batch's first point. Plain SQL: a rule-heavy project pays
    this on every batch, and the rows are used as the database gives them.
    """
    step, stamp, seq = batch.first
    with connection.cursor() as cursor:
        # ``step <=`` is a range of the index; the tuple then leaves out the batch
        cursor.execute(NEWEST_BEFORE, [batch.series_id, step, step, stamp, seq, limit])
        rows: list[Row] = cursor.fetchall()
    rows.reverse()
    return rows


def _finite(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)


def _metric_nan(evaluation: Evaluation, rule: AlertRule, key: str) -> None:
    points = evaluation.batch(key).points
    bad = next((point for point in points if not _finite(point.value)), None)
    if bad is not None:
        shown = "NaN" if bad.value is None or math.isnan(bad.value) else str(bad.value)
        evaluation.fire(
            rule,
            f"{key} is {shown} at step {bad.step} in {evaluation.run.name}",
            {"key": key, "step": bad.step, "value": shown},
        )
    elif points and _finite(points[-1].value):
        evaluation.resolve(rule, {"step": points[-1].step})


def _threshold(evaluation: Evaluation, rule: AlertRule, key: str) -> None:
    params = rule.params
    beyond = OPERATORS[params["op"]]
    needed = params.get("for_points", 1)
    points = evaluation.batch(key).points
    streak = 0
    for _step, value, _time in reversed(points):
        if not (_finite(value) and beyond(value, params["value"])):
            break
        streak += 1
    if streak == len(points) and streak < needed:
        series_id = evaluation.batch(key).series_id
        streak += _earlier_streak(series_id, points[0].step, needed - streak, params)
    last_step, last_value, _time = points[-1]
    head = f"{key} {params['op']} {params['value']:g} in {evaluation.run.name}"
    if streak >= needed:
        evaluation.fire(
            rule,
            head
            + (f" for {streak} points" if needed > 1 else "")
            + f" (now {last_value:.4g} at step {last_step})",
            {"key": key, "value": last_value, "step": last_step, "points": streak},
        )
        return
    if not evaluation.is_open(rule):
        spike = _inner_run(evaluation, rule, key, needed)
        if spike is not None:  # beyond for long enough inside the batch, and back since
            step, value, _time = spike
            evaluation.fire(
                rule,
                head
                + (f" for {needed} points" if needed > 1 else "")
                + f" ({value:.4g} at step {step})",
                {"key": key, "value": value, "step": step, "points": needed},
            )
    if streak == 0:
        evaluation.resolve(rule, {"value": last_value, "step": last_step})


def _inner_run(evaluation: Evaluation, rule: AlertRule, key: str, needed: int) -> Seen | None:
    """The first point of the batch ending ``needed`` points in a row beyond the threshold
    (the run may start before the batch), or None.

    A batch holds many steps (the SDK sends about one a second): a spike that
    came and went between two batches must still fire, and then resolve.
    """
    params = rule.params
    beyond = OPERATORS[params["op"]]
    points = evaluation.batch(key).points
    run = 0
    first = points[0].value
    if needed > 1 and _finite(first) and beyond(first, params["value"]):
        series_id = evaluation.batch(key).series_id
        run = _earlier_streak(series_id, points[0].step, needed - 1, params)
    for point in points:
        run = run + 1 if _finite(point.value) and beyond(point.value, params["value"]) else 0
        if run >= needed:
            return point
    return None


def _earlier_streak(series_id: int, before: int, most: int, params: dict[str, Any]) -> int:
    """How many of the points just before ``before`` were beyond the threshold too."""
    earlier = (
        MetricPoint.objects.filter(series_id=series_id, step__lt=before)
        .order_by("-step", "-timestamp", "-seq")  # latest first, in the points' one order
        .values_list("value", flat=True)[:most]
    )
    streak = 0
    for value in earlier:
        if not (_finite(value) and OPERATORS[params["op"]](value, params["value"])):
            break
        streak += 1
    return streak


def _stagnant(evaluation: Evaluation, rule: AlertRule, key: str) -> None:
    """Fires when the best value is ``patience_steps`` behind the last step."""
    params = rule.params
    summary = evaluation.summary(key)
    last_step = summary["last_step"]
    if (
        not evaluation.is_open(rule)
        and last_step - summary["first_step"] < params["patience_steps"]
    ):
        return  # the best is no older than the first step: nothing to fire, nothing open
    best_step = evaluation.best_step(key, params["mode"])
    if best_step is None:
        return
    if last_step - best_step >= params["patience_steps"]:
        best = summary["min_value"] if params["mode"] == "min" else summary["max_value"]
        evaluation.fire(
            rule,
            f"{key} has not improved on {best:.4g} (step {best_step}) for"
            f" {last_step - best_step} steps in {evaluation.run.name}",
            {"key": key, "best": best, "best_step": best_step, "step": last_step},
        )
    else:
        evaluation.resolve(rule, {"best_step": best_step})


# --- Windowed triggers: metric_window, metric_change and metric_zscore ----------------------


@dataclass(frozen=True)
class Wording:
    """How a windowed alert reads: what is beyond (``head``), and its number now (``now``)."""

    head: str
    now: str
    values: dict[str, Any]


def _decide(
    evaluation: Evaluation,
    rule: AlertRule,
    key: str,
    judge: Judge,
    words: Callable[[Seen, Verdict], Wording],
) -> None:
    """Fire or resolve like ``metric_threshold``, on the verdicts of the batch's points.

    Fires when the last ``for_points`` deciding points are beyond; resolves
    when the latest one is not; a batch that decides nothing changes nothing.
    Only the verdicts from the last point back to where that is known are
    worked out: the latest deciding one when the alert is open (more points
    beyond change nothing then), up to ``for_points`` of them otherwise.
    Firing counts the whole streak for its summary, over every verdict.
    """
    needed = rule.params["for_points"]
    start = judge.length - len(evaluation.batch(key).points)  # the batch's first point
    opened = evaluation.is_open(rule)
    trail = judge.trail(start, enough=1 if opened else needed)
    if trail is None or (trail.count >= needed and not opened):  # past the budget, or firing
        verdicts = judge.slide()
        count, latest = streak(verdicts)
        trail = Trail(count, latest, None if latest is None else verdicts[latest])
    if trail.latest is None or trail.latest < start:
        return
    point, verdict, count = judge.point(trail.latest), trail.verdict, trail.count
    assert verdict is not None  # the latest deciding point's
    wording = words(point, verdict)
    values = {"key": key, "step": point.step, "value": point.value, **wording.values}
    if count >= needed:
        evaluation.fire(
            rule,
            f"{wording.head} in {evaluation.run.name}"
            + (f" for {count} points" if needed > 1 else "")
            + f" ({wording.now} at step {point.step})",
            {**values, "points": count},
        )
        return
    spike = None if opened else judge.inner_run(start, needed)
    if spike is not None:  # beyond for long enough inside the batch, and back since
        at, decided = spike
        inner = judge.point(at)
        said = words(inner, decided)
        evaluation.fire(
            rule,
            f"{said.head} in {evaluation.run.name}"
            + (f" for {needed} points" if needed > 1 else "")
            + f" ({said.now} at step {inner.step})",
            {"key": key, "step": inner.step, "value": inner.value, **said.values, "points": needed},
        )
    if count == 0:
        evaluation.resolve(rule, values)


def _window(evaluation: Evaluation, rule: AlertRule, key: str) -> None:
    params = rule.params
    stretch, offset, whole = evaluation.tail(rule)
    op, threshold = params["op"], params["value"]
    judge = WindowJudge(
        stretch, offset, params, lambda figure: OPERATORS[op](figure, threshold), whole=whole
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

    _decide(evaluation, rule, key, judge, words)


def _change(evaluation: Evaluation, rule: AlertRule, key: str) -> None:
    """Against the run's own best so far (its summary), or a baseline run's best."""
    params = rule.params
    best, whose = _best_of(evaluation, params, key)
    if best is None:
        return
    points = evaluation.batch(key).points
    judge = ChangeJudge(points, params, best)
    if not evaluation.is_open(rule):  # open: a streak going on changes nothing
        trail = judge.trail(0, enough=params["for_points"])
        if trail is not None and 0 < trail.count < params["for_points"] and trail.through:
            earlier, _whole = evaluation.stored_before(rule)  # the streak may go on before
            judge = ChangeJudge(earlier + points, params, best)
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

    _decide(evaluation, rule, key, judge, words)


def _best_of(
    evaluation: Evaluation, params: Mapping[str, Any], key: str
) -> tuple[float | None, str]:
    """The best value to compare with, and whose it is; None when there is no finite one."""
    column = "min_value" if params["mode"] == "min" else "max_value"
    if params["against"] == "best":
        best, whose = evaluation.summary(key).get(column), "its best"
    else:
        row = evaluation.baseline(params["baseline_run"], key)
        best, whose = (
            (None, "") if row is None else (row[column], f"the best of {row['run__name']}")
        )
    return (best, whose) if _finite(best) else (None, "")


def _zscore(evaluation: Evaluation, rule: AlertRule, key: str) -> None:
    params = rule.params
    stretch, offset, _whole = evaluation.tail(rule)
    judge = ZscoreJudge(stretch, offset, params)
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

    _decide(evaluation, rule, key, judge, words)


# How many points stored before a batch each windowed trigger reads: its window, and enough
# more to tell whether the last ``for_points`` were beyond (metric_change: only those).
REACH: dict[str, Callable[[dict[str, Any]], int]] = {
    Trigger.METRIC_WINDOW: lambda params: window_size(params) + params["for_points"],
    Trigger.METRIC_CHANGE: lambda params: params["for_points"],
    Trigger.METRIC_ZSCORE: lambda params: params["window_points"] + params["for_points"],
}

HANDLERS: dict[str, Callable[[Evaluation, AlertRule, str], None]] = {
    Trigger.METRIC_NAN: _metric_nan,
    Trigger.METRIC_THRESHOLD: _threshold,
    Trigger.METRIC_STAGNANT: _stagnant,
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
