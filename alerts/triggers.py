"""Each trigger's parameters, defined once: checked when a rule is saved, shown by its form.

run_failed        {"statuses": ["failed", "crashed", "killed"]}   (default: all three)
run_stalled       {"after_seconds": 600}                          (60 .. 7 days)
run_no_progress   {"after_seconds": 900, "key": ""}               (60 .. 7 days; "": any metric)
metric_threshold  {"key", "op": ">"|">="|"<"|"<=", "value", "for_points": 1}
metric_nan        {"key"}
metric_stagnant   {"key", "mode": "min"|"max", "patience_steps"}
metric_window     {"key", "agg": "mean"|"min"|"max", "window_points" | "window_seconds", "op",
                   "value", "for_points": 1}                     (exactly one of the windows)
metric_change     {"key", "mode": "min"|"max", "percent", "against": "best"|"baseline",
                   "baseline_run": null, "for_points": 1}        (a run of the same project)
metric_zscore     {"key", "window_points", "z", "direction": "above"|"below"|"both",
                   "for_points": 1}
run_finished      {}
sdk_alert         {"levels": ["info", "warn", "error"]}            (default: all)
run_expected      {"cron": "0 2 * * *", "timezone": "UTC", "grace_seconds": 3600}

:data:`TRIGGERS` is the one definition: :func:`clean_params` (the REST API, the
rule form and project imports all save through it), the rule form's fieldsets,
their bounds and the sentence saying when a rule fires (:func:`describe`, on the
rules list, the rule page and the alert page) read it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from alerts import expected
from alerts.models import Trigger
from alerts.windowed import MAX_WINDOW_POINTS
from kernel.errors import invalid
from kernel.ids import is_id
from tracking.models import FAILED_STATUSES, AlertLevel, Run, RunStatus
from tracking.validation import clean_metric_key

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
METRIC_TRIGGERS = (
    Trigger.METRIC_THRESHOLD,
    Trigger.METRIC_NAN,
    Trigger.METRIC_STAGNANT,
    Trigger.METRIC_WINDOW,
    Trigger.METRIC_CHANGE,
    Trigger.METRIC_ZSCORE,
)
REQUIRED = object()  # a parameter with no default


@dataclass(frozen=True)
class Param:
    """One parameter: its kind, bounds or choices, its default and the form's starting value."""

    name: str
    # "positive": a finite number above 0, at most ``high``; "run": a run's id.
    # A default of None makes the parameter optional: null or left out is None.
    kind: Literal[
        "int", "number", "positive", "run", "key", "choice", "choices", "cron", "timezone"
    ]
    default: Any = REQUIRED
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()
    message: str = ""  # a choice's error, when the list of choices does not say it
    form_value: Any = ""  # what a new rule's form shows (a required value has no default)

    def clean(self, params: dict[str, Any]) -> Any:
        field = f"params.{self.name}"
        value = params.get(self.name, None if self.default is REQUIRED else self.default)
        if value is None and self.default is None:
            return None
        if self.kind == "key":
            if value in (None, "") and self.default == "":  # an optional key: "" is "any"
                return ""
            return clean_metric_key(value, field=field)
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise invalid(field, f"A whole number from {self.low} to {self.high}.")
            if not self.low <= value <= self.high:
                raise invalid(field, f"A whole number from {self.low} to {self.high}.")
            return value
        if self.kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid(field, "A finite number.")
            if not math.isfinite(value):
                raise invalid(field, "A finite number.")
            return value
        if self.kind == "positive":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid(field, f"A number above 0, at most {self.high:,}.")
            if not 0 < value <= self.high:  # NaN fails too; infinity is above high
                raise invalid(field, f"A number above 0, at most {self.high:,}.")
            return value
        if self.kind == "run":
            if isinstance(value, bool) or not isinstance(value, int) or not is_id(value):
                raise invalid(field, "A run id (a whole number).")
            return value
        if self.kind == "cron":
            return expected.clean_cron(value, field)
        if self.kind == "timezone":
            return expected.clean_timezone(value, field)
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:  # a list is unhashable
                raise invalid(field, self.message or f"One of {' '.join(self.choices)}.")
            return value
        if not isinstance(value, list) or not value or any(v not in self.choices for v in value):
            raise invalid(field, f"A non-empty list of: {', '.join(self.choices)}.")
        return sorted(set(value))


