"""Run-level panels: one value per run, drawn as a scatter plot, bars (per run, or per group
with error bars), parallel coordinates, or a parameter-importance chart.

A value is a ``config.<key>`` (nested config by its dotted path) or a ``summary.<key>`` (the
run's summary, else the last point of that metric), read by
``tracking.presentation.column_value`` as the runs table reads it. Numbers written as text
(MLflow logs every param as a string) count as numbers; NaN and infinities count as no
value. Report blocks (``reports_app.render``) draw these figures, frozen or live;
``PanelError`` says why a panel has nothing to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from django.utils.html import escape

from kernel.charts import COLORS, run_color
from reports_app import importance
from reports_app.blocks import (
    BarBlock,
    BlockError,
    ImportanceBlock,
    Panel,
    ParallelBlock,
    ScatterBlock,
)
from tracking import presentation
from tracking.models import Run
from tracking.validation import flatten

HEIGHT = 380
SCALE = "Viridis"  # a numeric colour: perceptually even, readable by the colour-blind
MAX_IMPORTANCE_KEYS = 30  # the config keys an importance chart ranks, at most
LOG_SPAN = 100  # positive values whose largest is this many times the smallest read best on a log
# axis (learning rates, weight decays): parallel coordinates and the compare page use one
Value = presentation.Value
scalar = presentation.scalar


class PanelError(BlockError):
    """A panel with nothing to draw; ``message`` is shown to the reader in its place."""


@dataclass(frozen=True)
class Drawn:
    """A panel's Plotly figure and a note on what it left out ("" when nothing)."""

    figure: dict[str, Any]
    note: str = ""


def values(runs: Sequence[Run], column: str) -> list[Value | None]:
    return [scalar(presentation.column_value(run, column)) for run in runs]


def numeric(found: Sequence[Value | None]) -> bool:
    present = [value for value in found if value is not None]
    return bool(present) and all(isinstance(value, float) for value in present)


def spans_decades(found: Sequence[Value | None]) -> bool:
    """Whether the values are positive numbers spanning ``LOG_SPAN`` or more."""
    present = [value for value in found if value is not None]
    if not numeric(present):
        return False
    numbers = [float(value) for value in present]
    return min(numbers) > 0 and max(numbers) >= LOG_SPAN * min(numbers)


def _name(run: Run) -> str:
    return escape(run.name)  # plotly reads a few HTML tags in hover text


def _links(runs: Sequence[Run], public: bool) -> list[str | None]:
    """Where a click on a run's mark goes: its page, or nowhere on a share link or export."""
    return [None if public else run.get_absolute_url() for run in runs]


def _missing_note(left_out: int, total: int, columns: Sequence[str]) -> str:
    if not left_out:
        return ""
    names = " or ".join(f"`{column}`" for column in columns)
    return f"{left_out} of {total} runs have no {names}: not drawn."


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "template": "none",
        "height": HEIGHT,
        "margin": {"l": 64, "r": 24, "t": 40 if title else 16, "b": 56},
        "title": {"text": escape(title)} if title else None,
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "hovermode": "closest",
        **extra,
    }


def _axis(column: str, found: Sequence[Value | None], log: bool) -> dict[str, Any]:
    kind = ("log" if log else "linear") if numeric(found) else "category"
    return {"title": {"text": escape(column)}, "type": kind, "automargin": True}


