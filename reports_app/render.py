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

import plotly.graph_objects as go
from django.db import connection
from django.db.models import Q, prefetch_related_objects
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from reports_app import blocks, markup, pages, run_pages
from reports_app.blocks import BlockError, ChartBlock, CompareBlock, RunsBlock, RunSelector
from reports_app.models import Report
from tracking import patterns
from tracking.history import History, histories
from tracking.models import MetricSeries, Run

DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
FROZEN_NOTE = '<p class="chart-note">Frozen when the report was saved.</p>'
X_TITLES = {"step": "step", "time": "time (UTC)", "relative": "minutes since the run started"}


@dataclass
class Figure:
    """A chart block ready for the page: the Plotly figure and how the page treats it."""

    block: int
    figure: dict[str, Any]
    live: bool
    smoothing: float
    x: str
    projects: list[str] = field(default_factory=list)  # new runs here may join the chart

    def as_dict(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "figure": self.figure,
            "live": self.live,
            "smoothing": self.smoothing,
            "x": self.x,
            "projects": self.projects,
        }


@dataclass
class Rendered:
    html: str
    figures: list[Figure]
    errors: list[str]

    @property
    def live_runs(self) -> list[int]:
        """Runs whose new points extend a live chart (what the page subscribes to)."""
        runs = {
            trace["meta"]["run"]
            for figure in self.figures
            if figure.live
            for trace in figure.figure["data"]
        }
        return sorted(runs)

    @property
    def live_keys(self) -> dict[int, set[str]]:
        """Per run of a live chart, the metric keys those charts draw of it."""
        keys: dict[int, set[str]] = {}
        for figure in self.figures:
            if figure.live:
                for trace in figure.figure["data"]:
                    keys.setdefault(trace["meta"]["run"], set()).add(trace["meta"]["key"])
        return keys

    @property
    def live_projects(self) -> list[str]:
        return sorted({p for figure in self.figures if figure.live for p in figure.projects})


@dataclass
class _Block:
    index: int
    kind: str
    line: int
    parsed: blocks.Block | None = None
    error: str | None = None
    runs: list[Run] = field(default_factory=list)


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
    if x == "step":
        return history.steps
    if x == "time":
        return [datetime.fromtimestamp(t, UTC).isoformat() for t in history.timestamps]
    start = run.created_at.timestamp()
    return [round((t - start) / 60, 4) for t in history.timestamps]


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
        margin={"l": 56, "r": 16, "t": 40 if title else 16, "b": 80},
        title={"text": title} if title else None,
        xaxis={"title": {"text": X_TITLES[x]}, "type": "date" if x == "time" else "linear"},
        yaxis={"type": "log" if log_y else "linear"},
        legend={"orientation": "h", "y": -0.32},
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
    for run_index, run in enumerate(runs):
        for key_index, key in enumerate(block.metrics):
            history = found.get((run.pk, key))
            if history is None:
                continue
            color = run_pages.COLORS[run_index % len(run_pages.COLORS)]
            trace = copy.deepcopy(_trace_style(color, DASHES[key_index % len(DASHES)]))
            trace["name"] = run.name if len(block.metrics) == 1 else f"{run.name} · {key}"
            trace["meta"] = {
                "run": run.pk,
                "key": key,
                "last_step": history.steps[-1] if history.steps else -1,
                "start": run.created_at.timestamp(),
            }
            trace["x"] = _x_values(block.x, run, history)
            trace["y"] = [v if v.__class__ is not str else None for v in history.values]
            traces.append(trace)
    return {"data": traces, "layout": copy.deepcopy(_layout(block.title, block.x, block.log_y))}


def _charts(items: list[_Block], frozen: dict[str, Any], report: Report) -> dict[int, Figure]:
    """Figures of every chart block; live ones from current history, frozen ones as saved."""
    charts = [i for i in items if isinstance(i.parsed, ChartBlock) and i.error is None]
    fresh = [i for i in charts if i.parsed.live or str(i.index) not in frozen]
    wanted = {(run.pk, key) for i in fresh for run in i.runs for key in i.parsed.metrics}
    series = {}
    if wanted:
        rows = MetricSeries.objects.filter(
            run_id__in={run_id for run_id, _ in wanted}, key__in={key for _, key in wanted}
        )
        series = {(s.run_id, s.key): s for s in rows if s.count}
    groups: dict[tuple, dict[int, MetricSeries]] = {}  # (max_points, by time) -> series by id
    for item in fresh:
        for pair in _pairs(item):
            if pair in series:
                groups.setdefault(_read_kind(item), {})[series[pair].pk] = series[pair]
    read = {
        (n, by_time): histories(list(group.values()), max_points=n, timestamps=by_time)
        for (n, by_time), group in groups.items()
    }
    figures = {}
    for item in charts:
        block = item.parsed
        if item in fresh:
            kind = _read_kind(item)
            found = {p: read[kind][series[p].pk] for p in _pairs(item) if p in series}
            if not found:
                keys = ", ".join(f"`{key}`" for key in block.metrics)
                item.error = f"None of these runs logged {keys}."
                continue
            figure = _chart_figure(block, item.runs, found)
        else:
            figure = _in_svg(frozen[str(item.index)])
        watched = block.runs.project or report.project.full_name
        projects = [watched] if block.runs.is_query and block.live else []
        figures[item.index] = Figure(
            item.index, figure, block.live, block.smoothing, block.x, projects
        )
    return figures


