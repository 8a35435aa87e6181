"""Access-checked reads. Outsiders get ``NotFound``, never a hint that a thing exists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

# Re-exported: alerts/ and audit/ import it from here.
from django.contrib.auth.models import User as User
from django.db.models import (
    Case,
    Count,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, Length

from kernel.errors import ApplicationError, NotFound, PermissionDenied
from kernel.ids import is_id
from tracking.models import (
    WRITE_ROLES,
    ApiToken,
    MediaItem,
    Membership,
    MetricSeries,
    Project,
    Role,
    Run,
    RunStatus,
    RunTag,
    SavedView,
    Team,
)

if TYPE_CHECKING:
    from tracking.models import ProjectWithRole, RunWithRole, TeamWithRole


def _role_subquery(user: User, team_ref: str) -> Subquery:
    return Subquery(
        Membership.objects.filter(team=OuterRef(team_ref), user_id=user.pk).values("role")[:1]
    )


def _refuse_nul(value: str, field: str) -> str:
    """PostgreSQL cannot hold NUL in text: a name with one is bad input, not a failing query."""
    if "\x00" in value:
        raise ApplicationError("invalid", "NUL characters are not allowed.", field=field)
    return value


def split_project_name(full_name: str, *, field: str = "project") -> tuple[str, str]:
    team_slug, sep, project_slug = _refuse_nul(str(full_name), field).partition("/")
    if not sep or not team_slug or not project_slug or "/" in project_slug:
        raise ApplicationError("invalid", "Name a project as 'team/project'.", field=field)
    return team_slug, project_slug


def team_get_for_user(user: User, slug: str, *, field: str = "team") -> tuple[TeamWithRole, str]:
    """The team and the caller's role in it."""
    team = (
        Team.objects.filter(slug=_refuse_nul(str(slug), field), memberships__user_id=user.pk)
        .annotate(role=_role_subquery(user, "pk"))
        .first()
    )
    if team is None:
        raise NotFound(f"Team {slug!r}", field=field)
    return team, team.role


def team_with_role(user: User, slug: str) -> TeamWithRole:
    """The team, ``team.role`` the caller's role in it (a page's team from its URL)."""
    return team_get_for_user(user, slug)[0]


def team_get_for_owner(user: User, slug: str, *, message: str) -> Team:
    """The team, if ``user`` owns it: other members get 403 (``message``), everyone else 404."""
    team, role = team_get_for_user(user, slug)
    if role != Role.OWNER:
        raise PermissionDenied(message)
    return team


def audit_log_team(user: User, slug: str) -> Team:
    """The team whose audit log ``user`` asks for: owners only."""
    return team_get_for_owner(user, slug, message="Only owners of the team read its audit log.")


def teams_for_user(user: User) -> QuerySet[TeamWithRole]:
    return Team.objects.filter(memberships__user_id=user.pk).annotate(
        role=_role_subquery(user, "pk")
    )


def team_memberships(team: Team) -> QuerySet[Membership]:
    """Members with their users: owners first, then editors, then viewers, by username."""
    rank = Case(
        When(role=Role.OWNER, then=Value(0)),
        When(role=Role.EDITOR, then=Value(1)),
        default=Value(2),
    )
    return (
        Membership.objects.filter(team=team)
        .select_related("user", "team")
        .order_by(rank, "user__username")
    )


def team_members_for_user(user: User, slug: str) -> QuerySet[Membership]:
    """The active members of team ``slug``, for its members (anyone else: ``NotFound``)."""
    team, _role = team_get_for_user(user, slug)
    return team_memberships(team).filter(user__is_active=True)


def membership_get(team: Team, user_id: int) -> Membership:
    if not is_id(user_id):
        raise NotFound("Member")
    membership = team_memberships(team).filter(user_id=user_id).first()
    if membership is None:
        raise NotFound("Member")
    return membership


def tokens_for_user(user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user_id=user.pk).order_by("-created_at", "-id")


def token_get_for_user(user: User, token_id: int) -> ApiToken:
    """One of the user's own tokens; anybody else's is ``NotFound``."""
    if not is_id(token_id):
        raise NotFound("Token")
    token = tokens_for_user(user).filter(pk=token_id).first()
    if token is None:
        raise NotFound("Token")
    return token


def projects_for_user(
    user: User, *, team_slug: str | None = None, include_deleted: bool = False
) -> QuerySet[ProjectWithRole]:
    """The user's projects; soft-deleted ones (MLflow's delete) only when asked for."""
    projects = (
        Project.objects.filter(team__memberships__user_id=user.pk)
        .select_related("team")
        .annotate(role=_role_subquery(user, "team_id"))
    )
    if not include_deleted:
        projects = projects.filter(deleted_at__isnull=True)
    if team_slug:
        projects = projects.filter(team__slug=team_slug)
    return projects


def project_get_for_user(user: User, full_name: str, *, field: str = "project") -> ProjectWithRole:
    team_slug, project_slug = split_project_name(full_name, field=field)
    project = projects_for_user(user).filter(team__slug=team_slug, slug=project_slug).first()
    if project is None:
        raise NotFound(f"Project {full_name!r}", field=field)
    return project


def project_at(user: User, team: str, project: str) -> ProjectWithRole:
    """The project at ``/<team>/<project>/`` (a page's URL), with the caller's role."""
    return project_get_for_user(user, f"{team}/{project}")


