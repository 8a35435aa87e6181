"""Reports rendered for reading: sanitized Markdown with Labbook blocks drawn in.

``render_report`` turns a report body into safe HTML plus the Plotly figures
of its chart blocks (built server-side with the ``plotly`` package from
downsampled history). Blocks read runs of the report's own team only, so a
report, and a share link to it, can never show another team's runs. A block
that cannot be drawn becomes an error box naming the problem; rendering never
raises for anything a body contains.

Query cost is fixed however many blocks a report has: all blocks' runs are
resolved in one query per selector kind, series in one, histories through
``tracking.history.histories``.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import plotly.graph_objects as go
from django.db import connection
from django.db.models import Q, prefetch_related_objects
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from kernel.charts import MARKED_UP_TO, run_color
from reports_app import blocks, budget, markup, media_blocks, panels
from reports_app.blocks import BlockError, ChartBlock, CompareBlock, Panel, RunsBlock, RunSelector
from reports_app.models import Report
from reports_app.render_slots import in_render_slot
from tracking import patterns, presentation
from tracking.history import History, histories
from tracking.models import MetricSeries, Run
from tracking.validation import flatten

DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
FROZEN_NOTE = '<p class="chart-note">Frozen when the report was saved.</p>'
THINNED_NOTE = (
    '<p class="chart-note chart-thinned">Thinned to {} points per line to keep this page'
    " under its budget (asked for {}).</p>"
)
LEFT_OUT = (
    "Not drawn: this page already carries {} of chart data, its budget."
    " Split the report, or lower `max_points` or the number of runs of the charts above."
)
# Opens a chart over the whole window (chart_tools.js): on every chart and panel of a report.
EXPAND = mark_safe(
    '<button type="button" class="link chart-expand" data-expand aria-pressed="false">'
    "Expand</button>"
)
X_TITLES = {"step": "step", "time": "time (UTC)", "relative": "minutes since the run started"}


@dataclass
class Figure:
    """A chart or panel block ready for the page: the Plotly figure and how the page treats it.

    A chart's traces name their run and key (``meta``), which live points extend; a panel
    (``kind`` scatter, bar, parallel, importance) is drawn again from the server when its
    runs move, so it lists them (``runs``) and the metric keys it reads (``keys``).
    """

    block: int
    figure: dict[str, Any]
    live: bool
    smoothing: float = 0.0
    x: str = "step"
    projects: list[str] = field(default_factory=list)  # new runs here may join the chart
    thinned_to: int | None = None  # points per line, when the page budget thinned it
    asked: int = blocks.DEFAULT_MAX_POINTS
    kind: str = "chart"
    runs: list[int] = field(default_factory=list)  # a panel's runs
    keys: set[str] = field(default_factory=set)  # a panel's summary keys

    def as_dict(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "kind": self.kind,
            "figure": self.figure,
            "live": self.live,
            "smoothing": self.smoothing,
            "x": self.x,
            "projects": self.projects,
            "runs": self.runs,
        }


@dataclass
class Rendered:
    html: str
    figures: list[Figure]
    errors: list[str]
    thinned: int = 0  # charts the page budget drew thinner than asked
    left_out: int = 0  # charts past the page budget, drawn as a note instead
    sources: Sources | None = None
    media: frozenset[int] = frozenset()  # images shown: all a share link may serve
    # the live media, table, histogram and logs blocks, and what each watches
    live_blocks: tuple[media_blocks.LiveBlock, ...] = ()

    @property
    def budget_note(self) -> str:
        """One line for the top of the page when the budget changed what it shows."""
        if not (self.thinned or self.left_out):
            return ""
        parts = [f"thinned {self.thinned} chart{pluralize(self.thinned)}"] if self.thinned else []
        if self.left_out:
            parts.append(f"left out {self.left_out} chart{pluralize(self.left_out)}")
        return (
            f"To stay within its budget of {budget.PAGE_POINTS:,} chart points, "
            f"this page {' and '.join(parts)}: see the notes below."
        )

    @property
    def live_runs(self) -> list[int]:
        """Runs whose new points or status move a live chart or panel (what the page
        subscribes to)."""
        return sorted(self.live_keys)

    @property
    def live_keys(self) -> dict[int, set[str]]:
        """Per run of a live chart or panel, the metric keys they draw of it."""
        keys: dict[int, set[str]] = {}
        for figure in self.figures:
            if not figure.live:
                continue
            if figure.kind == "chart":
                for trace in figure.figure["data"]:
                    keys.setdefault(trace["meta"]["run"], set()).add(trace["meta"]["key"])
            for run in figure.runs:
                keys.setdefault(run, set()).update(figure.keys)
        return keys

    @property
    def live_projects(self) -> list[str]:
        return sorted({p for figure in self.figures if figure.live for p in figure.projects})


@dataclass(frozen=True)
class Sources:
    """What a render read, so a cached render can tell whether it is still current."""

    runs: frozenset[int]  # every run drawn or named
    projects: frozenset[str]  # projects whose new runs may join a block ("" is the report's)


@dataclass
class _Block:
    index: int
    kind: str
    line: int
    parsed: blocks.Block | media_blocks.MediaKindBlock | None = None
    error: str | None = None
    left_out: bool = False  # past the page budget: a note box instead of the chart
    runs: list[Run] = field(default_factory=list)
    html: str = ""  # a media, table, histogram or logs block, drawn (media_blocks)


def pluralize(count: int) -> str:
    return "" if count == 1 else "s"


# --- Run selection ---------------------------------------------------------------------


def _query(selector: RunSelector, report: Report) -> Q | None:
    """The filters of a selector as a Q over the team's runs; None when it names no project."""
    if selector.project is None:
        query = Q(project_id=report.project_id)
    else:
        team, _, slug = selector.project.partition("/")
        if team != report.project.team.slug or not slug:
            return None
        query = Q(project__slug=slug)
    if selector.status:
        query &= Q(status__in=selector.status)
    if selector.group:
        query &= Q(group=selector.group)
    if selector.name:
        like = patterns.glob_to_like(selector.name)
        query &= patterns.like_condition("name", like, ignore_case=False, vendor=connection.vendor)
    for tag in selector.tags:
        query &= Q(tag_rows__name=tag)
    return query