@dataclass(frozen=True)
class TriggerSpec:
    """A trigger's parameters and its wording, written once.

    ``describe`` is the sentence saying when a rule with these parameters
    fires ("Fires when val/loss > 0.5 for 3 points in a row"): the rules list,
    the rule page and the alert page all show it (:func:`describe`). A trigger
    without one gets a generic sentence from its label and ``summary`` (its
    parameters in a few words).
    """

    params: tuple[Param, ...]
    summary: Callable[[dict[str, Any]], str] | None = None
    describe: Callable[[dict[str, Any]], str] | None = None
    check: Callable[[dict[str, Any]], None] | None = None  # rules across parameters

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(param.name for param in self.params)


FAILED = tuple(status for status in RunStatus if status in FAILED_STATUSES)
LEVELS = tuple(AlertLevel.values)
KEY = Param("key", "key")


# --- Wording: the pieces of the ``describe`` sentences --------------------------------------


def number(value: Any) -> str:
    """A parameter's number as people write it: 0.5, 1e-05, 1,000 (not 1000.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    return f"{int(value):,}" if math.isfinite(value) else str(value)


def duration(seconds: Any) -> str:
    """600 → "10 min", 90 → "90 s", 7200 → "2 h", 86400 → "1 day"."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        return f"{seconds} s"
    for size, unit in ((86400, " day"), (3600, " h"), (60, " min")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count}{unit}{'s' if unit == ' day' and count != 1 else ''}"
    return f"{seconds} s"


