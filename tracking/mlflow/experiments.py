"""MLflow experiments as Labbook projects.

Naming rule (README): an experiment named ``team/project`` is that project;
a bare name is a project of the user's *default team* — the first team they
joined — with the name made into a slug (``"My Exp"`` → ``my-exp``). The
experiment id is the project's id; ``"0"`` (MLflow's Default experiment, what
``start_run()`` uses without ``set_experiment``) is the default team's project
``default``, created on first use.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from tracking import selectors, services
from tracking.errors import NotFound
from tracking.mlflow import convert
from tracking.mlflow.http import ALREADY_EXISTS, NOT_FOUND, MlflowError, invalid
from tracking.models import Membership, Project, Team
from tracking.selectors import MAX_DB_INT
from tracking.validation import SLUG_RE

DEFAULT_PROJECT = "default"
MAX_NAME = 500
NAME_FILTER = re.compile(
    r"""^\s*(?:attributes\.|attribute\.)?name\s*(=|!=|LIKE|ILIKE)\s*(['"])(.*)\2\s*$""",
    re.IGNORECASE,
)


def default_team(user: AbstractBaseUser) -> Team:
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


def _full_name(user: AbstractBaseUser, name: Any) -> str:
    """``team/project`` for an experiment name, by the naming rule."""
    if not isinstance(name, str) or not name.strip():
        raise invalid("Missing value for required parameter 'name'.")
    if len(name) > MAX_NAME:
        raise invalid(f"Experiment name exceeds the maximum length of {MAX_NAME} characters.")
    team_slug, sep, project = name.strip().partition("/")
    if sep and team_slug and project and "/" not in project:
        return name.strip()
    slug = slug_for(name)
    if not slug:
        raise invalid(f"Experiment name {name!r} has no letters or digits to name a project.")
    return f"{default_team(user).slug}/{slug}"


def _projects(user: AbstractBaseUser) -> QuerySet[Project]:
    return selectors.projects_for_user(user, include_deleted=True)


def by_id(user: AbstractBaseUser, experiment_id: Any) -> Project:
    if str(experiment_id) == convert.DEFAULT_EXPERIMENT_ID:
        return default_project(user)
    try:
        pk = int(experiment_id)
    except (TypeError, ValueError):
        raise invalid(f"Invalid experiment ID: {experiment_id!r}") from None
    project = _projects(user).filter(pk=pk).first() if 0 < pk <= MAX_DB_INT else None
    if project is None:
        raise MlflowError(NOT_FOUND, f"No Experiment with id={experiment_id} exists")
    return project


def by_name(user: AbstractBaseUser, name: Any) -> Project:
    team_slug, _, slug = _full_name(user, name).partition("/")
    project = _projects(user).filter(team__slug=team_slug, slug=slug).first()
    if project is None:
        raise MlflowError(NOT_FOUND, f"Could not find experiment with name '{name}'")
    return project


def default_project(user: AbstractBaseUser) -> Project:
    full_name = f"{default_team(user).slug}/{DEFAULT_PROJECT}"
    existing = _projects(user).filter(team__slug=full_name.partition("/")[0], slug=DEFAULT_PROJECT)
    return existing.first() or services.project_get_or_create_for_write(
        user=user, full_name=full_name
    )


def create(user: AbstractBaseUser, name: Any, tags: list[dict[str, Any]] | None) -> Project:
    full_name = _full_name(user, name)
    team_slug, _, slug = full_name.partition("/")
    if _projects(user).filter(team__slug=team_slug, slug=slug).exists():
        raise MlflowError(ALREADY_EXISTS, f"Experiment '{full_name}' already exists.")
    try:
        project = services.project_create(user=user, team_slug=team_slug, slug=slug)
    except NotFound:
        raise MlflowError(NOT_FOUND, f"No team {team_slug!r} of yours for {name!r}.") from None
    for tag in tags or []:
        set_tag(project, tag.get("key"), tag.get("value"))
    return project


def _require_write(project: Project) -> None:
    services.require_write(project.role)


def rename(user: AbstractBaseUser, project: Project, new_name: Any) -> None:
    _require_write(project)
    team_slug, _, slug = _full_name(user, new_name).partition("/")
    if team_slug != project.team.slug:
        raise invalid("An experiment cannot move to another team.")
    services.project_update(project=project, slug=slug)


def set_deleted(project: Project, deleted: bool) -> None:
    _require_write(project)
    project.deleted_at = timezone.now() if deleted else None
    project.save(update_fields=["deleted_at"])


def set_tag(project: Project, key: Any, value: Any) -> None:
    _require_write(project)
    if not isinstance(key, str) or not key:
        raise invalid("Missing value for required parameter 'key'.")
    value = "" if value is None else str(value)
    if key == convert.NOTE_TAG:
        services.project_update(project=project, description=value)
        return
    tags = {**project.metadata.get(convert.TAGS, {}), key: value}
    project.metadata = {**project.metadata, convert.TAGS: tags}
    project.save(update_fields=["metadata"])


def search(
    user: AbstractBaseUser, *, view_type: str, filter_string: str, order_by: list[str]
) -> QuerySet[Project]:
    projects = convert.in_stage(_projects(user), view_type)
    if filter_string and filter_string.strip():
        projects = _name_filter(projects, filter_string)
    return projects.order_by(*_ordering(order_by))


def _name_filter(projects: QuerySet[Project], filter_string: str) -> QuerySet[Project]:
    """``name = 'x'``, ``!=``, ``LIKE``, ``ILIKE`` on ``team/project``: all Labbook supports."""
    match = NAME_FILTER.match(filter_string)
    if match is None:
        raise invalid(
            f"Unsupported experiment filter {filter_string!r}: Labbook supports"
            " name = / != / LIKE / ILIKE 'value'."
        )
    op, value = match.group(1).upper(), match.group(3)
    names = {p.pk: p.full_name for p in projects}
    if op in ("=", "!="):
        keep = {pk for pk, name in names.items() if (name == value) == (op == "=")}
    else:
        pattern = "^" + re.escape(value).replace("%", ".*").replace("_", ".") + "$"
        flags = re.IGNORECASE if op == "ILIKE" else 0
        keep = {pk for pk, name in names.items() if re.match(pattern, name, flags)}
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
