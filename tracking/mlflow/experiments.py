"""MLflow experiments as Labbook projects.

Naming rule (docs/mlflow.md): an experiment named ``team/project`` is that project;
a bare name is a project of the user's *default team* — the first team they
joined — with the name made into a slug (``"My Exp"`` → ``my-exp``). The
experiment id is the project's id; ``"0"`` (MLflow's Default experiment, what
``start_run()`` uses without ``set_experiment``) is the default team's project
``default``, created on first use.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal, overload

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from kernel import ids
from kernel.errors import NotFound
from tracking import patterns, selectors, services
from tracking.mlflow import convert
from tracking.mlflow.http import (
    ALREADY_EXISTS,
    NOT_FOUND,
    MlflowError,
    exceeds_maximum_length,
    invalid,
    not_active,
)
from tracking.mlflow.runs import check_name
from tracking.models import Membership, Project, Team
from tracking.validation import SLUG_RE

if TYPE_CHECKING:
    from tracking.models import ProjectWithRole

DEFAULT_PROJECT = "default"
MAX_NAME = 500
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 20_000
# Read from the stripped filter: the value runs to the end, and must end with
# its opening quote (a backreference at the end would make the match quadratic).
NAME_FILTER = re.compile(
    r"""(?:attributes\.|attribute\.)?name\s*(=|!=|LIKE|ILIKE)\s*(['"])(.*)""",
    re.IGNORECASE | re.DOTALL,
)
MAX_FILTER = patterns.MAX_PATTERN_LENGTH + 100


def default_team(user: User) -> Team:
    membership = (
        Membership.objects.filter(user=user).select_related("team").order_by("created_at", "pk")
    ).first()
    if membership is None:
        raise invalid(f"{user.get_username()} is in no team: a team owner must add them first.")
    return membership.team


def slug_for(name: str) -> str:
    """The project slug of a bare experiment name: itself when valid, else slugified."""
    name = name.strip()
    return name[:100] if SLUG_RE.match(name) else slugify(name)[:100]


def _full_name(user: User, name: str, *, argument: str = "name") -> str:
    """``team/project`` for an experiment name (``argument``), by the naming rule."""
    if len(name) > MAX_NAME:
        raise invalid(exceeds_maximum_length(argument, MAX_NAME))
    if not name.strip():  # MLflow takes a blank name; no project slug is blank
        raise invalid(f"Experiment name {name!r} has no letters or digits to name a project.")
    team_slug, sep, project = name.strip().partition("/")
    if sep and team_slug and project and "/" not in project:
        return name.strip()
    slug = slug_for(name)
    if not slug:
        raise invalid(f"Experiment name {name!r} has no letters or digits to name a project.")
    return f"{default_team(user).slug}/{slug}"


def _projects(user: User) -> QuerySet[ProjectWithRole]:
    return selectors.projects_for_user(user, include_deleted=True)


@overload
def by_id(user: User, experiment_id: Any, *, create_default: Literal[True]) -> ProjectWithRole: ...
@overload
def by_id(user: User, experiment_id: Any, *, create_default: bool = False) -> Project: ...
def by_id(user: User, experiment_id: Any, *, create_default: bool = False) -> Project:
    """The experiment ``experiment_id``. MLflow's default one ("0") always exists for a
    client; it is created only for a write (``create_default``): a read of it before then
    gets an unsaved project (no pk), which answers as experiment "0" and holds no runs."""
    if str(experiment_id) == convert.DEFAULT_EXPERIMENT_ID:
        return default_project(user, create=create_default)
    try:
        pk = int(experiment_id)
    except (TypeError, ValueError):
        raise invalid(
            f"Invalid experiment ID '{experiment_id}'. Experiment ID must be a valid integer."
        ) from None
    project = ids.by_id(_projects(user), pk)
    if project is None:
        raise MlflowError(NOT_FOUND, f"No Experiment with id={experiment_id} exists")
    return project


def by_name(user: User, name: str) -> ProjectWithRole:
    team_slug, _, slug = _full_name(user, name).partition("/")
    project = _projects(user).filter(team__slug=team_slug, slug=slug).first()
    if project is None:
        raise MlflowError(NOT_FOUND, f"Could not find experiment with name '{name}'")
    return project


def searched(user: User, experiment_ids: list[Any]) -> list[Project]:
    """The experiments a search reads; a default experiment not made yet holds no runs."""
    found = (by_id(user, experiment_id) for experiment_id in experiment_ids)
    return [project for project in found if project.pk is not None]


@overload
def default_project(user: User, *, create: Literal[True]) -> ProjectWithRole: ...
@overload
def default_project(user: User, *, create: bool) -> Project: ...
def default_project(user: User, *, create: bool) -> Project:
    team = default_team(user)
    existing = _projects(user).filter(team=team, slug=DEFAULT_PROJECT).first()
    if existing is not None:
        return existing
    if not create:
        return Project(team=team, slug=DEFAULT_PROJECT)  # answers, never saved here
    return services.project_get_or_create_for_write(
        user=user, full_name=f"{team.slug}/{DEFAULT_PROJECT}"
    )


def create(user: User, name: str, tags: list[dict[str, Any]] | None) -> ProjectWithRole:
    """A new experiment with its tags, or nothing at all: every argument is checked first
    (their types by the view's schema)."""
    full_name = _full_name(user, name)
    cleaned = [_checked_tag(tag["key"], tag.get("value") or "") for tag in tags or []]
    team_slug, _, slug = full_name.partition("/")
    if _projects(user).filter(team__slug=team_slug, slug=slug).exists():
        raise MlflowError(ALREADY_EXISTS, f"Experiment '{full_name}' already exists.")
    with transaction.atomic():
        try:
            project = services.project_create(user=user, team_slug=team_slug, slug=slug)
        except NotFound:
            raise MlflowError(NOT_FOUND, f"No team {team_slug!r} of yours for {name!r}.") from None
        for key, value in cleaned:
            set_tag(project, key, value)
    return project


def _checked_tag(key: str, value: str) -> tuple[str, str]:
    """MLflow's ``_validate_experiment_tag``: a name as for runs, and its length limits."""
    check_name(key, "key")
    if len(key) > MAX_TAG_KEY:
        raise invalid(exceeds_maximum_length("key", MAX_TAG_KEY))
    if len(value) > MAX_TAG_VALUE:
        raise invalid(exceeds_maximum_length("value", MAX_TAG_VALUE))
    return key, value


def _require_write(project: ProjectWithRole) -> None:
    services.require_write(project.role)


def require_active(project: Project) -> None:
    """MLflow's refusal of a write to a deleted experiment (its ``_check_experiment_is_active``)."""
    if project.deleted_at is not None:
        raise invalid(not_active("experiment", project.pk))


def rename(user: User, project: ProjectWithRole, new_name: str) -> None:
    _require_write(project)
    if project.deleted_at is not None:
        raise MlflowError("INVALID_STATE", "Cannot rename a non-active experiment.")
    team_slug, _, slug = _full_name(user, new_name, argument="new_name").partition("/")
    if team_slug != project.team.slug:
        raise invalid("An experiment cannot move to another team.")
    services.project_update(project=project, slug=slug)


def set_deleted(project: ProjectWithRole, deleted: bool) -> None:
    """Delete or restore; as in MLflow, only an active experiment is found to delete and only
    a deleted one to restore."""
    _require_write(project)
    if (project.deleted_at is not None) == deleted:
        raise MlflowError(NOT_FOUND, f"No Experiment with id={project.pk} exists")
    project.deleted_at = timezone.now() if deleted else None
    project.save(update_fields=["deleted_at"])


def set_tag(project: ProjectWithRole, key: str, value: str | None) -> None:
    key, value = _checked_tag(key, value or "")
    _require_write(project)
    require_active(project)
    if key == convert.NOTE_TAG:
        services.project_update(project=project, description=value)
        return
    tags = {**project.metadata.get(convert.TAGS, {}), key: value}
    project.metadata = {**project.metadata, convert.TAGS: tags}
    project.save(update_fields=["metadata"])


def delete_tag(project: ProjectWithRole, key: str, *, experiment_id: str) -> None:
    """Drop the tag ``key``; MLflow's 404 when the experiment has none by that name.

    ``experiment_id`` is the id as the client sent it: MLflow's message quotes it.
    """
    _require_write(project)
    require_active(project)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        tags = dict(locked.metadata.get(convert.TAGS, {}))
        if key == convert.NOTE_TAG and locked.description:
            services.project_update(project=locked, description="")
            return
        if key not in tags:
            message = f"No tag with name: {key} in experiment with id {experiment_id}"
            raise MlflowError(NOT_FOUND, message)
        del tags[key]
        locked.metadata = {**locked.metadata, convert.TAGS: tags}
        locked.save(update_fields=["metadata"])


def search(
    user: User, *, view_type: str | int | None, filter_string: str, order_by: list[str]
) -> QuerySet[Project]:
    projects = convert.in_stage(_projects(user), view_type)
    if filter_string and filter_string.strip():
        projects = _name_filter(projects, filter_string)
    return projects.order_by(*_ordering(order_by))


def _name_filter(projects: QuerySet[Project], filter_string: str) -> QuerySet[Project]:
    """``name = 'x'``, ``!=``, ``LIKE``, ``ILIKE`` on ``team/project``: all Labbook supports."""
    if len(filter_string) > MAX_FILTER:
        raise invalid(f"The filter is longer than {MAX_FILTER} characters.")
    match = NAME_FILTER.fullmatch(filter_string.strip())
    if match is None or not match.group(3).endswith(match.group(2)):
        raise invalid(
            f"Unsupported experiment filter {filter_string!r}: Labbook supports"
            " name = / != / LIKE / ILIKE 'value'."
        )
    op, value = match.group(1).upper(), match.group(3)[:-1]
    names = {p.pk: p.full_name for p in projects}
    if op in ("=", "!="):
        keep = {pk for pk, name in names.items() if (name == value) == (op == "=")}
    else:
        matches = patterns.like_matcher(value, ignore_case=op == "ILIKE")
        keep = {pk for pk, name in names.items() if matches(name)}
    return projects.filter(pk__in=keep)


def _ordering(order_by: list[str]) -> list[str]:
    fields = {"name": "slug", "experiment_id": "pk", "creation_time": "created_at"}
    ordering: list[str] = []
    for item in order_by:
        column, _, direction = item.strip().partition(" ")
        column = column.removeprefix("attributes.").removeprefix("attribute.")
        if column not in fields or direction.strip().upper() not in ("", "ASC", "DESC"):
            raise invalid(f"Invalid order_by clause {item!r}.")
        sign = "-" if direction.strip().upper() == "DESC" else ""
        ordering.append(f"{sign}{fields[column]}")
    return [*ordering, "-created_at", "-pk"] if not ordering else [*ordering, "pk"]