def _resolve(items: list[_Block], report: Report) -> None:
    """Fill each block's ``runs`` (or its error): one query for all explicit ids."""
    team_runs = Run.objects.filter(project__team_id=report.project.team_id).select_related(
        "project__team"
    )
    wanted = {i for item in items if item.parsed for i in item.parsed.runs.ids}
    by_id = {run.pk: run for run in team_runs.filter(pk__in=wanted)} if wanted else {}
    for item in items:
        if item.parsed is None:
            continue
        selector = item.parsed.runs
        missing = [i for i in selector.ids if i not in by_id]
        if missing:
            item.error = f"Run {missing[0]} is not a run of team {report.project.team.slug}."
            continue
        runs = [by_id[i] for i in selector.ids]
        if selector.is_query:
            query = _query(selector, report)
            if query is None:
                item.error = (
                    f"Project `{selector.project}` is not in team {report.project.team.slug}."
                )
                continue
            found = team_runs.filter(query).distinct().order_by("-created_at", "-id")
            runs += [run for run in found[: selector.limit] if run.pk not in selector.ids]
        if not runs:
            item.error = "No run matches this block's `runs`."
        item.runs = runs


# --- Blocks to HTML -------------------------------------------------------------------------


def _error_box(item: _Block) -> str:
    return format_html(
        '<div class="block-error" role="note"><strong>{} block, line {}:</strong> {}</div>',
        item.kind,
        item.line,
        item.error,
    )


def _x_values(x: str, run: Run, history: History) -> list[Any]:
    if x not in ("time", "relative"):  # a metric: the page places each step (metricX)
        return history.steps
    if x == "time":
        return [datetime.fromtimestamp(t, UTC).isoformat() for t in history.timestamps]
    start = run.created_at.timestamp()
    return [round((t - start) / 60, 4) for t in history.timestamps]


