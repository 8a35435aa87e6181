"""What the server-rendered pages show: small read functions the views call.

Every read goes through ``tracking.selectors`` so access checks live in one
place; this module only shapes the rows for the templates. Each page costs a
fixed number of queries however many runs exist (tags and metric summaries
come prefetched by ``runs_for_user``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.core.paginator import Page, Paginator
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTransform
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from kernel.errors import ApplicationError, invalid
from kernel.http import query_string
from kernel.ids import is_id
from tracking import run_filters, selectors, services
from tracking.models import (
    SYSTEM_KEY_PREFIX,
    WRITE_ROLES,
    MetricSeries,
    Project,
    Run,
    RunStatus,
    SavedView,
    Team,
)
from tracking.presentation import (
    GROUPINGS,
    NO_GROUP,
    RunRow,
    format_value,
    run_row,
    scalar,
    stall_after,
)
from tracking.validation import flatten

if TYPE_CHECKING:
    from tracking.models import ProjectWithRole

PAGE_SIZE = 50
RECENT_RUNS = 20
ATTENTION_DAYS = 7
ATTENTION_LIMIT = 20
DEFAULT_SORT = "-created_at"
MAX_COLUMNS = 20
COLUMN_SOURCES = ("config", "summary")
DEFAULT_METRIC_COLUMNS = 3  # the most logged metrics, when nobody chose columns yet
COLUMN_SOURCE_RUNS = 200  # the latest runs whose config and summary keys the picker offers
COLUMN_SOURCE_BYTES = 64 * 1024  # ...among those whose config and summary are this small
MAX_PICKER_METRICS = 2000
SYSTEM_PREFIX = SYSTEM_KEY_PREFIX  # machine metrics: offered, never a default column
MAX_GROUPED_RUNS = 5000  # grouping counts at most this many matching runs
GROUP_ROWS = 50  # rows shown under each group; the rest through the group's own link
SHOWN_GROUPED_ROWS = 500  # rows shown over all groups (only these are read whole)
AGGREGATES = ("mean", "min", "max")
MAX_BULK_RUNS = 10_000  # runs one "select all matching" may tag at once
# What a saved view keeps of the table's query string (not the page, not the view itself).
VIEW_PARAMETERS = ("status", "tag", "q", "filter", "columns", "sort", "group_by", "aggregate")
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
    values: str = ""  # the value filter as typed (``summary.val/acc > 0.9 and ...``)
    conditions: list[run_filters.Condition] = field(default_factory=list)
    error: str = ""  # why ``values`` could not be read (the page says it; no filter applies)
    group_by: str = ""  # "", "group", "tags" or "config.<key>"
    aggregate: str = ""  # the column whose mean, min and max each group shows

    @classmethod
    def from_query(cls, query: QueryDict) -> RunFilters:
        status = [s for s in query.getlist("status") if s in RunStatus.values]
        sort = query.get("sort", DEFAULT_SORT)
        values = " and ".join(v.strip() for v in query.getlist("filter") if v.strip())
        conditions, error = [], ""
        try:
            conditions = run_filters.parse([values])
        except ApplicationError as problem:
            error = problem.message
        group_by = query.get("group_by", "")
        aggregate = query.get("aggregate", "")
        return cls(
            status=status,
            tag=query.get("tag", "").strip()[:100],
            search=query.get("q", "").strip()[:200],
            sort=sort if valid_sort(sort) else DEFAULT_SORT,
            values=values[: run_filters.MAX_FILTER_LENGTH],
            conditions=conditions,
            error=error,
            group_by=group_by if valid_grouping(group_by) else "",
            aggregate=aggregate if parse_columns(aggregate) == [aggregate] else "",
        )

    @property
    def active(self) -> bool:
        return bool(self.status or self.tag or self.search or self.conditions)

    @property
    def count(self) -> int:
        """How many filters apply (the collapsed filter bar says it)."""
        return len(self.status) + bool(self.tag) + bool(self.search) + len(self.conditions)


def valid_grouping(group_by: str) -> bool:
    return group_by in GROUPINGS or (
        group_by.startswith("config.") and parse_columns(group_by) == [group_by]
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
    runs = run_filters.apply(runs, filters.conditions)
    return runs.order_by(*ordering(filters.sort))


def runs_page(runs: QuerySet[Run], number: str | None) -> Page:
    return Paginator(runs, PAGE_SIZE).get_page(number)


def parse_columns(raw: str) -> list[str]:
    """``config.lr,summary.loss`` → valid, de-duplicated column names, in order."""
    columns: list[str] = []
    for name in (part.strip() for part in raw.split(",")):
        source, _, key = name.partition(".")
        if (
            source in COLUMN_SOURCES
            and key
            and name not in columns
            and len(name) <= run_filters.MAX_COLUMN_LENGTH
        ):
            columns.append(name)
    return columns[:MAX_COLUMNS]


def _columns_session_key(project: Project) -> str:
    return f"labbook.columns.{project.pk}"


def chosen_columns(session: Any, query: QueryDict, project: Project) -> list[str]:
    """Columns from ``?columns=`` (then remembered per project), else the remembered ones,
    else the project's most logged metrics."""
    key = _columns_session_key(project)
    if "columns" in query:
        raw = ",".join(query.getlist("columns"))
        columns = parse_columns(raw)
        if session.get(key) != columns:
            session[key] = columns
        return columns
    if key in session:
        return list(session[key])
    return default_columns(project)


