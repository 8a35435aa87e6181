"""Each trigger's parameters, defined once: checked when a rule is saved, shown by its form.

run_failed        {"statuses": ["failed", "crashed", "killed"]}   (default: all three)
run_stalled       {"after_seconds": 600}                          (60 .. 7 days)
metric_threshold  {"key", "op": ">"|">="|"<"|"<=", "value", "for_points": 1}
metric_nan        {"key"}
metric_stagnant   {"key", "mode": "min"|"max", "patience_steps"}
run_finished      {}
sdk_alert         {"levels": ["info", "warn", "error"]}            (default: all)

:data:`TRIGGERS` is the one definition: :func:`clean_params` (the REST API, the
rule form and project imports all save through it), the rule form's fieldsets,
their bounds and the rules list's one-line summaries read it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from alerts.models import Trigger
from kernel.errors import invalid
from tracking.models import FAILED_STATUSES, AlertLevel, RunStatus
from tracking.validation import clean_metric_key

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
METRIC_TRIGGERS = (Trigger.METRIC_THRESHOLD, Trigger.METRIC_NAN, Trigger.METRIC_STAGNANT)
REQUIRED = object()  # a parameter with no default


@dataclass(frozen=True)
class Param:
    """One parameter: its kind, bounds or choices, its default and the form's starting value."""

    name: str
    kind: Literal["int", "number", "key", "choice", "choices"]
    default: Any = REQUIRED
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()
    message: str = ""  # a choice's error, when the list of choices does not say it
    form_value: Any = ""  # what a new rule's form shows (a required value has no default)

    def clean(self, params: dict[str, Any]) -> Any:
        field = f"params.{self.name}"
        value = params.get(self.name, None if self.default is REQUIRED else self.default)
        if self.kind == "key":
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
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:  # a list is unhashable
                raise invalid(field, self.message or f"One of {' '.join(self.choices)}.")
            return value
        if not isinstance(value, list) or not value or any(v not in self.choices for v in value):
            raise invalid(field, f"A non-empty list of: {', '.join(self.choices)}.")
        return sorted(set(value))


@dataclass(frozen=True)
class TriggerSpec:
    params: tuple[Param, ...]
    summary: Callable[[dict[str, Any]], str]  # one line for the rules list

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(param.name for param in self.params)


FAILED = tuple(status for status in RunStatus if status in FAILED_STATUSES)
LEVELS = tuple(AlertLevel.values)
KEY = Param("key", "key")

TRIGGERS: dict[str, TriggerSpec] = {
    Trigger.RUN_FAILED: TriggerSpec(
        (Param("statuses", "choices", default=list(FAILED), choices=FAILED, form_value=FAILED),),
        lambda p: ", ".join(p.get("statuses", [])),
    ),
    Trigger.RUN_STALLED: TriggerSpec(
        (Param("after_seconds", "int", default=600, low=60, high=7 * 86400, form_value=600),),
        lambda p: f"silent for {p.get('after_seconds')} s",
    ),
    Trigger.METRIC_THRESHOLD: TriggerSpec(
        (
            KEY,
            Param("op", "choice", choices=tuple(OPERATORS), form_value=">"),
            Param("value", "number"),
            Param("for_points", "int", default=1, low=1, high=10_000, form_value=1),
        ),
        lambda p: (
            f"{p.get('key')} {p.get('op')} {p.get('value')} for {p.get('for_points')} point(s)"
        ),
    ),
    Trigger.METRIC_NAN: TriggerSpec((KEY,), lambda p: str(p.get("key"))),
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
        lambda p: (
            f"{p.get('key')} ({p.get('mode')}) not better for {p.get('patience_steps')} steps"
        ),
    ),
    Trigger.RUN_FINISHED: TriggerSpec((), lambda p: ""),
    Trigger.SDK_ALERT: TriggerSpec(
        (Param("levels", "choices", default=list(LEVELS), choices=LEVELS, form_value=LEVELS),),
        lambda p: ", ".join(p.get("levels", [])),
    ),
}


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
    return {param.name: param.clean(params) for param in spec.params}