def _x_of(history: History | None) -> dict[str, list[Any]]:
    """The points of the metric a chart's x axis names, as ``Labbook.valueAt`` reads them."""
    if history is None:
        return {"steps": [], "values": []}
    return {
        "steps": history.steps,
        "values": [v if v.__class__ is not str else None for v in history.values],
    }


@functools.lru_cache(maxsize=256)
def _trace_style(color: str, dash: str) -> dict[str, Any]:
    """A line trace's spec, built and checked by plotly once per colour and dash.

    SVG ("scatter"), not WebGL ("scattergl"): plotly's WebGL code compiles functions
    at run time, which the Content-Security-Policy forbids (no 'unsafe-eval').
    """
    trace = go.Scatter(mode="lines", line={"color": color, "dash": dash, "width": 1.5})
    return trace.to_plotly_json()


@functools.lru_cache(maxsize=256)
def _layout(title: str, x: str, log_y: bool) -> dict[str, Any]:
    """A chart's layout, built and checked by plotly once per distinct set of options."""
    layout = go.Layout(
        template="none",
        height=360,
        margin={"l": 56, "r": 16, "t": 40 if title else 16, "b": 48},
        title={"text": title} if title else None,
        xaxis={"title": {"text": X_TITLES.get(x, x)}, "type": "date" if x == "time" else "linear"},
        yaxis={"type": "log" if log_y else "linear"},
        # Beside the plot: its height holds for any number of runs (a taller legend scrolls).
        legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
        hovermode="x",
        font={"family": "system-ui, sans-serif", "size": 12},
    )
    return layout.to_plotly_json()


def _chart_figure(block: ChartBlock, runs: list[Run], found: dict[tuple, History]) -> dict:
    """A Plotly figure: specs from plotly's own validators, point arrays added as they are.

    Plotly's validators walk every element of ``x`` and ``y`` (and deep-copy
    them), which would cost more than the history read; the styles and the
    layout are checked once and reused, the plain number lists need no check.
    """
    traces = []
    for run in runs:
        for key_index, key in enumerate(block.metrics):
            history = found.get((run.pk, key))
            if history is None:
                continue
            color = run_color(run.project_index)
            trace = copy.deepcopy(_trace_style(color, DASHES[key_index % len(DASHES)]))
            trace["name"] = run.name if len(block.metrics) == 1 else f"{run.name} · {key}"
            trace["meta"] = {
                "run": run.pk,
                "key": key,
                "last_step": history.steps[-1] if history.steps else -1,
                "start": run.created_at.timestamp(),
            }
            if block.x not in blocks.X_AXES:  # the page places each step at x's value there
                trace["meta"]["x_of"] = _x_of(found.get((run.pk, block.x)))
            if block.group_by:
                labels = presentation.group_labels(run, block.group_by)
                if len(block.metrics) > 1:  # a group's line per metric
                    labels = [f"{label} · {key}" for label in labels]
                trace["meta"]["groups"] = labels
            trace["x"] = _x_values(block.x, run, history)
            trace["y"] = [v if v.__class__ is not str else None for v in history.values]
            if len(history.steps) <= MARKED_UP_TO:
                trace["mode"] = "lines+markers"
                trace["marker"] = {"color": color, "size": 5}
            traces.append(trace)
    layout = copy.deepcopy(_layout(block.title, block.x, block.log_y))
    if block.group_by:
        # bands.js draws each group's mean and band from the runs' lines, live or frozen.
        grouping = {"group_by": block.group_by, "band": block.band, "marked_up_to": MARKED_UP_TO}
        layout["meta"] = grouping
    return {"data": traces, "layout": layout}