def default_columns(project: Project) -> list[str]:
    """The metrics most runs of the project log (machine metrics aside)."""
    keys = selectors.project_metric_keys(project, most=DEFAULT_METRIC_COLUMNS + 20)
    chosen = [key for key, _ in keys if not key.startswith(SYSTEM_PREFIX)]
    return [f"summary.{key}" for key in chosen[:DEFAULT_METRIC_COLUMNS]]


def available_columns(project: Project) -> list[str]:
    """Every column the picker offers: config values by their flattened path
    (``config.optimizer.lr``), then summaries and metrics, each alphabetical."""
    configs, summaries = selectors.project_column_sources(
        project, recent=COLUMN_SOURCE_RUNS, most_bytes=COLUMN_SOURCE_BYTES
    )
    config = {key for values in configs if isinstance(values, dict) for key in flatten(values)}
    summary = {key for values in summaries if isinstance(values, dict) for key in values}
    summary |= {key for key, _ in selectors.project_metric_keys(project, most=MAX_PICKER_METRICS)}
    return [f"config.{k}" for k in sorted(config)] + [f"summary.{k}" for k in sorted(summary)]


@dataclass
class PickerColumn:
    name: str
    checked: bool


def picker_columns(chosen: list[str], available: list[str]) -> list[PickerColumn]:
    """The picker's list: the chosen columns first, in their order, then the rest."""
    rest = [name for name in available if name not in chosen]
    return [PickerColumn(name, True) for name in chosen] + [PickerColumn(n, False) for n in rest]


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


def chosen_run_ids(user: User, project: Project, form: QueryDict, *, most: int) -> list[int]:
    """The ticked runs, or with ``all_matching=1`` every run the table's query matches."""
    if form.get("all_matching") == "1":
        return matching_run_ids(user, project, form.get("back", ""), most=most)
    return selected_run_ids(form)


def can_edit(project: ProjectWithRole) -> bool:
    """Whether the caller may change the project's runs (``project.role`` from the selector)."""
    return project.role in WRITE_ROLES


def bulk_tag(user: User, project: Project, form: QueryDict) -> int:
    """Add or remove ``tag`` on the ticked runs (``tag_action`` add/remove); how many runs."""
    action = form.get("tag_action")
    if action not in ("add", "remove"):
        raise invalid("tag_action", "Choose add or remove.")
    ids = chosen_run_ids(user, project, form, most=MAX_BULK_RUNS)
    if not ids:
        raise invalid("runs", "Select at least one run.")
    tag = form.get("tag", "").strip()
    if not tag:
        raise invalid("tag", "Type the tag to add or remove.")
    runs = list(selectors.runs_for_user(user, project=project).filter(pk__in=ids))
    services.runs_tag(runs=runs, **{action: [tag]})
    return len(runs)


# --- Project page: grouping --------------------------------------------------------------


@dataclass
class RunGroup:
    label: str
    count: int
    stats: dict[str, str]  # "mean", "min", "max" of the aggregate column ({} without numbers)
    rows: list[RunRow]
    href: str  # the table with only this group's runs ("" when a filter can't say it)

    @property
    def more(self) -> int:
        return self.count - len(self.rows)


@dataclass
class Grouping:
    groups: list[RunGroup]
    runs: int  # matching runs read (at most MAX_GROUPED_RUNS)
    capped: bool  # more runs matched than were read


@dataclass
class _Member:
    """One run of a group as the database answered it: no config or summary loaded."""

    run_id: int
    raw: str | None  # the grouped value as text (config groups)
    number: float | None  # the aggregate column's value


