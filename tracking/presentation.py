"""How a run is shown wherever it appears: a table row, a chart line, a config diff.

The run and project pages (``workspace``) and the report blocks
(``reports_app.render``) show runs the same way from these functions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from kernel.charts import run_color
from tracking.models import Run, RunStatus
from tracking.validation import flatten, float_to_json


def run_duration(run: Run, *, now: datetime) -> timedelta:
    end = run.ended_at or (now if run.status == RunStatus.RUNNING else run.last_seen_at)
    return max(end - run.created_at, timedelta(0))


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".4g") if math.isfinite(value) else str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


# A run-level value as panels and groups read it: a finite float or a category (text).
Value = float | str


def scalar(value: Any) -> Value | None:
    """A value as a panel draws it: a finite float, a category (text), or None (no value)."""
    if value is None or isinstance(value, dict | list):
        return None if not value else format_value(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return None  # "NaN", "inf": a metric that diverged has no value to place
    return number


# What a bar panel's or a line chart's ``group_by`` may name besides ``config.<key>``.
GROUPINGS = ("group", "tags")
NO_GROUP = "(none)"  # the group of a run without a value (bands.js orders it last)


def group_labels(run: Run, group_by: str) -> list[str]:
    """The groups a run is in: its ``group``, each of its tags, or its value of a config key
    (numbers written as text count as numbers: ``"1e-3"`` and ``0.001`` are one group)."""
    if group_by == "group":
        return [run.group or NO_GROUP]
    if group_by == "tags":
        return sorted(tag.name for tag in run.tag_rows.all()) or [NO_GROUP]
    return [format_value(scalar(column_value(run, group_by))) or NO_GROUP]


@dataclass
class Cell:
    """A config or summary column's value in a row; ``source``/``key`` let live updates find it."""

    source: str
    key: str
    text: str


@dataclass
class RunRow:
    """A run as a table row: the run plus what the template cannot compute itself."""

    run: Run
    href: str
    duration: str
    color: str = ""  # the run's colour on every chart (kernel.charts.run_color)
    stalled: bool = False
    cells: list[Cell] = field(default_factory=list)


def stall_after() -> timedelta:
    return timedelta(seconds=settings.LABBOOK["RUN_CRASH_AFTER_SECONDS"] / 2)


def run_row(run: Run, *, now: datetime, columns: Sequence[str] = ()) -> RunRow:
    stalled = run.status == RunStatus.RUNNING and run.last_seen_at < now - stall_after()
    return RunRow(
        run=run,
        href=run.get_absolute_url(),
        duration=format_duration(run_duration(run, now=now)),
        color=run_color(run.project_index),
        stalled=stalled,
        cells=[_cell(run, column) for column in columns],
    )


def _cell(run: Run, column: str) -> Cell:
    source, key = column.split(".", 1)
    return Cell(source, key, format_value(column_value(run, column)))


def column_value(run: Run, column: str) -> Any:
    """A ``config.<key>`` or ``summary.<key>`` value; summaries fall back to the last metric.

    A nested config value goes by its dotted path (``config.optimizer.lr``); a key that holds
    dots itself is found first.
    """
    source, _, key = column.partition(".")
    if source == "config":
        return run.config[key] if key in run.config else flatten(run.config).get(key)
    if key in run.summary:
        return run.summary[key]
    series = next((s for s in run.metric_series.all() if s.key == key and s.count), None)
    return None if series is None else float_to_json(series.last_value)  # a NaN shows as NaN


def chart_run(run: Run) -> dict[str, Any]:
    """A run as a chart draws it: its colour is its own, the same on every page."""
    return {"id": run.pk, "name": run.name, "color": run_color(run.project_index)}


@dataclass
class DiffRow:
    key: str
    values: list[str]
    differs: bool


def diff_rows(values_per_run: list[dict[str, Any]]) -> list[DiffRow]:
    """One row per key any run has; ``differs`` when the runs disagree (a missing key differs)."""
    keys = sorted({key for values in values_per_run for key in values})
    rows = []
    for key in keys:
        cells = [format_value(values.get(key)) for values in values_per_run]
        present = all(key in values for values in values_per_run)
        rows.append(DiffRow(key, cells, differs=not present or len(set(cells)) > 1))
    return rows