def _charts(items: list[_Block], frozen: dict[str, Any], report: Report) -> dict[int, Figure]:
    """Figures of the chart blocks that fit the page budget (``reports_app.budget``): live
    ones from current history, read at their allowance; frozen ones as saved."""
    charts = [i for i in items if isinstance(i.parsed, ChartBlock) and i.error is None]
    fresh = [i for i in charts if _is_fresh(i, frozen)]
    series = _series(fresh)
    demands = [
        _demand(i, series) if _is_fresh(i, frozen) else _frozen_demand(frozen[str(i.index)])
        for i in charts
    ]
    allowances = dict(zip([i.index for i in charts], budget.plan(demands).allowances, strict=True))
    read = _read(fresh, allowances, series)
    figures: dict[int, Figure | None] = {}
    for item, demand in zip(charts, demands, strict=True):
        allowance = allowances[item.index]
        if allowance is None:
            item.left_out = True
        elif isinstance(demand, budget.Lines):
            found = read.get((allowance, _by_time(item)), {})
            figure = _fresh_figure(item, series, found, report)
            if figure is not None and budget.thinned(demand, allowance):
                figure.thinned_to = allowance
            figures[item.index] = figure
        else:
            figures[item.index] = _figure(item, _in_svg(frozen[str(item.index)]), report)
    return {index: figure for index, figure in figures.items() if figure is not None}


def _chart(item: _Block) -> ChartBlock:
    """The block of a chart item (``_charts`` picks the items whose block is a chart)."""
    assert isinstance(item.parsed, ChartBlock)
    return item.parsed


def _is_fresh(item: _Block, frozen: dict[str, Any]) -> bool:
    return _chart(item).live or str(item.index) not in frozen


def _series(fresh: list[_Block]) -> dict[tuple[int, str], MetricSeries]:
    """The stored series of every (run, metric) the charts draw, in one query."""
    wanted = {pair for item in fresh for pair in _pairs(item)}
    if not wanted:
        return {}
    rows = MetricSeries.objects.filter(
        run_id__in={run_id for run_id, _ in wanted}, key__in={key for _, key in wanted}
    )
    return {(s.run_id, s.key): s for s in rows if s.count}


def _demand(item: _Block, series: dict[tuple[int, str], MetricSeries]) -> budget.Lines:
    counts = tuple(series[pair].count for pair in _pairs(item) if pair in series)
    return budget.Lines(asked=_chart(item).max_points, counts=counts, x=_chart(item).x)


def _frozen_demand(figure: dict[str, Any]) -> budget.Fixed:
    points = sum(len(trace.get("y") or ()) for trace in figure.get("data", []))
    return budget.Fixed(points=points, size=len(orjson.dumps(figure)))


def _read(
    fresh: list[_Block],
    allowances: dict[int, int | None],
    series: dict[tuple[int, str], MetricSeries],
) -> dict[tuple[int, bool], dict[int, History]]:
    """Histories of the drawn charts, by (points per line, by time) then series id: one
    ``histories`` call per distinct pair, so the cost stays fixed however many charts."""
    groups: dict[tuple[int, bool], dict[int, MetricSeries]] = {}
    for item in fresh:
        allowance = allowances[item.index]
        if allowance is not None:
            key = (allowance, _by_time(item))
            group = groups.setdefault(key, {})
            group.update({series[p].pk: series[p] for p in _pairs(item) if p in series})
    return {
        (n, by_time): histories(list(group.values()), max_points=n, timestamps=by_time)
        for (n, by_time), group in groups.items()
    }


def _fresh_figure(
    item: _Block,
    series: dict[tuple[int, str], MetricSeries],
    read: dict[int, History],
    report: Report,
) -> Figure | None:
    found = {p: read[series[p].pk] for p in _pairs(item) if p in series}
    block = _chart(item)
    if not any(key in block.metrics for _, key in found):
        keys = ", ".join(f"`{key}`" for key in block.metrics)
        item.error = f"None of these runs logged {keys}."
        return None
    if block.x not in blocks.X_AXES and not any(key == block.x for _, key in found):
        item.error = f"None of these runs logged `{block.x}`, the x axis."
        return None
    if _chart(item).group_by == "tags":
        prefetch_related_objects(item.runs, "tag_rows")
    return _figure(item, _chart_figure(_chart(item), item.runs, found), report)


