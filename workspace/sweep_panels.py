"""The compare page's sweep panels: a scatter, parallel coordinates and parameter importance
of the compared runs, for one summary metric the reader picks (and the scatter's x).

The figures come from ``reports_app.panels``, as the report blocks draw them; a panel with
nothing to draw carries its reason instead of a figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.http import QueryDict

from reports_app import panels
from reports_app.blocks import ImportanceBlock, Panel, ParallelBlock, RunSelector, ScatterBlock
from reports_app.importance import Importance
from tracking.models import Run
from tracking.presentation import DiffRow

AXES = 7  # config keys on the parallel coordinates, besides the metric


@dataclass(frozen=True)
class SweepPanel:
    kind: str
    title: str
    figure: dict[str, Any] | None
    runs: list[int]
    error: str = ""
    note: str = ""


@dataclass(frozen=True)
class Choices:
    metric: str  # summary.<key>
    x: str  # config.<key>
    metrics: list[str]
    xs: list[str]
    # The config keys' importance for ``metric`` when it could be computed: it picks the
    # default x, and the importance panel draws it (computed once).
    ranked: tuple[Importance, ...] | None = None


def choices(
    runs: Sequence[Run], config_rows: list[DiffRow], summary_rows: list[DiffRow], query: QueryDict
) -> Choices:
    """What the reader may pick, and what is picked: the asked values when they are among
    the choices, else the first summary key, and the config key that matters most for it
    (the first that differs when importance cannot tell)."""
    metrics = [f"summary.{row.key}" for row in summary_rows]
    differing = [f"config.{row.key}" for row in config_rows if row.differs]
    xs = differing + [f"config.{row.key}" for row in config_rows if not row.differs]
    metric = query.get("metric", "")
    metric = metric if metric in metrics else (metrics[0] if metrics else "")
    ranked = _ranking(runs, metric)
    x = query.get("x", "")
    if x not in xs:
        x = _most_important(ranked, xs) or (xs[0] if xs else "")
    return Choices(metric=metric, x=x, metrics=metrics, xs=xs, ranked=ranked)


def _ranking(runs: Sequence[Run], metric: str) -> tuple[Importance, ...] | None:
    if not metric:
        return None
    try:
        return tuple(panels.importance_of(_importance_block(runs, metric), runs))
    except panels.PanelError:
        return None  # the importance panel says why


def _importance_block(runs: Sequence[Run], metric: str) -> ImportanceBlock:
    return ImportanceBlock(RunSelector(ids=tuple(run.pk for run in runs)), metric=metric)


def _most_important(ranked: tuple[Importance, ...] | None, xs: list[str]) -> str:
    best = next((f"config.{item.key}" for item in ranked or () if item.importance), "")
    return best if best in xs else ""


def sweep_panels(
    runs: Sequence[Run], picked: Choices, config_rows: list[DiffRow]
) -> list[SweepPanel]:
    """The three panels for ``picked``; none without a metric or a config key to draw."""
    if not picked.metric or not picked.x:
        return []
    every = RunSelector(ids=tuple(run.pk for run in runs))
    axes = tuple(f"config.{row.key}" for row in config_rows if row.differs)[:AXES]
    log_x = panels.spans_decades(panels.values(runs, picked.x))
    scatter = ScatterBlock(every, x=picked.x, y=picked.metric, log_x=log_x)
    blocks: list[tuple[str, Panel]] = [
        (f"{picked.metric} by {picked.x}", scatter),
        (
            f"The differing config keys, coloured by {picked.metric}",
            ParallelBlock(every, columns=(*axes, picked.metric), color=picked.metric),
        ),
        (f"What drives {picked.metric}", _importance_block(runs, picked.metric)),
    ]
    if not axes:
        blocks.pop(1)  # one axis: nothing to lay out side by side
    return [_drawn(title, block, runs, picked.ranked) for title, block in blocks]


def _drawn(
    title: str, block: Panel, runs: Sequence[Run], ranked: tuple[Importance, ...] | None
) -> SweepPanel:
    try:
        if isinstance(block, ImportanceBlock) and ranked is not None:
            drawn = panels.importance_chart(block, runs, ranked)
        else:
            drawn = panels.draw(block, runs, public=False)
    except panels.PanelError as error:
        return SweepPanel(block.kind, title, None, [], error=error.message)
    runs_drawn = list(drawn.figure["layout"]["meta"]["runs"])
    return SweepPanel(block.kind, title, drawn.figure, runs_drawn, note=drawn.note)