def _figure(data: list[Any], layout: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Checked by plotly's own validators (a few hundred values: cheap), as plain JSON."""
    figure = go.Figure(data=data, layout={**layout, "meta": meta}).to_plotly_json()
    return {"data": figure["data"], "layout": figure["layout"]}


def _category_colors(found: Sequence[Value | None]) -> dict[str, str]:
    names = sorted({str(value) for value in found if value is not None})
    return {name: COLORS[index % len(COLORS)] for index, name in enumerate(names)}


# --- Scatter ------------------------------------------------------------------------------


def scatter(block: ScatterBlock, runs: Sequence[Run], *, public: bool) -> Drawn:
    xs, ys = values(runs, block.x), values(runs, block.y)
    colors = values(runs, block.color) if block.color else [None] * len(runs)
    kept = [i for i in range(len(runs)) if xs[i] is not None and ys[i] is not None]
    if not kept:
        raise PanelError(f"None of these {len(runs)} runs has both `{block.x}` and `{block.y}`.")
    links = _links(runs, public)
    hover = "<b>%{text}</b><br>" + escape(block.x) + ": %{x}<br>" + escape(block.y) + ": %{y}"

    def points(indices: list[int], **style: Any) -> go.Scatter:
        return go.Scatter(
            x=[xs[i] for i in indices],
            y=[ys[i] for i in indices],
            text=[_name(runs[i]) for i in indices],
            customdata=[links[i] for i in indices],
            mode="markers",
            hovertemplate=hover + "<extra></extra>",
            **style,
        )

    marker = {"size": 10, "line": {"width": 1, "color": "#ffffff"}}
    kept_colors = [colors[i] for i in kept]
    if not block.color or all(value is None for value in kept_colors):
        data = [
            points(
                kept,
                marker={**marker, "color": [run_color(runs[i].project_index) for i in kept]},
                showlegend=False,
            )
        ]
    elif numeric(kept_colors):
        scale = {
            "colorscale": SCALE,
            "showscale": True,
            "colorbar": {"title": {"text": escape(block.color)}},
        }
        shade = [colors[i] if colors[i] is not None else None for i in kept]
        data = [points(kept, marker={**marker, **scale, "color": shade}, showlegend=False)]
    else:
        palette = _category_colors(kept_colors)
        data = [
            points(
                [i for i in kept if str(colors[i]) == name],
                marker={**marker, "color": color},
                name=escape(name),
            )
            for name, color in palette.items()
        ]
    layout = _layout(
        block.title,
        xaxis=_axis(block.x, [xs[i] for i in kept], block.log_x),
        yaxis=_axis(block.y, [ys[i] for i in kept], block.log_y),
        legend={"title": {"text": escape(block.color)}},
    )
    meta = {"panel": "scatter", "runs": [runs[i].pk for i in kept]}
    note = _missing_note(len(runs) - len(kept), len(runs), [block.x, block.y])
    return Drawn(_figure(data, layout, meta), note)


# --- Bars ---------------------------------------------------------------------------------


def bar(block: BarBlock, runs: Sequence[Run], *, public: bool) -> Drawn:
    found = values(runs, block.value)
    number = {i: value for i, value in enumerate(found) if isinstance(value, float)}
    kept = list(number)
    if not kept:
        raise PanelError(f"None of these {len(runs)} runs has a number for `{block.value}`.")
    note = _missing_note(len(runs) - len(kept), len(runs), [block.value])
    yaxis = {"title": {"text": escape(block.value)}, "type": "log" if block.log_y else "linear"}
    if block.group_by:
        data, xaxis = _group_bars(block, [runs[i] for i in kept], [number[i] for i in kept])
    else:
        links = _links(runs, public)
        data = [
            go.Bar(
                x=list(range(len(kept))),  # by position: two runs of one name stay two bars
                y=[found[i] for i in kept],
                text=[_name(runs[i]) for i in kept],
                textposition="none",
                customdata=[links[i] for i in kept],
                marker={"color": [run_color(runs[i].project_index) for i in kept]},
                hovertemplate="<b>%{text}</b><br>%{y}<extra></extra>",
            )
        ]
        names = [_name(runs[i]) for i in kept]
        xaxis = {"tickvals": list(range(len(kept))), "ticktext": names, "automargin": True}
    layout = _layout(block.title, xaxis=xaxis, yaxis=yaxis, showlegend=False)
    meta = {"panel": "bar", "runs": [runs[i].pk for i in kept]}
    return Drawn(_figure(data, layout, meta), note)


def _group_bars(block: BarBlock, runs: list[Run], found: list[float]) -> tuple[list[Any], dict]:
    groups: dict[str, list[float]] = {}
    for run, value in zip(runs, found, strict=True):
        for name in presentation.group_labels(run, block.group_by):
            groups.setdefault(name, []).append(value)
    order = sorted(groups, key=_group_order)
    stats = [_stats(groups[name]) for name in order]
    data = [
        go.Bar(
            x=[escape(name) for name in order],
            y=[mean for mean, _, _, _, _ in stats],
            error_y={"type": "data", "array": [std for _, std, _, _, _ in stats], "visible": True},
            customdata=[[n, low, high] for _, _, n, low, high in stats],
            marker={"color": COLORS[0]},
            hovertemplate=(
                "<b>%{x}</b><br>mean %{y:.4g} ± %{error_y.array:.3g}<br>"
                "%{customdata[0]} runs, %{customdata[1]:.4g} to %{customdata[2]:.4g}<extra></extra>"
            ),
        )
    ]
    xaxis = {"title": {"text": escape(block.group_by)}, "type": "category", "automargin": True}
    return data, xaxis


def _group_order(name: str) -> tuple[int, float, str]:
    """Numeric group names in numeric order (1e-4 before 1e-3), then the others by name."""
    number = scalar(name)
    return (0, number, "") if isinstance(number, float) else (1, 0.0, name)


def _stats(group: list[float]) -> tuple[float, float, int, float, float]:
    """Mean, sample standard deviation (0 for one run), count, min and max."""
    n = len(group)
    mean = math.fsum(group) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in group) / (n - 1)) if n > 1 else 0.0
    return mean, std, n, min(group), max(group)


