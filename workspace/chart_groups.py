"""Grouped lines on the compare page: what the runs can be grouped by, and each run's groups.

The reader picks a grouping (``?group_by=config.lr&band=minmax``, kept in the URL so the view
can be shared); charts.js then draws each group's mean and band (bands.js) from the runs'
lines. The choices are the run's ``group`` and tags when any run has one, and the config keys
whose values put at least two runs together (a key that differs on every run, a seed, groups
nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.http import QueryDict

from kernel.charts import BANDS
from tracking.models import Run
from tracking.presentation import DiffRow, group_labels

MAX_CHOICES = 30  # config keys offered, in key order, after group and tags


@dataclass(frozen=True)
class Grouping:
    choices: list[str]
    group_by: str = ""  # "": a line per run
    band: str = "std"
    labels: dict[int, dict[str, list[str]]] = field(default_factory=dict)  # run -> choice -> groups


def grouping(runs: Sequence[Run], config_rows: list[DiffRow], query: QueryDict) -> Grouping:
    choices = _choices(runs, config_rows)
    group_by = query.get("group_by", "")
    band = query.get("band", "std")
    return Grouping(
        choices=choices,
        group_by=group_by if group_by in choices else "",
        band=band if band in BANDS else "std",
        labels={run.pk: {c: group_labels(run, c) for c in choices} for run in runs},
    )


def _choices(runs: Sequence[Run], config_rows: list[DiffRow]) -> list[str]:
    found = []
    if any(run.group for run in runs):
        found.append("group")
    if any(run.tag_rows.all() for run in runs):
        found.append("tags")
    together = []
    for row in config_rows:
        column = f"config.{row.key}"
        if row.differs and _puts_together(runs, column):
            together.append(column)
            if len(together) == MAX_CHOICES:
                break
    return found + together


def _puts_together(runs: Sequence[Run], column: str) -> bool:
    """Whether some two runs fall in one group (a number and its text, "1e-3" and 0.001, do)."""
    seen: set[str] = set()
    for run in runs:
        (label,) = group_labels(run, column)
        if label in seen:
            return True
        seen.add(label)
    return False
