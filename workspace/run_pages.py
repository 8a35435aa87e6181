"""What the run and compare pages show: small read functions the views call.

Reads go through ``tracking.selectors`` (access checks in one place). Both
pages cost a fixed number of queries however many metrics, tags or points a
run has: the charts themselves load their data from the history API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib.auth.models import User
from django.http import QueryDict
from django.template.loader import render_to_string
from django.urls import reverse

from alerts.models import Alert
from kernel.charts import MARKED_UP_TO, MAX_CHART_RUNS, line_points
from reports_app import markup
from tracking import console, media, selectors
from tracking.mlflow import artifacts
from tracking.models import WRITE_ROLES, MetricSeries, Project, Run, RunStatus, SdkAlert
from tracking.presentation import (
    chart_run,
    diff_rows,
    format_duration,
    format_value,
    run_duration,
    run_row,
)
from tracking.validation import flatten, float_to_json
from workspace import chart_groups, pages, sweep_panels
from workspace.artifact_pages import run_lineage

if TYPE_CHECKING:
    from tracking.models import RunWithRole

TRACEBACK_TAIL_LINES = 40
SDK_ALERTS_SHOWN = 20
ARTIFACTS_SHOWN = 200
MAX_COMPARE = MAX_CHART_RUNS
RUNS_SHOWN_OPEN = 20  # more compared runs than this: their list starts folded, charts first
CSV_PAGE = 50_000  # points per database read while streaming a CSV download
STATE_REFRESH_SECONDS = 15  # a running run's page reads its state again this often (last seen)
# The parts of the run page that show the run's state, each one template the page and its
# state endpoint both render: a page kept up to date live shows what a reload shows.
STATE_PARTS = {
    "badge": "workspace/includes/run_badge.html",
    "failure": "workspace/includes/run_failure.html",
    "facts": "workspace/includes/run_facts.html",
}
NOTES_TEMPLATE = "workspace/includes/run_notes.html"
MEDIA_TABLE_ROWS = 50  # rows a page of the Media section's table viewer shows
GIT_HOSTS = re.compile(r"^(?:https://|ssh://git@|git@)(github\.com|gitlab\.com|codeberg\.org)[:/]")


def series_path(run: Run, key: str) -> str:
    return reverse("api-metric-history", kwargs={"run_id": run.pk, "key": key})


def csv_path(run: Run, key: str) -> str:
    return f"{run.get_absolute_url()}/metrics.csv?{urlencode({'key': key})}"


# --- Shaping values -------------------------------------------------------------


def summary_values(run: Run, series: Iterable[MetricSeries]) -> dict[str, Any]:
    """The run's summary: explicit values win over each metric's last value."""
    values = {s.key: float_to_json(s.last_value) for s in series if s.count}
    values.update(flatten(run.summary))
    return dict(sorted(values.items()))


def traceback_tail(text: str) -> tuple[str, int]:
    """The last lines of a traceback, and how many lines were cut above them."""
    lines = text.rstrip().splitlines()
    cut = max(len(lines) - TRACEBACK_TAIL_LINES, 0)
    return "\n".join(lines[cut:]), cut


def commit_url(git: Mapping[str, Any]) -> str | None:
    """A link to the commit on a well-known forge, when the remote is one."""
    remote, commit = str(git.get("remote") or ""), str(git.get("commit") or "")
    match = GIT_HOSTS.match(remote)
    if not match or not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        return None
    path = remote[match.end() :].removesuffix(".git").strip("/")
    return f"https://{match.group(1)}/{path}/commit/{commit}"


# --- The run page -----------------------------------------------------------------


@dataclass
class Chart:
    """One chart: a metric key drawn for one or more runs (one trace each)."""

    key: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    last: str = ""
    low: str = ""
    high: str = ""
    count: int = 0
    csv_href: str = ""
    # The same as numbers (None: no finite value yet), for charts.js to keep up to date live.
    stats: dict[str, Any] | None = None


def _bound(value: float | None) -> float | str | None:
    """A series' min or max as JSON: None before a finite value, infinities as strings."""
    return None if value is None else float_to_json(value)


