"""What the server-rendered pages show: small read functions the views call.

Every read goes through ``tracking.selectors`` so access checks live in one
place; this module only shapes the rows for the templates. Each page costs a
fixed number of queries however many runs exist (tags and metric summaries
come prefetched by ``runs_for_user``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.core.paginator import Page, Paginator
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTransform
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from kernel.errors import invalid
from kernel.http import query_string
from kernel.ids import is_id
from tracking import selectors, services
from tracking.models import WRITE_ROLES, MetricSeries, Project, Run, RunStatus, Team
from tracking.presentation import RunRow, run_row, stall_after

if TYPE_CHECKING:
    from tracking.models import ProjectWithRole

PAGE_SIZE = 50
RECENT_RUNS = 20
ATTENTION_DAYS = 7
ATTENTION_LIMIT = 20
DEFAULT_SORT = "-created_at"
MAX_COLUMNS = 20
COLUMN_SOURCES = ("config", "summary")
SORTABLE = {
    "name": "Name",
    "status": "Status",
    "created_at": "Created",
    "last_seen_at": "Last seen",
}


# --- Links: every href to a project or run page is built here ------------------


def compare_path(project: Project, run_ids: list[int]) -> str:
    path = reverse("compare", kwargs={"team": project.team.slug, "project": project.slug})
    return f"{path}?runs={','.join(map(str, run_ids))}"


# --- Shared formatting ---------------------------------------------------------


# --- Home ----------------------------------------------------------------------


@dataclass
class TeamCard:
    team: Team
    projects: list[Project]


def home_teams(user: User) -> list[TeamCard]:
    """The user's teams, each with its projects annotated with ``run_count`` (two queries)."""
    cards = {team.pk: TeamCard(team, []) for team in selectors.teams_for_user(user)}
    projects = selectors.projects_for_user(user).annotate(run_count=Count("runs"))
    for project in projects:
        cards[project.team_id].projects.append(project)
    return list(cards.values())


def _plain_runs(user: User) -> QuerySet[Run]:
    # The home tables show no tags or metrics: skip runs_for_user's prefetches.
    return selectors.runs_for_user(user).prefetch_related(None)


def recent_runs(runs: QuerySet[Run], *, now: datetime) -> list[RunRow]:
    return [run_row(run, now=now) for run in runs.order_by("-created_at", "-id")[:RECENT_RUNS]]


def attention_runs(runs: QuerySet[Run], *, now: datetime) -> list[RunRow]:
    """Failed or crashed in the last week, and running runs silent for half the crash delay."""
    since = now - timedelta(days=ATTENTION_DAYS)
    broken = Q(status__in=[RunStatus.FAILED, RunStatus.CRASHED]) & (
        Q(ended_at__gte=since) | Q(ended_at__isnull=True, last_seen_at__gte=since)
    )
    stalled = Q(status=RunStatus.RUNNING, last_seen_at__lt=now - stall_after())
    runs = runs.filter(broken | stalled).order_by("-last_seen_at", "-id")
    return [run_row(run, now=now) for run in runs[:ATTENTION_LIMIT]]


def home_recent_runs(user: User, *, now: datetime) -> list[RunRow]:
    return recent_runs(_plain_runs(user), now=now)


def home_attention_runs(user: User, *, now: datetime) -> list[RunRow]:
    return attention_runs(_plain_runs(user), now=now)


# --- Project page: filters, sorting, columns -------------------------------------


@dataclass
class RunFilters:
    status: list[str]
    tag: str
    search: str
    sort: str

    @classmethod
    def from_query(cls, query: QueryDict) -> RunFilters:
        status = [s for s in query.getlist("status") if s in RunStatus.values]
        sort = query.get("sort", DEFAULT_SORT)
        return cls(
            status=status,
            tag=query.get("tag", "").strip()[:100],
            search=query.get("q", "").strip()[:200],
            sort=sort if valid_sort(sort) else DEFAULT_SORT,
        )


def valid_sort(sort: str) -> bool:
    """A fixed ordering, or a config/summary column (``-config.lr``: descending)."""
    column = sort.removeprefix("-")
    return sort in selectors.RUN_ORDERINGS or parse_columns(column) == [column]


def ordering(sort: str) -> tuple[Any, ...]:
    """``order_by`` arguments; runs without a column's value come last either way."""
    if sort in selectors.RUN_ORDERINGS:
        return selectors.RUN_ORDERINGS[sort]
    descending = sort.startswith("-")
    source, _, key = sort.removeprefix("-").partition(".")
    value: KeyTransform | Subquery
    if source == "config":
        value = KeyTransform(key, "config")
    else:  # summary columns sort by the metric's latest value
        latest = MetricSeries.objects.filter(run=OuterRef("pk"), key=key).values("last_value")
        value = Subquery(latest[:1])
    if descending:
        return value.desc(nulls_last=True), "-id"
    return value.asc(nulls_last=True), "id"