def either(values: Any) -> str:
    """["failed", "crashed", "killed"] → "failed, crashed or killed"."""
    names = [str(value) for value in values or []]
    if len(names) < 2:
        return "".join(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"


# --- The windowed metric triggers' wording and cross-parameter rules -------------------------

AGGREGATES = ("mean", "min", "max")
# metric_window, metric_change and metric_zscore read window + for_points stored points a batch.
WINDOWED_FOR_POINTS = Param("for_points", "int", default=1, low=1, high=1000, form_value=1)


def _span(p: dict[str, Any]) -> str:
    if p.get("window_seconds"):
        return duration(p["window_seconds"])
    return f"{number(p.get('window_points'))} points"


def _in_a_row(p: dict[str, Any]) -> str:
    return f" for {p['for_points']} points in a row" if p.get("for_points", 1) != 1 else ""


def _worse(p: dict[str, Any]) -> str:
    return "below" if p.get("mode") == "max" else "above"


def _whose(p: dict[str, Any]) -> str:
    if p.get("against") == "baseline":
        return f"the best of run {p.get('baseline_run')}"
    return "its best so far"


def _direction(p: dict[str, Any]) -> str:
    return {"above": "above", "below": "below"}.get(p.get("direction", ""), "away from")


def _one_window(p: dict[str, Any]) -> None:
    """metric_window needs exactly one of window_points and window_seconds."""
    if (p["window_points"] is None) == (p["window_seconds"] is None):
        raise invalid(
            "params.window_points",
            "Give either window_points (a number of points) or window_seconds, not both.",
        )


def _one_baseline(p: dict[str, Any]) -> None:
    """baseline_run goes with against "baseline", and only with it."""
    if p["against"] == "baseline" and p["baseline_run"] is None:
        raise invalid("params.baseline_run", "The id of a run of this project to compare with.")
    if p["against"] == "best" and p["baseline_run"] is not None:
        raise invalid("params.baseline_run", 'Only with against "baseline".')


def check_in_project(trigger: str, params: dict[str, Any], project_id: int) -> None:
    """A baseline run must be a run of the rule's own project."""
    run_id = params.get("baseline_run") if trigger == Trigger.METRIC_CHANGE else None
    if run_id is not None and not Run.objects.filter(pk=run_id, project_id=project_id).exists():
        raise invalid("params.baseline_run", f"No run {run_id} in this project.")


TRIGGERS: dict[str, TriggerSpec] = {
    Trigger.RUN_FAILED: TriggerSpec(
        (Param("statuses", "choices", default=list(FAILED), choices=FAILED, form_value=FAILED),),
        describe=lambda p: (
            f"Fires when a run ends {either(s for s in FAILED if s in p.get('statuses', ()))}"
        ),
    ),
    Trigger.RUN_STALLED: TriggerSpec(
        (Param("after_seconds", "int", default=600, low=60, high=7 * 86400, form_value=600),),
        describe=lambda p: (
            f"Fires when a running run has sent nothing, not even a heartbeat,"
            f" for {duration(p.get('after_seconds'))}"
        ),
    ),
    Trigger.RUN_NO_PROGRESS: TriggerSpec(
        (
            Param("after_seconds", "int", default=900, low=60, high=7 * 86400, form_value=900),
            Param("key", "key", default=""),
        ),
        describe=lambda p: (
            f"Fires when a running run has logged no {p.get('key') or 'metric'} point"
            f" for {duration(p.get('after_seconds'))}, even if its process still sends heartbeats"
        ),
    ),
    Trigger.METRIC_THRESHOLD: TriggerSpec(
        (
            KEY,
            Param("op", "choice", choices=tuple(OPERATORS), form_value=">"),
            Param("value", "number"),
            Param("for_points", "int", default=1, low=1, high=10_000, form_value=1),
        ),
        describe=lambda p: (
            f"Fires when {p.get('key')} {p.get('op')} {number(p.get('value'))}"
            + (f" for {p['for_points']} points in a row" if p.get("for_points", 1) != 1 else "")
        ),
    ),
    Trigger.METRIC_NAN: TriggerSpec(
        (KEY,), describe=lambda p: f"Fires when {p.get('key')} is NaN or infinite"
    ),
    Trigger.METRIC_STAGNANT: TriggerSpec(
        (
            KEY,
            Param(
                "mode",
                "choice",
                default="min",
                choices=("min", "max"),
                message="min (lower is better) or max.",
                form_value="min",
            ),
            Param("patience_steps", "int", low=1, high=10**12, form_value=1000),
        ),
        describe=lambda p: (
            f"Fires when {p.get('key')} has not improved"
            f" ({'higher' if p.get('mode') == 'max' else 'lower'} is better)"
            f" for {number(p.get('patience_steps'))} steps"
        ),
    ),
    Trigger.METRIC_WINDOW: TriggerSpec(
        (
            KEY,
            Param("agg", "choice", default="mean", choices=AGGREGATES, form_value="mean"),
            Param(
                "window_points", "int", default=None, low=2, high=MAX_WINDOW_POINTS, form_value=50
            ),
            Param("window_seconds", "int", default=None, low=1, high=86_400),
            Param("op", "choice", choices=tuple(OPERATORS), form_value=">"),
            Param("value", "number"),
            WINDOWED_FOR_POINTS,
        ),
        describe=lambda p: (
            f"Fires when the {p.get('agg')} of {p.get('key')} over {_span(p)}"
            f" {p.get('op')} {number(p.get('value'))}{_in_a_row(p)}"
        ),
        check=_one_window,
    ),
    Trigger.METRIC_CHANGE: TriggerSpec(
        (
            KEY,
            Param(
                "mode",
                "choice",
                default="min",
                choices=("min", "max"),
                message="min (lower is better) or max.",
                form_value="min",
            ),
            Param("percent", "positive", high=10_000, form_value=20),
            Param(
                "against",
                "choice",
                default="best",
                choices=("best", "baseline"),
                message="best (the run's own best so far) or baseline (baseline_run's best).",
                form_value="best",
            ),
            Param("baseline_run", "run", default=None),
            WINDOWED_FOR_POINTS,
        ),
        describe=lambda p: (
            f"Fires when {p.get('key')} is more than {number(p.get('percent'))}% {_worse(p)}"
            f" {_whose(p)} ({'lower' if p.get('mode') == 'min' else 'higher'} is better)"
            f"{_in_a_row(p)}"
        ),
        check=_one_baseline,
    ),
    Trigger.METRIC_ZSCORE: TriggerSpec(
        (
            KEY,
            Param("window_points", "int", low=10, high=MAX_WINDOW_POINTS, form_value=100),
            Param("z", "positive", high=100, form_value=3),
            Param(
                "direction",
                "choice",
                default="both",
                choices=("above", "below", "both"),
                form_value="both",
            ),
            WINDOWED_FOR_POINTS,
        ),
        describe=lambda p: (
            f"Fires when {p.get('key')} is more than {number(p.get('z'))} standard deviations"
            f" {_direction(p)} the mean of its previous {number(p.get('window_points'))} points"
            f"{_in_a_row(p)}"
        ),
    ),
    Trigger.RUN_FINISHED: TriggerSpec((), describe=lambda p: "Fires when a run finishes"),
    Trigger.SDK_ALERT: TriggerSpec(
        (Param("levels", "choices", default=list(LEVELS), choices=LEVELS, form_value=LEVELS),),
        describe=lambda p: (
            f"Fires when the training code raises an alert (run.alert) of level"
            f" {either(p.get('levels'))}"
        ),
    ),
    Trigger.RUN_EXPECTED: TriggerSpec(
        (
            Param("cron", "cron", form_value="0 2 * * *"),
            Param("timezone", "timezone", default="UTC", form_value="UTC"),
            Param(
                "grace_seconds",
                "int",
                default=3600,
                low=0,
                high=expected.GRACE_MAX_SECONDS,
                form_value=3600,
            ),
        ),
        describe=lambda p: (
            f"Fires when no run starts by the times of the schedule {p.get('cron')}"
            f" ({p.get('timezone')}) plus {duration(p.get('grace_seconds'))} of grace"
        ),
    ),
}


def describe(trigger: str, params: dict[str, Any]) -> str:
    """When a rule of ``trigger`` with ``params`` fires, as one sentence for people.

    The trigger's own ``describe`` when it has one; otherwise its label with
    its ``summary``. Stored params are whatever a past version saved: a
    sentence that cannot be built from them falls back to the label.
    """
    spec = TRIGGERS.get(trigger)
    label = Trigger(trigger).label if trigger in Trigger.values else trigger
    complete = spec is not None and all(
        param.name in params for param in spec.params if param.default is REQUIRED
    )
    try:
        if spec is not None and spec.describe is not None and complete:
            return spec.describe(params) + "."
        detail = spec.summary(params) if spec is not None and spec.summary is not None else ""
    except (KeyError, TypeError, ValueError, AttributeError):
        detail = ""
    return f"Fires on: {label}" + (f" ({detail})." if detail else ".")


def clean_params(trigger: str, params: Any) -> dict[str, Any]:
    """The stored params of a rule with ``trigger``; errors name ``params.<name>``."""
    if trigger not in Trigger.values:
        raise invalid("trigger", f"Trigger must be one of {', '.join(Trigger.values)}.")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise invalid("params", "Must be an object.")
    spec = TRIGGERS[trigger]
    extra = sorted(set(params) - set(spec.names))
    if extra:
        raise invalid(
            f"params.{extra[0]}", f"Unknown parameter; use {', '.join(sorted(spec.names))}."
        )
    cleaned = {param.name: param.clean(params) for param in spec.params}
    if spec.check is not None:
        spec.check(cleaned)
    return cleaned