def _shown(value: float | None) -> str:
    """A series' min or max in the chart header; a dash before any finite value (charts.js
    shows the same)."""
    return "\N{EN DASH}" if value is None else format_value(float_to_json(value))


def run_charts(run: Run, series: list[MetricSeries]) -> list[Chart]:
    return [
        Chart(
            key=s.key,
            runs=[chart_run(run)],
            last=format_value(float_to_json(s.last_value)),
            low=_shown(s.min_value),
            high=_shown(s.max_value),
            count=s.count,
            csv_href=csv_path(run, s.key),
            stats={"min": _bound(s.min_value), "max": _bound(s.max_value), "count": s.count},
        )
        for s in series
    ]


def charts_config(
    charts: list[Chart], runs: list[Run], grouping: chart_groups.Grouping | None = None
) -> dict[str, Any]:
    """What ``charts.js`` reads from the page (``json_script``); ``grouping`` on the compare
    page: each run's groups by every choice, and the choice made."""
    labels = grouping.labels if grouping is not None else {}
    return {
        "runs": [
            {
                **chart_run(run),
                "status": run.status,
                "start": run.created_at.timestamp(),
                "groups": labels.get(run.pk, {}),
            }
            for run in runs
        ],
        "groupBy": grouping.group_by if grouping is not None else "",
        "band": grouping.band if grouping is not None else "std",
        "charts": [
            {
                "key": chart.key,
                "runs": [r["id"] for r in chart.runs],
                "stats": chart.stats,
                # per line; zooming in reads the visible range again at this many
                "maxPoints": line_points(len(chart.runs)),
            }
            for chart in charts
        ],
        "histories": reverse("api-metric-histories", kwargs={"key": "KEY"}),
        "maxRuns": MAX_CHART_RUNS,  # runs per read of the histories API
        "runsApi": reverse("api-runs"),
        "maxPoints": line_points(1),  # a chart that appears live: one run so far
        "markedUpTo": MARKED_UP_TO,
        "live": "/ws/live/",
        "project": runs[0].project.full_name if runs else "",  # pinned charts are per project
    }


# --- Artifact cards, kept up to date live --------------
# The run page's two artifact cards (versions logged and used; MLflow files), one template the
# page and its partial endpoint both render: the page swaps it in on a "run.artifacts" message.
ARTIFACT_CARDS = "workspace/includes/run_artifact_cards.html"


def artifact_cards_context(run: Run, user: User) -> dict[str, Any]:
    """What the artifact cards show of ``run`` to ``user``: a storage walk and two queries."""
    return {
        "run": run,
        **artifacts_context(run),
        "artifact_lineage": run_lineage(run, user),  # Versioned artifacts
        "artifact_cards_href": reverse(
            "run-artifact-cards",
            kwargs={"team": run.project.team.slug, "project": run.project.slug, "run_id": run.pk},
        ),
    }


def artifact_cards(run: Run, user: User) -> str:
    """The artifact cards rendered as the page renders them: what the page swaps in live."""
    return render_to_string(ARTIFACT_CARDS, artifact_cards_context(run, user))


# --- end Artifact cards ---


def artifacts_context(run: Run) -> dict[str, Any]:
    """The run's files (logged by the mlflow client), the first ARTIFACTS_SHOWN of them."""
    files = artifacts.artifact_walk(run)
    return {
        "artifacts": files[:ARTIFACTS_SHOWN],
        "artifacts_total": len(files),
        "artifacts_cut": len(files) > ARTIFACTS_SHOWN,
        "artifacts_base": f"{run.get_absolute_url()}/artifacts",
    }