def group_runs(
    runs: QuerySet[Run], filters: RunFilters, columns: list[str], query: QueryDict, now: datetime
) -> Grouping:
    """The matching runs in groups of ``filters.group_by``, with counts and aggregates.

    The database answers each run's group value and aggregate number (up to
    MAX_GROUPED_RUNS runs, none of their config loaded); only the runs shown, at most
    GROUP_ROWS a group and SHOWN_GROUPED_ROWS in all, are read whole. A run with several
    tags is in each tag's group. Groups come in value order (numbers numerically), the
    group of runs without a value last.
    """
    members, capped = _group_members(runs.prefetch_related(None), filters)
    shown: list[int] = []
    for group in members.values():
        room = min(GROUP_ROWS, SHOWN_GROUPED_ROWS - len(shown))
        shown += [m.run_id for m in group[: max(room, 0)] if m.run_id not in shown]
    loaded = {run.pk: run for run in runs.filter(pk__in=shown)}
    groups = []
    for label, group in sorted(members.items(), key=lambda item: _group_order(item[0])):
        rows = [loaded[m.run_id] for m in group[:GROUP_ROWS] if m.run_id in loaded]
        groups.append(
            RunGroup(
                label=label,
                count=len(group),
                stats=aggregate_stats([m.number for m in group]),
                rows=[run_row(run, now=now, columns=columns) for run in rows],
                href=_group_href(query, filters, label, group),
            )
        )
    read = len({m.run_id for group in members.values() for m in group})
    return Grouping(groups, read, capped)


def _group_members(
    runs: QuerySet[Run], filters: RunFilters
) -> tuple[dict[str, list[_Member]], bool]:
    """Each group's runs, in the table's order; and whether more runs matched than were read."""
    group_by, aggregate = filters.group_by, filters.aggregate
    values: dict[str, Any] = {"number": _number_of(aggregate)} if aggregate else {}
    if group_by.startswith("config."):
        values["raw"] = run_filters.config_text(group_by.removeprefix("config."))
    rows = list(runs.annotate(**values).values("pk", "group", *values)[: MAX_GROUPED_RUNS + 1])
    capped = len(rows) > MAX_GROUPED_RUNS
    rows = rows[:MAX_GROUPED_RUNS]
    tags: dict[int, list[str]] = {}
    if group_by == "tags":
        for run_id, name in selectors.run_tag_names([row["pk"] for row in rows]):
            tags.setdefault(run_id, []).append(name)
    members: dict[str, list[_Member]] = {}
    for row in rows:
        member = _Member(row["pk"], row.get("raw"), row.get("number"))
        if group_by == "group":
            labels = [row["group"] or NO_GROUP]
        elif group_by == "tags":
            labels = sorted(tags.get(row["pk"], [])) or [NO_GROUP]
        else:
            labels = [format_value(scalar(member.raw)) or NO_GROUP]
        for label in labels:
            members.setdefault(label, []).append(member)
    return members, capped


def _number_of(column: str) -> Any:
    source, _, key = column.partition(".")
    if source == "summary":
        return run_filters.summary_number(key)
    return run_filters.NumberOf(run_filters.config_text(key))


def _group_order(label: str) -> tuple[int, float, str]:
    if label == NO_GROUP:
        return (2, 0.0, "")
    number = scalar(label)
    return (0, number, "") if isinstance(number, float) else (1, 0.0, label.casefold())


def aggregate_stats(values: list[float | None]) -> dict[str, str]:
    """Mean, min and max of the finite numbers among ``values`` ({} when there are none)."""
    numbers = [v for v in values if v is not None and math.isfinite(v)]
    if not numbers:
        return {}
    stats = {"mean": sum(numbers) / len(numbers), "min": min(numbers), "max": max(numbers)}
    return {name: format_value(value) for name, value in stats.items()}


def _group_href(query: QueryDict, filters: RunFilters, label: str, group: list[_Member]) -> str:
    """The table filtered to one group, when the filter syntax can say which runs are in it."""
    if label == NO_GROUP:
        return ""
    if filters.group_by == "group":
        condition = f"group = {_filter_text(label)}"
    elif filters.group_by == "tags":
        condition = f"tag = {_filter_text(label)}"
    else:
        raw = {member.raw for member in group}
        if len(raw) != 1:
            return ""  # values that read the same at 4 digits: no one value to filter on
        text = str(raw.pop())
        value = scalar(text)
        condition = f"{filters.group_by} = " + (
            text if isinstance(value, float) else _filter_text(text)
        )
    combined = " and ".join(part for part in (filters.values, condition) if part)
    return query_string(query, filter=combined, group_by=None, page=None)


def _filter_text(text: str) -> str:
    return f"'{text}'" if "'" not in text else f'"{text}"'


# --- Project page: selection and saved views ------------------------------------------