def _figure(item: _Block, figure: dict[str, Any], report: Report) -> Figure:
    block = _chart(item)
    watched = block.runs.project or report.project.full_name
    projects = [watched] if block.runs.is_query and block.live else []
    return Figure(
        item.index, figure, block.live, block.smoothing, block.x, projects, asked=block.max_points
    )


def _leave_out_past_bytes(items: list[_Block], figures: dict[int, Figure]) -> None:
    """Enforce ``PAGE_FIGURE_BYTES`` on the figures as built (charts and panels, in the
    page's order), not only as planned."""
    total = 0
    for item in items:
        if item.index in figures:
            size = len(orjson.dumps(figures[item.index].figure))
            if total + size > budget.PAGE_FIGURE_BYTES:
                del figures[item.index]
                item.left_out = True
            else:
                total += size


def _in_svg(figure: dict[str, Any]) -> dict[str, Any]:
    """A figure frozen when charts drew with WebGL, drawn in SVG as charts are now."""
    data = [
        {**trace, "type": "scatter"} if trace.get("type") == "scattergl" else trace
        for trace in figure.get("data", [])
    ]
    return {**figure, "data": data}


# --- Panels: one value per run ------------------------------------------------------------


def _panel(item: _Block) -> Panel:
    assert isinstance(item.parsed, Panel)  # _panels picks the items whose block is a panel
    return item.parsed


def _panels(
    items: list[_Block], frozen: dict[str, Any], report: Report, *, public: bool
) -> dict[int, Figure]:
    """Figures of the panel blocks: live ones from the runs as they are now, frozen ones as
    saved. A panel with nothing to draw becomes its error box."""
    found = [i for i in items if isinstance(i.parsed, Panel) and i.error is None]
    fresh = {i.index for i in found if _panel(i).live or str(i.index) not in frozen}
    runs = [run for item in found if item.index in fresh for run in item.runs]
    prefetch_related_objects(runs, "tag_rows", "metric_series")
    figures = {}
    for item in found:
        block = _panel(item)
        if item.index in fresh:
            try:
                drawn = panels.draw(block, item.runs, public=public)
            except panels.PanelError as error:
                item.error = error.message
                continue
            figure = drawn.figure
            figure["layout"]["meta"]["note"] = drawn.note
        else:
            figure = frozen[str(item.index)]
        watched = block.runs.project or report.project.full_name
        figures[item.index] = Figure(
            item.index,
            figure,
            block.live,
            projects=[watched] if block.runs.is_query and block.live else [],
            kind=block.kind,
            runs=list(figure["layout"].get("meta", {}).get("runs", [])),
            keys=panels.summary_keys(block),
        )
    return figures


def _panel_html(item: _Block, figure: Figure) -> str:
    block = _panel(item)
    note = figure.figure["layout"].get("meta", {}).get("note", "")
    notes = ("" if block.live else FROZEN_NOTE) + (
        format_html('<p class="chart-note">{}</p>', note) if note else ""
    )
    label = block.title or f"{block.kind} of {len(figure.runs)} runs"
    return format_html(
        '<figure class="report-chart report-panel" id="block-{}" data-block="{}" data-panel="{}">{}'
        '<div class="plot" data-figure="{}" role="img" aria-label="{} panel: {}"></div>{}</figure>',
        item.index,
        item.index,
        block.kind,
        EXPAND,
        item.index,
        block.kind.capitalize(),
        label,
        mark_safe(notes),  # noqa: S308 - constants and format_html
    )


def _pairs(item: _Block) -> list[tuple[int, str]]:
    """The (run, metric) series a chart reads: its lines, and the metric its x axis names."""
    keys = list(_chart(item).metrics)
    if _chart(item).x not in blocks.X_AXES and _chart(item).x not in keys:
        keys.append(_chart(item).x)
    return [(run.pk, key) for run in item.runs for key in keys]