# --- Media --------------
def media_config(run: Run) -> dict[str, Any]:
    """What ``media_panels.js`` reads from the page: where it reads the run's media keys and
    their items. No query: the script reads the keys (it reads them again at every socket
    subscription anyway), and the section stays hidden until there is one."""
    return {
        "run": run.pk,
        "keysApi": reverse("api-run-media", kwargs={"run_id": run.pk}),
        "itemsApi": reverse("api-media-history", kwargs={"run_id": run.pk, "key": "KEY"}),
        "maxItems": media.MAX_LIMIT,  # a heatmap's steps: the newest this many
        "stepItems": media.DEFAULT_LIMIT,  # images of one step
        "tableRows": MEDIA_TABLE_ROWS,
    }


# --- end Media ---


# --- Console and system metrics --------------
CONSOLE_TAIL = 500  # lines the Console card reads at first, and per "Load earlier"
CONSOLE_SHOWN = 5_000  # lines the box keeps; past it, the oldest go (live tail)


def console_config(run: Run) -> dict[str, Any]:
    """What ``console_panel.js`` reads from the page. No query: the script reads the tail
    (it must anyway) and shows the card once there is a line."""
    return {
        "run": run.pk,
        "api": reverse("api-run-console", kwargs={"run_id": run.pk}),
        "download": reverse("api-run-console-text", kwargs={"run_id": run.pk}),
        "tail": CONSOLE_TAIL,
        "shown": CONSOLE_SHOWN,
        "maxBytes": console.max_bytes(),
        "maxSearch": console.MAX_SEARCH,
    }