def _in_svg(figure: dict[str, Any]) -> dict[str, Any]:
    """A figure frozen when charts drew with WebGL, drawn in SVG as charts are now."""
    data = [
        {**trace, "type": "scatter"} if trace.get("type") == "scattergl" else trace
        for trace in figure.get("data", [])
    ]
    return {**figure, "data": data}


def _read_kind(item: _Block) -> tuple[int, bool]:
    """How a chart reads history: its max_points, and whether it needs timestamps."""
    return item.parsed.max_points, item.parsed.x != "step"


def _pairs(item: _Block) -> list[tuple[int, str]]:
    return [(run.pk, key) for run in item.runs for key in item.parsed.metrics]


def _chart_html(item: _Block, figure: Figure) -> str:
    title = item.parsed.title or ", ".join(item.parsed.metrics)
    note = "" if item.parsed.live else mark_safe(FROZEN_NOTE)  # noqa: S308 - a constant
    return format_html(
        '<figure class="report-chart" id="block-{}" data-block="{}">'
        '<div class="plot" data-figure="{}" role="img" aria-label="Chart: {}"></div>{}</figure>',
        item.index,
        item.index,
        item.index,
        title,
        note,
    )


def _runs_html(item: _Block, *, public: bool) -> str:
    columns = list(item.parsed.columns)
    rows = [pages.run_row(run, now=datetime.now(UTC), columns=columns) for run in item.runs]
    context = {"rows": rows, "columns": columns, "public": public}
    return render_to_string("reports_app/blocks/runs.html", context)


def _compare_html(item: _Block, *, public: bool) -> str:
    runs = item.runs
    context = {
        "runs": [{**run_pages.chart_run(run, i), "run": run} for i, run in enumerate(runs)],
        "rows": run_pages.diff_rows([run_pages.flatten(run.config) for run in runs]),
        "public": public,
    }
    return render_to_string("reports_app/blocks/compare.html", context)


def _prefetch_for_tables(items: list[_Block]) -> None:
    """Tags and metric summaries for runs and compare blocks, in two queries."""
    runs = [run for item in items if isinstance(item.parsed, RunsBlock) for run in item.runs]
    if runs:
        prefetch_related_objects(runs, "tag_rows", "metric_series")


def _block_html(item: _Block, figures: dict[int, Figure], *, public: bool) -> str:
    if item.error is not None:
        return _error_box(item)
    if isinstance(item.parsed, ChartBlock):
        return _chart_html(item, figures[item.index])
    if isinstance(item.parsed, RunsBlock):
        return _runs_html(item, public=public)
    if isinstance(item.parsed, CompareBlock):
        return _compare_html(item, public=public)
    raise AssertionError(item.kind)


# --- Inline run links ----------------------------------------------------------------------


def _run_links(source: markup.Source, report: Report, *, public: bool) -> dict[int, str]:
    runs = Run.objects.filter(
        pk__in=set(source.run_refs), project__team_id=report.project.team_id
    ).select_related("project__team")
    links = {}
    for run in runs:
        badge = format_html('<span class="badge badge-{}">{}</span>', run.status, run.status)
        if public:
            links[run.pk] = format_html('<span class="run-ref">{} {}</span>', run.name, badge)
        else:
            links[run.pk] = format_html(
                '<a class="run-ref" href="{}">{}</a> {}', pages.run_path(run), run.name, badge
            )
    return links


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
            item.parsed = blocks.parse(kind, text)
        except BlockError as error:
            item.error = error.message
        items.append(item)
    return items


def render_report(
    report: Report, *, body: str | None = None, frozen: dict | None = None, public: bool = False
) -> Rendered:
    """The report (or ``body``, for previews and old revisions) as safe HTML and figures.

    ``public`` renders for a share link: runs are named but not linked.
    """
    html, source = markup.convert(report.body if body is None else body)
    items = _parse(source)
    _resolve(items, report)
    figures = _charts(items, frozen or {}, report)
    _prefetch_for_tables(items)
    links = _run_links(source, report, public=public)
    html = markup.fill(
        html,
        source,
        block=lambda i: _block_html(items[i], figures, public=public),
        run_link=lambda run_id: links.get(run_id) or _missing_run(run_id),
    )
    errors = [f"{i.kind} block, line {i.line}: {i.error}" for i in items if i.error]
    return Rendered(html=html, figures=[figures[k] for k in sorted(figures)], errors=errors)


def freeze(report: Report) -> dict[str, Any]:
    """Figures of the ``live: false`` chart blocks, by block index, to store with a revision."""
    if "live" not in report.body:
        return {}
    _html, source = markup.convert(report.body)
    items = [i for i in _parse(source) if isinstance(i.parsed, ChartBlock) and not i.parsed.live]
    if not items:
        return {}
    _resolve(items, report)
    return {str(index): f.figure for index, f in _charts(items, {}, report).items()}