def run_get_for_user(
    user: User, run_id: int, *, write: bool = False, defer: Sequence[str] = ()
) -> RunWithRole:
    """The run, with ``run.role`` set to the caller's role in its team.

    ``write=True`` additionally requires an editor or owner. ``defer`` names
    fields a hot path does not read (they load on first use).
    """
    if not is_id(run_id):
        raise NotFound("Run")
    run = (
        Run.objects.filter(pk=run_id, project__team__memberships__user_id=user.pk)
        .select_related("project__team")
        .defer(*defer)
        .annotate(role=_role_subquery(user, "project__team_id"))
        .first()
    )
    if run is None:
        raise NotFound("Run")
    if write and run.role not in WRITE_ROLES:
        raise PermissionDenied("Viewers cannot change runs.")
    return run


def media_item_get_for_user(user: User, media_id: int) -> MediaItem:
    """An image, table or histogram of a run the user may read."""
    if not is_id(media_id):
        raise NotFound("Media item")
    item = (
        MediaItem.objects.filter(pk=media_id, run__project__team__memberships__user_id=user.pk)
        .select_related("run")
        .first()
    )
    if item is None:
        raise NotFound("Media item")
    return item


RUN_ORDERINGS = {
    "created_at": ("created_at", "id"),
    "-created_at": ("-created_at", "-id"),
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "last_seen_at": ("last_seen_at", "id"),
    "-last_seen_at": ("-last_seen_at", "-id"),
    "status": ("status", "id"),
    "-status": ("-status", "-id"),
}


def runs_for_user(
    user: User,
    *,
    project: Project | None = None,
    status: list[str] | None = None,
    tags: list[str] | None = None,
    group: str | None = None,
    search: str | None = None,
    ids: list[int] | None = None,
    include_deleted: bool = False,
) -> QuerySet[Run]:
    """Runs the user may read, filtered; tags must all be present (AND).

    Soft-deleted runs (MLflow's delete) only when asked for.
    """
    runs = Run.objects.filter(project__team__memberships__user_id=user.pk)
    if not include_deleted:
        runs = runs.filter(deleted_at__isnull=True)
    if project is not None:
        runs = runs.filter(project=project)
    if status:
        unknown = set(status) - set(RunStatus.values)
        if unknown:
            raise ApplicationError(
                "invalid", f"Unknown status {sorted(unknown)[0]!r}.", field="status"
            )
        runs = runs.filter(status__in=status)
    for tag in tags or []:
        runs = runs.filter(pk__in=RunTag.objects.filter(name=tag).values("run_id"))
    if group:
        runs = runs.filter(group=group)
    if search:
        runs = runs.filter(Q(name__icontains=search) | Q(notes__icontains=search))
    if ids is not None:
        runs = runs.filter(pk__in=ids)
    return runs.select_related("project__team").prefetch_related(
        "tag_rows",
        Prefetch(
            "metric_series",
            queryset=MetricSeries.objects.only("id", "run_id", "key", "last_value", "count"),
        ),
    )


def run_series(run: Run) -> QuerySet[MetricSeries]:
    return MetricSeries.objects.filter(run=run).order_by("key")


def series_of_runs(user: User, ids: list[int], key: str) -> list[MetricSeries]:
    """Metric ``key`` of each run among ``ids`` the user may read, in the order of ``ids``;
    runs without it (or unreadable, or deleted) are not there."""
    runs = runs_for_user(user, ids=ids)
    found = {
        series.run_id: series
        for series in MetricSeries.objects.filter(run__in=runs.values("pk"), key=key)
    }
    return [found[i] for i in ids if i in found]


def series_get(run: Run, key: str) -> MetricSeries:
    series = MetricSeries.objects.filter(run=run, key=key).first()
    if series is None:
        raise NotFound(f"Metric {key!r}", field="key")
    return series


def saved_views(project: Project) -> QuerySet[SavedView]:
    """The project's saved views of its runs table (the caller has checked the project)."""
    return SavedView.objects.filter(project=project)


def project_column_sources(
    project: Project, *, recent: int, most_bytes: int
) -> tuple[list[Any], list[Any]]:
    """The config and summary objects of the project's ``recent`` latest runs whose config
    and summary each take at most ``most_bytes`` as JSON (the database measures them, so a
    page never loads megabytes of config to list its keys)."""
    rows = (
        Run.objects.filter(project=project, deleted_at__isnull=True)
        .alias(
            config_bytes=Length(Cast("config", TextField())),
            summary_bytes=Length(Cast("summary", TextField())),
        )
        .filter(config_bytes__lte=most_bytes, summary_bytes__lte=most_bytes)
        .order_by("-created_at", "-id")
        .values_list("config", "summary")[:recent]
    )
    configs, summaries = zip(*rows, strict=True) if rows else ((), ())
    return list(configs), list(summaries)


def project_metric_keys(project: Project, *, most: int) -> list[tuple[str, int]]:
    """The project's metric keys with how many runs log each, the most logged first."""
    counts = (
        MetricSeries.objects.filter(run__project=project, run__deleted_at__isnull=True)
        .values("key")
        .annotate(runs=Count("run_id"))
        .order_by("-runs", "key")
    )
    return [(row["key"], row["runs"]) for row in counts[:most]]


def run_tag_names(run_ids: list[int]) -> list[tuple[int, str]]:
    """``(run id, tag)`` of the given runs (the caller has checked the runs)."""
    return list(RunTag.objects.filter(run_id__in=run_ids).values_list("run_id", "name"))