def split_system(values: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The training values, and the machine's (``system/*``) as rows ``{key, label, value}``
    (the label without the prefix the rows stand under), each in key order: the Summary
    card lists the machine's apart, folded, as the charts set them apart."""
    prefix = pages.SYSTEM_PREFIX
    system = [
        {"key": k, "label": k.removeprefix(prefix), "value": v}
        for k, v in values.items()
        if k.startswith(prefix)
    ]
    return {k: v for k, v in values.items() if not k.startswith(prefix)}, system


# --- end Console ---


def notes_html(run: Run) -> str:
    """The run's notes as HTML, sanitized as comments and reports are; "" without notes."""
    return markup.to_html(run.notes) if run.notes.strip() else ""


def notes_fragment(run: Run) -> str:
    """The notes as the page shows them: what an in-place edit puts back after saving."""
    return render_to_string(NOTES_TEMPLATE, {"notes_html": notes_html(run)})


def run_clock(run: Run, *, now: datetime) -> dict[str, Any]:
    """How the page keeps the duration current between two reads of the state: it grows
    from ``started`` while ``ticking`` (the run runs), by the server's clock (``now``)."""
    return {
        "id": run.pk,
        "status": run.status,
        "ticking": run.status == RunStatus.RUNNING and run.ended_at is None,
        "started": run.created_at.timestamp(),
        "now": now.timestamp(),
        "refresh": STATE_REFRESH_SECONDS,
        "href": f"{run.get_absolute_url()}/state",
    }


def run_state_context(run: Run, *, now: datetime) -> dict[str, Any]:
    """What the state parts (STATE_PARTS) show of ``run`` as of ``now``; no query."""
    tail, cut = traceback_tail(run.traceback)
    return {
        "run": run,
        "row": run_row(run, now=now),
        "duration": format_duration(run_duration(run, now=now)),
        "failed": run.is_failed,
        "traceback_tail": tail,
        "traceback_cut": cut,
        "commit_url": commit_url(run.git),
        "run_state": run_clock(run, now=now),
    }


def run_state(run: Run, *, now: datetime) -> dict[str, Any]:
    """The run's state as the page applies it live: the clock, and every part rendered."""
    context = run_state_context(run, now=now)
    parts = {part: render_to_string(template, context) for part, template in STATE_PARTS.items()}
    return {**context["run_state"], "parts": parts}


def run_page_context(user: User, run: RunWithRole, *, now: datetime) -> dict[str, Any]:
    """Everything the run page shows of ``run`` (from ``run_get_for_user``): four queries."""
    series = list(selectors.run_series(run))
    tags = [tag.name for tag in run.tag_rows.all()]
    alerts = list(SdkAlert.objects.filter(run=run).order_by("-created_at")[:SDK_ALERTS_SHOWN])
    incidents = list(
        Alert.objects.filter(run=run).select_related("rule", "acknowledged_by")[:SDK_ALERTS_SHOWN]
    )
    charts = run_charts(run, series)
    summary, system_summary = split_system(  # Console and system metrics
        {k: format_value(v) for k, v in summary_values(run, series).items()}
    )
    return {
        **run_state_context(run, now=now),
        "project": run.project,
        "project_href": run.project.get_absolute_url(),
        "can_edit": run.role in WRITE_ROLES,
        "notes_html": notes_html(run),
        "csv_base": f"{run.get_absolute_url()}/metrics.csv",
        "config": {k: format_value(v) for k, v in sorted(flatten(run.config).items())},
        "summary": summary,
        "system_summary": system_summary,  # Console and system metrics
        "metadata": {k: format_value(v) for k, v in sorted(flatten(run.metadata).items())},
        "tags": tags,
        "charts": charts,
        "charts_config": charts_config(charts, [run]),
        "sdk_alerts": alerts,
        "incidents": incidents,
        **artifact_cards_context(run, user),  # Artifacts, live
        "media_config": media_config(run),  # Media
        "console_config": console_config(run),  # Console
    }


# --- The compare page ---------------------------------------------------------------


def compare_runs(user: User, project: Project, ids: list[int]) -> list[Run]:
    """The project's runs among ``ids`` the user can read, in the order asked (three queries)."""
    found = selectors.runs_for_user(user, project=project).filter(pk__in=ids[:MAX_COMPARE])
    by_id = {run.pk: run for run in found}
    return [by_id[i] for i in ids if i in by_id]


def compare_charts(runs: list[Run]) -> list[Chart]:
    charts: dict[str, Chart] = {}
    for run in runs:
        for series in run.metric_series.all():
            if series.count:
                chart = charts.setdefault(series.key, Chart(key=series.key))
                chart.runs.append(chart_run(run))
    return [charts[key] for key in sorted(charts)]


def compare_page_context(
    user: User, project: Project, query: QueryDict, *, now: datetime
) -> dict[str, Any]:
    ids = pages.selected_run_ids(query)
    runs = compare_runs(user, project, ids)
    config_rows = diff_rows([flatten(run.config) for run in runs])
    summary_rows = diff_rows([summary_values(run, run.metric_series.all()) for run in runs])
    charts = compare_charts(runs)
    grouped = chart_groups.grouping(runs, config_rows, query)
    picked = sweep_panels.choices(runs, config_rows, summary_rows, query)
    sweep = sweep_panels.sweep_panels(runs, picked, config_rows)
    return {
        "project": project,
        "project_href": project.get_absolute_url(),
        "runs": [
            {**chart_run(run), "run": run, "href": run.get_absolute_url()}
            | {"duration": format_duration(run_duration(run, now=now))}
            for run in runs
        ],
        "missing": len(set(ids[:MAX_COMPARE])) - len(runs),
        "too_many": len(ids) > MAX_COMPARE,
        "max_compare": MAX_COMPARE,
        "runs_shown_open": RUNS_SHOWN_OPEN,
        "config_rows": config_rows,
        "config_differing": sum(row.differs for row in config_rows),
        "summary_rows": summary_rows,
        "charts": charts,
        "charts_config": charts_config(charts, runs, grouped),
        "grouping": grouped,
        "run_ids": ",".join(str(run.pk) for run in runs),
        "sweep": sweep,
        "sweep_choices": picked,
        "sweep_config": [
            {"index": index, "figure": panel.figure, "runs": panel.runs}
            for index, panel in enumerate(sweep)
            if panel.figure is not None
        ],
    }