def project_runs(user: User, project: Project, filters: RunFilters) -> QuerySet[Run]:
    runs = selectors.runs_for_user(
        user,
        project=project,
        status=filters.status or None,
        tags=[filters.tag] if filters.tag else None,
        search=filters.search or None,
    )
    return runs.order_by(*ordering(filters.sort))


def runs_page(runs: QuerySet[Run], number: str | None) -> Page:
    return Paginator(runs, PAGE_SIZE).get_page(number)


def parse_columns(raw: str) -> list[str]:
    """``config.lr,summary.loss`` → valid, de-duplicated column names, in order."""
    columns: list[str] = []
    for name in (part.strip() for part in raw.split(",")):
        source, _, key = name.partition(".")
        if source in COLUMN_SOURCES and key and name not in columns and len(name) <= 250:
            columns.append(name)
    return columns[:MAX_COLUMNS]


def _columns_session_key(project: Project) -> str:
    return f"labbook.columns.{project.pk}"


def chosen_columns(session: Any, query: QueryDict, project: Project) -> list[str]:
    """Columns from ``?columns=`` (then remembered per project), else the remembered ones."""
    key = _columns_session_key(project)
    if "columns" in query:
        raw = ",".join(query.getlist("columns"))
        columns = parse_columns(raw)
        if session.get(key) != columns:
            session[key] = columns
        return columns
    return list(session.get(key, []))


def available_columns(runs: list[Run]) -> list[str]:
    config = {key for run in runs for key in run.config}
    summary = {key for run in runs for key in run.summary}
    summary |= {series.key for run in runs for series in run.metric_series.all()}
    return [f"config.{k}" for k in sorted(config)] + [f"summary.{k}" for k in sorted(summary)]


@dataclass
class SortHeader:
    label: str
    href: str
    direction: str  # "asc", "desc" or "" when the table is not sorted by this column


def sort_header(query: QueryDict, current: str, name: str, label: str) -> SortHeader:
    """A column's sort link: ascending first, then toggling while it is current."""
    direction = {name: "asc", f"-{name}": "desc"}.get(current, "")
    target = f"-{name}" if direction == "asc" else name
    return SortHeader(label, query_string(query, sort=target, page=None), direction)


def sort_headers(query: QueryDict, current: str) -> dict[str, SortHeader]:
    return {name: sort_header(query, current, name, label) for name, label in SORTABLE.items()}


def selected_run_ids(query: QueryDict) -> list[int]:
    """Run ids from repeated ``runs`` and/or ``runs=1,2,3``, de-duplicated, in order."""
    ids = []
    for raw in ",".join(query.getlist("runs")).split(","):
        raw = raw.strip()
        if raw.isdigit() and is_id(int(raw)) and int(raw) not in ids:
            ids.append(int(raw))
    return ids


def can_edit(project: ProjectWithRole) -> bool:
    """Whether the caller may change the project's runs (``project.role`` from the selector)."""
    return project.role in WRITE_ROLES


def bulk_tag(user: User, project: Project, form: QueryDict) -> int:
    """Add or remove ``tag`` on the ticked runs (``tag_action`` add/remove); how many runs."""
    action = form.get("tag_action")
    if action not in ("add", "remove"):
        raise invalid("tag_action", "Choose add or remove.")
    ids = selected_run_ids(form)
    if not ids:
        raise invalid("runs", "Select at least one run.")
    tag = form.get("tag", "").strip()
    if not tag:
        raise invalid("tag", "Type the tag to add or remove.")
    runs = list(selectors.runs_for_user(user, project=project).filter(pk__in=ids))
    services.runs_tag(runs=runs, **{action: [tag]})
    return len(runs)


def project_page_context(
    user: User, project: Project, query: QueryDict, columns: list[str]
) -> dict[str, Any]:
    filters = RunFilters.from_query(query)
    page = runs_page(project_runs(user, project, filters), query.get("page"))
    runs = list(page.object_list)
    now = timezone.now()
    return {
        "project": project,
        "filters": filters,
        "statuses": RunStatus.choices,
        "page": page,
        "rows": [run_row(run, now=now, columns=columns) for run in runs],
        "columns": columns,
        "available_columns": available_columns(runs),
        "sort_headers": sort_headers(query, filters.sort),
        "column_headers": [sort_header(query, filters.sort, c, c) for c in columns],
        "page_links": _page_links(query, page),
        "project_href": project.get_absolute_url(),
        "filtered": bool(filters.status or filters.tag or filters.search),
    }


def _page_links(query: QueryDict, page: Page) -> dict[str, str]:
    links = {}
    if page.has_previous():
        links["first"] = query_string(query, page=None)
        links["previous"] = query_string(query, page=str(page.previous_page_number()))
    if page.has_next():
        links["next"] = query_string(query, page=str(page.next_page_number()))
        links["last"] = query_string(query, page=str(page.paginator.num_pages))
    return links