# --- Parallel coordinates -------------------------------------------------------------------


def parallel(block: ParallelBlock, runs: Sequence[Run]) -> Drawn:
    columns = list(block.columns)
    found = {column: values(runs, column) for column in columns}
    shades = values(runs, block.color) if block.color else [None] * len(runs)
    kept = [
        i
        for i in range(len(runs))
        if all(found[column][i] is not None for column in columns)
        and (not block.color or shades[i] is not None)
    ]
    if not kept:
        names = ", ".join(f"`{column}`" for column in [*columns, *filter(None, [block.color])])
        raise PanelError(f"None of these {len(runs)} runs has every one of {names}.")
    dimensions = [_dimension(column, [found[column][i] for i in kept]) for column in columns]
    line = _line(block, [runs[i] for i in kept], [shades[i] for i in kept])
    data = [go.Parcoords(dimensions=dimensions, line=line)]
    layout = _layout(block.title)
    layout["margin"] = {"l": 72, "r": 72, "t": 72 if block.title else 48, "b": 24}
    meta = {"panel": "parallel", "runs": [runs[i].pk for i in kept]}
    wanted = [*columns, *filter(None, [block.color])]
    return Drawn(
        _figure(data, layout, meta), _missing_note(len(runs) - len(kept), len(runs), wanted)
    )


def _dimension(column: str, found: list[Value | None]) -> dict[str, Any]:
    """An axis: numbers as they are (or their logarithm, ticked in powers of ten, when they
    span ``LOG_SPAN``), text as a tick per value."""
    if spans_decades(found):
        logs = [math.log10(float(value)) for value in found if value is not None]
        powers = list(range(math.floor(min(logs)), math.ceil(max(logs)) + 1))
        return {
            "label": escape(column) + " (log)",
            "values": logs,
            "tickvals": powers,
            "ticktext": [f"{10.0**power:g}" for power in powers],
        }
    if numeric(found):
        return {"label": escape(column), "values": found}
    names = sorted({str(value) for value in found})
    code = {name: index for index, name in enumerate(names)}
    return {
        "label": escape(column),
        "values": [code[str(value)] for value in found],
        "tickvals": list(range(len(names))),
        "ticktext": [escape(name) for name in names],
    }


def _line(block: ParallelBlock, runs: list[Run], shades: list[Value | None]) -> dict[str, Any]:
    """Coloured by ``color`` when given (a scale for numbers, a colour per category), else
    each run in its own colour (a colour scale with a stop per run)."""
    if block.color and numeric(shades):
        bar = {"title": {"text": escape(block.color)}}
        return {"color": shades, "colorscale": SCALE, "showscale": True, "colorbar": bar}
    if block.color:
        palette = _category_colors(shades)
        names = list(palette)
        return {
            "color": [names.index(str(s)) for s in shades],
            "colorscale": _stops(list(palette.values())),
        }
    return {
        "color": list(range(len(runs))),
        "colorscale": _stops([run_color(r.project_index) for r in runs]),
    }


def _stops(colors: list[str]) -> list[list[Any]]:
    """A colour scale that gives value i exactly ``colors[i]`` (values 0 .. n - 1)."""
    if len(colors) == 1:
        return [[0, colors[0]], [1, colors[0]]]
    last = len(colors) - 1
    return [[index / last, color] for index, color in enumerate(colors)]


# --- Parameter importance ----------------------------------------------------------------------


