"""The parameters each trigger takes, checked when a rule is saved.

run_failed        {"statuses": ["failed", "crashed", "killed"]}   (default: all three)
run_stalled       {"after_seconds": 600}                          (60 .. 7 days)
metric_threshold  {"key", "op": ">"|">="|"<"|"<=", "value", "for_points": 1}
metric_nan        {"key"}
metric_stagnant   {"key", "mode": "min"|"max", "patience_steps"}
run_finished      {}
sdk_alert         {"levels": ["info", "warn", "error"]}            (default: all)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

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


def _unknown(params: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(params) - allowed)
    if extra:
        raise invalid(f"params.{extra[0]}", f"Unknown parameter; use {', '.join(sorted(allowed))}.")


def _int(params: dict[str, Any], name: str, *, default: int | None, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"params.{name}", f"A whole number from {low} to {high}.")
    return value


def _choices(params: dict[str, Any], name: str, allowed: tuple[str, ...]) -> list[str]:
    value = params.get(name, list(allowed))
    if not isinstance(value, list) or not value or any(v not in allowed for v in value):
        raise invalid(f"params.{name}", f"A non-empty list of: {', '.join(allowed)}.")
    return sorted(set(value))


def clean_params(trigger: str, params: Any) -> dict[str, Any]:
    """The stored params of a rule with ``trigger``; errors name ``params.<name>``."""
    if trigger not in Trigger.values:
        raise invalid("trigger", f"Trigger must be one of {', '.join(Trigger.values)}.")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise invalid("params", "Must be an object.")
    return _CLEANERS[trigger](params)


def _run_failed(params: dict[str, Any]) -> dict[str, Any]:
    _unknown(params, {"statuses"})
    return {
        "statuses": _choices(
            params, "statuses", tuple(s for s in RunStatus if s in FAILED_STATUSES)
        )
    }


def _run_stalled(params: dict[str, Any]) -> dict[str, Any]:
    _unknown(params, {"after_seconds"})
    return {"after_seconds": _int(params, "after_seconds", default=600, low=60, high=7 * 86400)}


def _key(params: dict[str, Any]) -> str:
    return clean_metric_key(params.get("key"), field="params.key")


def _threshold(params: dict[str, Any]) -> dict[str, Any]:
    _unknown(params, {"key", "op", "value", "for_points"})
    op = params.get("op")
    if not isinstance(op, str) or op not in OPERATORS:  # a list is unhashable
        raise invalid("params.op", f"One of {' '.join(OPERATORS)}.")
    value = params.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid("params.value", "A finite number.")
    for_points = _int(params, "for_points", default=1, low=1, high=10_000)
    return {"key": _key(params), "op": op, "value": value, "for_points": for_points}


def _nan(params: dict[str, Any]) -> dict[str, Any]:
    _unknown(params, {"key"})
    return {"key": _key(params)}


def _stagnant(params: dict[str, Any]) -> dict[str, Any]:
    _unknown(params, {"key", "mode", "patience_steps"})
    mode = params.get("mode", "min")
    if mode not in ("min", "max"):
        raise invalid("params.mode", "min (lower is better) or max.")
    patience = _int(params, "patience_steps", default=None, low=1, high=10**12)
    return {"key": _key(params), "mode": mode, "patience_steps": patience}


def _finished(params: dict[str, Any]) -> dict[str, Any]:
    _unknown(params, set())
    return {}


def _sdk(params: dict[str, Any]) -> dict[str, Any]:
    _unknown(params, {"levels"})
    return {"levels": _choices(params, "levels", tuple(AlertLevel.values))}


_CLEANERS = {
    Trigger.RUN_FAILED: _run_failed,
    Trigger.RUN_STALLED: _run_stalled,
    Trigger.METRIC_THRESHOLD: _threshold,
    Trigger.METRIC_NAN: _nan,
    Trigger.METRIC_STAGNANT: _stagnant,
    Trigger.RUN_FINISHED: _finished,
    Trigger.SDK_ALERT: _sdk,
}