def _by_time(item: _Block) -> bool:
    """Whether the chart's x axis needs the points' timestamps."""
    return _chart(item).x in ("time", "relative")


def _chart_notes(item: _Block, figure: Figure) -> str:
    notes = "" if _chart(item).live else FROZEN_NOTE
    if figure.thinned_to is not None:
        notes += format_html(THINNED_NOTE, f"{figure.thinned_to:,}", f"{figure.asked:,}")
    return mark_safe(notes)  # noqa: S308 - constants and format_html


def _chart_html(item: _Block, figure: Figure) -> str:
    title = _chart(item).title or ", ".join(_chart(item).metrics)
    note = _chart_notes(item, figure)
    return format_html(
        '<figure class="report-chart" id="block-{}" data-block="{}">{}'
        '<div class="plot" data-figure="{}" role="img" aria-label="Chart: {}"></div>{}</figure>',
        item.index,
        item.index,
        EXPAND,
        item.index,
        title,
        note,
    )


def _runs_html(item: _Block, *, public: bool) -> str:
    assert isinstance(item.parsed, RunsBlock)  # only a runs block renders as a runs table
    columns = list(item.parsed.columns)
    rows = [presentation.run_row(run, now=datetime.now(UTC), columns=columns) for run in item.runs]
    context = {"rows": rows, "columns": columns, "public": public}
    return render_to_string("reports_app/blocks/runs.html", context)


def _compare_html(item: _Block, *, public: bool) -> str:
    runs = item.runs
    context = {
        "runs": [{**presentation.chart_run(run), "run": run} for run in runs],
        "rows": presentation.diff_rows([flatten(run.config) for run in runs]),
        "public": public,
    }
    return render_to_string("reports_app/blocks/compare.html", context)


def _prefetch_for_tables(items: list[_Block]) -> None:
    """Tags and metric summaries for runs and compare blocks, in two queries."""
    runs = [run for item in items if isinstance(item.parsed, RunsBlock) for run in item.runs]
    if runs:
        prefetch_related_objects(runs, "tag_rows", "metric_series")


def _left_out_box(item: _Block) -> str:
    size = f"{budget.PAGE_POINTS:,} points or {budget.PAGE_FIGURE_BYTES / 1e6:g} MB"
    return format_html(
        '<div class="block-note" role="note"><strong>{} block, line {}:</strong> {}</div>',
        item.kind,
        item.line,
        LEFT_OUT.format(size),
    )


def _block_html(item: _Block, figures: dict[int, Figure], *, public: bool) -> str:
    if item.error is not None:
        return _error_box(item)
    if item.left_out:
        return _left_out_box(item)
    if isinstance(item.parsed, ChartBlock):
        return _chart_html(item, figures[item.index])
    if isinstance(item.parsed, RunsBlock):
        return _runs_html(item, public=public)
    if isinstance(item.parsed, CompareBlock):
        return _compare_html(item, public=public)
    if isinstance(item.parsed, Panel):
        return _panel_html(item, figures[item.index])
    if isinstance(item.parsed, media_blocks.TYPES):
        return item.html
    raise AssertionError(item.kind)


# --- Media, table, histogram and logs blocks (reports_app.media_blocks) --------------------


def _media(items: list[_Block], frozen: dict[str, Any], *, public: bool) -> media_blocks.Drawn:
    """Draw the page's media blocks: their HTML on their items, errors and notes too."""
    placed = [
        media_blocks.Placed(i.index, i.parsed, i.runs, public=public)
        for i in items
        if isinstance(i.parsed, media_blocks.TYPES) and i.error is None
    ]
    drawn = media_blocks.draw(placed, frozen) if placed else media_blocks.Drawn()
    for item in items:
        item.html = drawn.html.get(item.index, item.html)
        item.error = drawn.errors.get(item.index, item.error)
    return drawn