def matching_run_ids(user: User, project: Project, back: str, *, most: int) -> list[int]:
    """The ids of every run the table's query ``back`` matches ("select all matching")."""
    filters = RunFilters.from_query(QueryDict(back.removeprefix("?")))
    if filters.error:
        raise invalid("filter", filters.error)
    ids = list(project_runs(user, project, filters).values_list("pk", flat=True)[: most + 1])
    if len(ids) > most:
        raise invalid("runs", f"More than {most} runs match: narrow the filters first.")
    return ids


def view_query(query: QueryDict, columns: list[str]) -> str:
    """What a saved view keeps of the table: its query string without the page, empty
    fields or the default sort, and the columns shown (chosen here or remembered)."""
    kept = QueryDict(mutable=True)
    for name in VIEW_PARAMETERS:
        if name == "columns":
            kept[name] = ",".join(columns)
            continue
        values = [value for value in query.getlist(name) if value.strip()]
        if name == "sort" and values == [DEFAULT_SORT]:
            continue
        if values:
            kept.setlist(name, values)
    return kept.urlencode()


def view_href(project: Project, view: SavedView) -> str:
    """A view's own URL: a teammate who opens it gets the table it was saved as."""
    return f"{project.get_absolute_url()}?view={view.pk}"


def opened_view(project: Project, raw_id: str) -> SavedView | None:
    if not _is_id_text(raw_id):
        return None
    return selectors.saved_views(project).filter(pk=int(raw_id)).first()


def view_id(raw: str) -> int:
    if not _is_id_text(raw):
        raise invalid("view", "Choose a saved view.")
    return int(raw)


def _is_id_text(raw: str) -> bool:
    return raw.isascii() and raw.isdigit() and len(raw) <= 19 and is_id(int(raw))


def current_view(views: list[SavedView], query: QueryDict, columns: list[str]) -> SavedView | None:
    """The saved view the table shows now, if it was opened and nothing changed since."""
    raw = query.get("view", "")
    here = view_query(query, columns)
    return next((v for v in views if str(v.pk) == raw and v.query == here), None)


# --- Project page: the whole context --------------------------------------------------


def project_page_context(
    user: User, project: Project, query: QueryDict, columns: list[str]
) -> dict[str, Any]:
    filters = RunFilters.from_query(query)
    runs = project_runs(user, project, filters)
    now = timezone.now()
    views = list(selectors.saved_views(project))
    available = available_columns(project)
    context: dict[str, Any] = {
        "project": project,
        "filters": filters,
        "statuses": RunStatus.choices,
        "columns": columns,
        "picker_columns": picker_columns(columns, available),
        "sort_headers": sort_headers(query, filters.sort),
        "column_headers": [
            (sort_header(query, filters.sort, c, c), *c.split(".", 1)) for c in columns
        ],
        "project_href": project.get_absolute_url(),
        "filtered": filters.active,
        "groupings": _grouping_choices(available, filters),
        "aggregates": AGGREGATES,
        "views": [(view, view_href(project, view)) for view in views],
        "current_view": current_view(views, query, columns),
        "picker_hidden": [
            (name, value)
            for name in VIEW_PARAMETERS
            if name != "columns"
            for value in query.getlist(name)
        ],
    }
    if filters.group_by:
        grouping = group_runs(runs, filters, columns, query, now)
        context.update(grouping=grouping, rows=[], total=grouping.runs)
        context["any_rows"] = bool(grouping.groups)
        return context
    page = runs_page(runs, query.get("page"))
    rows = [run_row(run, now=now, columns=columns) for run in page.object_list]
    context.update(
        page=page,
        rows=rows,
        total=page.paginator.count,
        any_rows=bool(rows),
        page_links=_page_links(query, page),
    )
    return context


def _grouping_choices(available: list[str], filters: RunFilters) -> list[tuple[str, str]]:
    """What the table can group by: the run's group, its tags, or a config value."""
    choices = [("", "No grouping"), ("group", "Group"), ("tags", "Tag")]
    choices += [(name, name) for name in available if name.startswith("config.")]
    if filters.group_by and all(value != filters.group_by for value, _ in choices):
        choices.append((filters.group_by, filters.group_by))
    return choices


def _page_links(query: QueryDict, page: Page) -> dict[str, str]:
    links = {}
    if page.has_previous():
        links["first"] = query_string(query, page=None)
        links["previous"] = query_string(query, page=str(page.previous_page_number()))
    if page.has_next():
        links["next"] = query_string(query, page=str(page.next_page_number()))
        links["last"] = query_string(query, page=str(page.paginator.num_pages))
    return links