def importance_of(block: ImportanceBlock, runs: Sequence[Run]) -> list[importance.Importance]:
    """Each config key's importance for the block's metric, most important first."""
    metric = {i: v for i, v in enumerate(values(runs, block.metric)) if isinstance(v, float)}
    scored = list(metric)
    if len(scored) < importance.MIN_RUNS:
        raise PanelError(
            f"{len(scored)} of these runs have a number for `{block.metric}`;"
            f" importance needs at least {importance.MIN_RUNS}."
        )
    configs = [flatten(runs[i].config) for i in scored]
    keys = [column.partition(".")[2] for column in block.columns] or _varying(configs)
    if not keys:
        raise PanelError("No config key varies among these runs.")
    found = []
    for key in keys[: MAX_IMPORTANCE_KEYS * 4]:
        pairs = [
            (x, metric[i])
            for i, config in zip(scored, configs, strict=True)
            if (x := scalar(config.get(key))) is not None
        ]
        xs = [x for x, _ in pairs]
        if not numeric(xs):
            xs = [str(x) for x in xs]
        found.append(importance.of_key(key, xs, [y for _, y in pairs]))
    found.sort(key=lambda item: (item.importance is None, -(item.importance or 0), item.key))
    return found[:MAX_IMPORTANCE_KEYS]


def _varying(configs: list[dict[str, Any]]) -> list[str]:
    """Config keys with at least two distinct values among the runs."""
    seen: dict[str, set[str]] = {}
    for config in configs:
        for key, value in config.items():
            seen.setdefault(key, set()).add(repr(value))
    return sorted(key for key, distinct in seen.items() if len(distinct) > 1)


def importance_chart(
    block: ImportanceBlock,
    runs: Sequence[Run],
    ranked: Sequence[importance.Importance] | None = None,
) -> Drawn:
    """``ranked``: ``importance_of(block, runs)``, when the caller has it already."""
    if ranked is None:
        ranked = importance_of(block, runs)
    found = list(reversed(ranked))  # plotly draws the first bar lowest
    keys = [escape(f"config.{item.key}") for item in found]
    counts = [item.runs for item in found]
    correlation = [item.correlation for item in found]
    data = [
        go.Bar(
            x=[item.importance for item in found],
            y=keys,
            orientation="h",
            marker={"color": COLORS[0]},
            customdata=counts,
            name="importance",
            hovertemplate="%{y}<br>importance %{x:.2f} (%{customdata} runs)<extra></extra>",
        ),
        go.Bar(
            x=correlation,
            y=keys,
            orientation="h",
            xaxis="x2",
            marker={"color": ["#1a7f37" if (r or 0) >= 0 else "#cf222e" for r in correlation]},
            customdata=counts,
            name="correlation",
            hovertemplate="%{y}<br>correlation %{x:.2f} (%{customdata} runs)<extra></extra>",
        ),
    ]
    layout = _layout(
        block.title,
        height=max(HEIGHT, 120 + 26 * len(found)),
        showlegend=False,
        hovermode="closest",
        xaxis={
            "domain": [0, 0.44],
            "range": [0, 1],
            "title": {"text": f"importance for {escape(block.metric)} (ε²)"},
        },
        xaxis2={"domain": [0.56, 1], "range": [-1, 1], "title": {"text": "correlation (r)"}},
        yaxis={"automargin": True},
    )
    meta = {"panel": "importance", "runs": [run.pk for run in runs]}
    unscored = [f"`config.{item.key}`" for item in reversed(found) if item.importance is None]
    note = (
        f"Not scored: {', '.join(unscored)} (too few runs, or no spread to compare)."
        if unscored
        else ""
    )
    return Drawn(_figure(data, layout, meta), note)


def draw(block: Panel, runs: Sequence[Run], *, public: bool) -> Drawn:
    """The figure of any panel block; PanelError when it has nothing to draw."""
    if isinstance(block, ScatterBlock):
        return scatter(block, runs, public=public)
    if isinstance(block, BarBlock):
        return bar(block, runs, public=public)
    if isinstance(block, ParallelBlock):
        return parallel(block, runs)
    return importance_chart(block, runs)


def summary_keys(block: Panel) -> set[str]:
    """The metric keys a panel reads (``summary.<key>``): new points of them may move it."""
    columns: list[str] = []
    if isinstance(block, ScatterBlock):
        columns = [block.x, block.y, block.color]
    elif isinstance(block, BarBlock):
        columns = [block.value]
    elif isinstance(block, ParallelBlock):
        columns = [*block.columns, block.color]
    else:
        columns = [block.metric]
    return {c.partition(".")[2] for c in columns if c.startswith("summary.")}