def _media_figures(drawn: media_blocks.Drawn) -> dict[int, Figure]:
    """Histogram blocks' heatmaps, drawn by the page as panels are (never live)."""
    return {
        index: Figure(index, figure, live=False, kind="histogram")
        for index, figure in drawn.figures.items()
    }


def _wrapped(item: _Block, html: str) -> str:
    """A media-kind block (its error box too) in an element the page swaps when it is drawn
    again (``render_block``): a live block with no images yet fills in when the first comes."""
    if not isinstance(item.parsed, media_blocks.TYPES):
        return html
    return format_html(
        '<div class="report-media-block" data-drawn-block="{}">{}</div>',
        item.index,
        mark_safe(html),  # noqa: S308 - drawn by _block_html, which escapes
    )


def _live_blocks(items: list[_Block]) -> tuple[media_blocks.LiveBlock, ...]:
    """What each live media-kind block watches; one whose runs did not resolve watches nothing."""
    found = (
        media_blocks.live_block(i.index, i.parsed, i.runs)
        for i in items
        if isinstance(i.parsed, media_blocks.TYPES)
    )
    return tuple(block for block in found if block is not None)


@dataclass
class DrawnBlock:
    """One media-kind block drawn again alone: its HTML (wrapped as on the page), its heatmap
    (a histogram block), and the images drawn with it (a share link fills in their sources)."""

    index: int
    html: str
    figure: dict[str, Any] | None
    images: frozenset[int]


def _media_items(report: Report) -> list[_Block]:
    """The report's blocks, parsed, and the media-kind ones among them resolved."""
    _html, source = markup.convert(report.body)
    items = _parse(source)
    _resolve([i for i in items if isinstance(i.parsed, media_blocks.TYPES)], report)
    return items


def render_block(
    report: Report, index: int, *, frozen: dict[str, Any], public: bool = False
) -> DrawnBlock | None:
    """Block ``index`` of the report drawn again, when it is a media, table, histogram or logs
    block (None otherwise): what a live page swaps in when the block's run logged.

    The media blocks above it are drawn too, unseen: they spend the page's budgets first,
    so the block is left out exactly when the whole page leaves it out.
    """
    _html, source = markup.convert(report.body)
    items = _parse(source)
    if not 0 <= index < len(items) or not isinstance(items[index].parsed, media_blocks.TYPES):
        return None
    mine = [i for i in items[: index + 1] if isinstance(i.parsed, media_blocks.TYPES)]
    _resolve(mine, report)
    drawn = _media(mine, frozen, public=public)
    item = items[index]
    html = _wrapped(item, _error_box(item) if item.error is not None else item.html)
    return DrawnBlock(index, html, drawn.figures.get(index), frozenset(drawn.images))


def shown_images(report: Report, *, frozen: dict[str, Any]) -> set[int]:
    """The images the report's media blocks show, without rendering it (share-link images)."""
    items = _media_items(report)
    placed = [
        media_blocks.Placed(i.index, i.parsed, i.runs, public=True)
        for i in items
        if isinstance(i.parsed, media_blocks.MediaBlock) and i.error is None
    ]
    return media_blocks.shown_images(placed, frozen)


# --- end media blocks ----------------------------------------------------------------------


# --- Inline run links ----------------------------------------------------------------------


def _run_links(source: markup.Source, report: Report, *, public: bool) -> dict[int, str]:
    runs = Run.objects.filter(
        pk__in=set(source.run_refs), project__team_id=report.project.team_id
    ).select_related("project__team")
    return {run.pk: run_ref_html(run, linked=not public) for run in runs}


def run_ref_html(run: Run, *, linked: bool = True) -> str:
    """A run named inline (``run:<id>`` of a report or comment): its name, linked, and status."""
    badge = format_html('<span class="badge badge-{}">{}</span>', run.status, run.status)
    if not linked:
        return format_html('<span class="run-ref">{} {}</span>', run.name, badge)
    return format_html(
        '<a class="run-ref" href="{}">{}</a> {}', run.get_absolute_url(), run.name, badge
    )


def _missing_run(run_id: int) -> str:
    return format_html('<span class="block-error inline">run:{} not found</span>', run_id)


# --- Entry points ----------------------------------------------------------------------------


def _parse(source: markup.Source) -> list[_Block]:
    items = []
    for index, (kind, text, line) in enumerate(source.blocks):
        item = _Block(index, kind, line)
        if index >= blocks.MAX_BLOCKS:  # saved before the limit, or a preview
            item.error = (
                f"A report draws at most {blocks.MAX_BLOCKS} blocks; this is block {index + 1}."
            )
            items.append(item)
            continue
        try:
            item.parsed = parse_block(kind, text)
        except BlockError as error:
            item.error = error.message
        items.append(item)
    return items


def parse_block(kind: str, text: str) -> blocks.Block | media_blocks.MediaKindBlock:
    """Any kind of block of ``blocks.KINDS``: the media kinds are parsed beside the others."""
    if kind in media_blocks.KINDS:
        return media_blocks.parse(kind, text)
    return blocks.parse(kind, text)


@in_render_slot
def render_report(
    report: Report, *, body: str | None = None, frozen: dict | None = None, public: bool = False
) -> Rendered:
    """The report (or ``body``, for previews and old revisions) as safe HTML and figures.

    ``public`` renders for a share link: runs are named but not linked.
    """
    html, source = markup.convert(report.body if body is None else body)
    items = _parse(source)
    _resolve(items, report)
    media = _media(items, frozen or {}, public=public)
    figures = _drawn(items, frozen or {}, report, public=public, more=_media_figures(media))
    _prefetch_for_tables(items)
    links = _run_links(source, report, public=public)
    html = markup.fill(
        html,
        source,
        block=lambda i: _wrapped(items[i], _block_html(items[i], figures, public=public)),
        run_link=lambda run_id: links.get(run_id) or _missing_run(run_id),
    )
    errors = [f"{i.kind} block, line {i.line}: {i.error}" for i in items if i.error]
    return Rendered(
        html=html,
        figures=[figures[k] for k in sorted(figures)],
        errors=errors,
        thinned=sum(1 for figure in figures.values() if figure.thinned_to is not None),
        left_out=sum(1 for item in items if item.left_out),
        sources=_sources(items, source),
        media=frozenset(media.images),
        live_blocks=_live_blocks(items),
    )


def _drawn(
    items: list[_Block],
    frozen: dict[str, Any],
    report: Report,
    *,
    public: bool,
    more: dict[int, Figure] | None = None,
) -> dict[int, Figure]:
    """The figures of every chart and panel block (and ``more``: histograms) that fits the
    page's budget."""
    figures = {**_charts(items, frozen, report), **_panels(items, frozen, report, public=public)}
    figures.update(more or {})
    _leave_out_past_bytes(items, figures)
    return figures


def _sources(items: list[_Block], source: markup.Source) -> Sources:
    queries = [i.parsed.runs for i in items if i.parsed is not None and i.parsed.runs.is_query]
    return Sources(
        runs=frozenset(run.pk for item in items for run in item.runs) | set(source.run_refs),
        projects=frozenset(selector.project or "" for selector in queries),
    )


def freeze(report: Report) -> dict[str, Any]:
    """Figures of the ``live: false`` chart and panel blocks, by block index, to store with a
    revision. Panels freeze as a share link draws them: runs named, not linked."""
    if "live" not in report.body:
        return {}
    _html, source = markup.convert(report.body)
    drawn = (ChartBlock, Panel, *media_blocks.TYPES)
    items = [i for i in _parse(source) if isinstance(i.parsed, drawn) and not i.parsed.live]
    if not items:
        return {}
    _resolve(items, report)
    pinned = _media(items, {}, public=True).pins  # what media blocks showed
    charts = [i for i in items if not isinstance(i.parsed, media_blocks.TYPES)]
    figures = _drawn(charts, {}, report, public=True)
    return {str(index): f.figure for index, f in figures.items()} | {
        str(index): pins for index, pins in pinned.items()
    }
