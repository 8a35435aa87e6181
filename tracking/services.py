"""Writes: teams, members, tokens, projects and runs.

Metric ingestion lives in ``tracking.ingest``; reads in ``tracking.selectors``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record, moment
from kernel.errors import ApplicationError, Conflict, NotFound, PermissionDenied, invalid
from kernel.limits import max_length
from tracking import events, storage
from tracking.models import (
    TERMINAL_STATUSES,
    WRITE_ROLES,
    AlertLevel,
    ApiToken,
    Membership,
    Project,
    Role,
    Run,
    RunStatus,
    RunTag,
    SavedView,
    SdkAlert,
    Team,
    TokenScope,
    with_role,
)
from tracking.selectors import split_project_name, team_get_for_user
from tracking.validation import (
    MAX_TAGS,
    clean_json_object,
    clean_slug,
    clean_tags,
    clean_text,
)

if TYPE_CHECKING:
    from tracking.models import ProjectWithRole

TOKEN_PREFIX = "lb_"  # noqa: S105 - a marker, not a secret
# Writing last_used_at on every request would turn every read into a write.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


# --- Teams and members ---------------------------------------------------------


# Top-level paths of the site: a team with one of these slugs would hide its pages.
RESERVED_TEAM_SLUGS = frozenset(
    {
        "admin",
        "ajax-api",
        "alerts",
        "api",
        "compare-runs",  # MLflow UI links (workspace/mlflow_links.py)
        "experiments",
        "get-artifact",  # MLflow's artifact download
        "healthz",
        "login",
        "logout",
        "metric",
        "password",
        "reports",
        "runs",
        "s",
        "settings",
        "static",
        "ws",
    }
)


@transaction.atomic
def team_create(*, slug: Any, owner: User | None, name: Any = "") -> Team:
    slug = clean_slug(slug, field="slug", max_length=max_length(Team, "slug"))
    if slug.lower() in RESERVED_TEAM_SLUGS:
        raise invalid("slug", f"{slug!r} is reserved for Labbook's own pages; pick another name.")
    name = clean_text(name, field="name", max_length=max_length(Team, "name"))
    if Team.objects.filter(slug=slug).exists():
        raise ApplicationError("already_exists", f"Team {slug!r} already exists.", field="slug")
    team = Team.objects.create(slug=slug, name=name or slug)
    if owner is not None:
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        _audit_member(team=team, user=owner, old=None, new=Role.OWNER, actor=owner)
    return team


def _audit_member(
    *,
    team: Team,
    user: User,
    old: str | None,
    new: str | None,
    actor: User | None,
    ip: str | None = None,
) -> None:
    """The event of a membership change: added (no ``old``), removed (no ``new``), a new role."""
    if old == new:
        return
    if old is None:
        action, data = AuditAction.MEMBER_ADDED, {"role": new}
    elif new is None:
        action, data = AuditAction.MEMBER_REMOVED, {"role": old}
    else:
        action, data = AuditAction.MEMBER_ROLE_CHANGED, {"old_role": old, "new_role": new}
    audit_record(action=action, actor=actor, team=team, target=user, data=data, ip=ip)


@transaction.atomic
def membership_set(*, team: Team, user: User, role: str, actor: User | None = None) -> Membership:
    """Add ``user`` with ``role``, or give a member that role (``manage.py createtoken``)."""
    if role not in Role.values:
        raise invalid("role", f"Role must be one of {', '.join(Role.values)}.")
    old = Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()
    membership, _ = Membership.objects.update_or_create(
        team=team, user=user, defaults={"role": role}
    )
    _audit_member(team=team, user=user, old=old, new=role, actor=actor)
    return membership


def user_get_or_create(*, username: str) -> tuple[User, bool]:
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is not None:
        return user, False
    user = user_model.objects.create_user(username=username)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    return user, True


def require_owner(role: str | None) -> None:
    if role != Role.OWNER:
        raise PermissionDenied("Only owners of the team can do this.")


def _clean_role(role: str) -> str:
    if role not in Role.values:
        raise invalid("role", f"Role must be one of {', '.join(Role.values)}.")
    return role


@transaction.atomic
def membership_add(
    *,
    team: Team,
    user: User,
    role: str,
    actor: User | None = None,
    ip: str | None = None,
) -> Membership:
    """Add a newcomer; an existing member is refused (their role changes elsewhere)."""
    role = _clean_role(role)
    if Membership.objects.filter(team=team, user=user).exists():
        raise ApplicationError(
            "already_exists",
            f"{user.get_username()} is already a member of {team.slug}.",
            field="member",
        )
    membership = Membership.objects.create(team=team, user=user, role=role)
    _audit_member(team=team, user=user, old=None, new=role, actor=actor, ip=ip)
    return membership


def _require_another_owner(membership: Membership) -> None:
    """Refuse to take away the team's last owner: nobody could manage it any more.

    Locking the team row first makes two owners demoting each other at once
    take turns, so the second one sees that only one owner is left.
    """
    Team.objects.select_for_update().filter(pk=membership.team_id).first()
    others = Membership.objects.filter(team_id=membership.team_id, role=Role.OWNER)
    if not others.exclude(pk=membership.pk).exists():
        raise ApplicationError(
            "last_owner",
            f"{membership.user.get_username()} is the last owner of {membership.team.slug}:"
            " make another member an owner first.",
            field="role",
        )


@transaction.atomic
def membership_role_change(
    *,
    membership: Membership,
    role: str,
    actor: User | None = None,
    ip: str | None = None,
) -> Membership:
    role = _clean_role(role)
    if membership.role == Role.OWNER and role != Role.OWNER:
        _require_another_owner(membership)
    old, membership.role = membership.role, role
    membership.save(update_fields=["role"])
    team, user = membership.team, membership.user
    _audit_member(team=team, user=user, old=old, new=role, actor=actor, ip=ip)
    return membership


@transaction.atomic
def membership_remove(
    *,
    team: Team,
    user: User,
    actor: User | None = None,
    ip: str | None = None,
) -> None:
    membership = (
        Membership.objects.select_related("team", "user").filter(team=team, user=user).first()
    )
    if membership is None:
        raise NotFound("Member")
    if membership.role == Role.OWNER:
        _require_another_owner(membership)
    membership.delete()
    _audit_member(team=team, user=user, old=membership.role, new=None, actor=actor, ip=ip)
    events.publish(events.MembershipRemoved(team_id=team.pk, user_id=user.pk))


# --- API tokens ------------------------------------------------------------------


def token_hash(raw: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough: there is
    # nothing to brute-force, and lookups stay one indexed query.
    return hashlib.sha256(raw.encode()).hexdigest()


# What a token that authenticates nobody is told, by the REST and the MLflow API alike:
# unknown, revoked, or its user deactivated (which of these is not said).
TOKEN_NOT_VALID = "The token is not valid or was revoked."  # noqa: S105 - a message, not a secret


class TokenExpired(ApplicationError):
    """The token is right but past its ``expires_at``: a new one is needed, not a fix."""

    status = 401

    def __init__(self, token: ApiToken) -> None:
        assert token.expires_at is not None  # only a token with an expiry expires
        when = token.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        super().__init__(
            "token_expired",
            f"The token {token.prefix}… expired on {when}:"
            " create a new one under Settings → API tokens.",
        )


@transaction.atomic
def token_create(
    *,
    user: User,
    name: Any,
    scope: str = TokenScope.FULL,
    expires_at: datetime | None = None,
    ip: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned once and never stored."""
    name = clean_text(name, field="name", max_length=max_length(ApiToken, "name"), required=True)
    if scope not in TokenScope.values:
        raise invalid("scope", f"Scope must be one of {', '.join(TokenScope.values)}.")
    if expires_at is not None and expires_at <= timezone.now():
        raise invalid("expires_at", "The expiry must be in the future.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=raw[:10],
        key_hash=token_hash(raw),
        scope=scope,
        expires_at=expires_at,
    )
    data = {"scope": scope, "expires_at": moment(expires_at)}
    audit_record(action=AuditAction.TOKEN_CREATED, actor=user, target=token, data=data, ip=ip)
    return token, raw


@transaction.atomic
def token_revoke(*, token: ApiToken, ip: str | None = None) -> None:
    """Revoke once (compare-and-set): of two revokes at once, one changes the row and is logged."""
    now = timezone.now()
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        token.revoked_at = now
        audit_record(action=AuditAction.TOKEN_REVOKED, actor=token.user, target=token, ip=ip)


def token_in_header(authorization: str) -> str | None:
    """The token an ``Authorization`` header carries: ``Bearer <token>``, or MLflow's
    ``Basic`` with the token as the password (what ``MLFLOW_TRACKING_PASSWORD`` sends)."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def token_authenticate(raw: str) -> ApiToken | None:
    """The active token for ``raw`` (with its user), touching ``last_used_at``.

    The lookup compares SHA-256 digests in the database's unique index, never
    the raw token: timing the comparison could at most reveal a prefix of a
    digest, which says nothing about any token. The row carries ``scope`` and
    ``expires_at``, so checking them costs no further query. An expired token
    raises ``TokenExpired`` (its owner gets told, not just "invalid").
    """
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=token_hash(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    if token.is_expired:
        raise TokenExpired(token)
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# --- Projects --------------------------------------------------------------------------


def project_create(
    *, user: User, team_slug: Any, slug: Any, description: Any = ""
) -> ProjectWithRole:
    team_slug = clean_slug(team_slug, field="team", max_length=max_length(Team, "slug"))
    slug = clean_slug(slug, field="name", max_length=max_length(Project, "slug"))
    description = clean_text(
        description, field="description", max_length=max_length(Project, "description")
    )
    team, role = team_get_for_user(user, team_slug)
    if role not in WRITE_ROLES:
        raise PermissionDenied("Viewers cannot create projects.")
    try:
        with transaction.atomic():
            project = Project.objects.create(
                team=team, slug=slug, description=description, created_by=user
            )
    except IntegrityError:
        raise ApplicationError(
            "already_exists", f"Project {team.slug}/{slug} already exists.", field="name"
        ) from None
    return with_role(project, role)


def project_get_or_create_for_write(
    *, user: User, full_name: str, field: str = "project"
) -> ProjectWithRole:
    """The project to write into; created on first use by an editor or owner (as W&B does)."""
    team_slug, project_slug = split_project_name(full_name, field=field)
    team, role = team_get_for_user(user, team_slug, field=field)
    if role not in WRITE_ROLES:
        if not Project.objects.filter(team=team, slug=project_slug).exists():
            raise NotFound(f"Project {full_name!r}", field=field)
        raise PermissionDenied("Viewers cannot write to this project.")
    clean_slug(project_slug, field=field, max_length=max_length(Project, "slug"))
    project, _ = Project.objects.get_or_create(
        team=team, slug=project_slug, defaults={"created_by": user}
    )
    return with_role(project, role)


@transaction.atomic
def project_update(
    *, project: Project, slug: str | None = None, description: str | None = None
) -> Project:
    """Rename and/or describe a project by ``project_create``'s rules.

    On an error the project object is left as it was, so a form can show it again.
    """
    fields: dict[str, str] = {}
    if slug is not None and slug != project.slug:
        fields["slug"] = clean_slug(slug, field="name", max_length=max_length(Project, "slug"))
    if description is not None:
        fields["description"] = clean_text(
            description, field="description", max_length=max_length(Project, "description")
        )
    if not fields:
        return project
    try:
        with transaction.atomic():
            Project.objects.filter(pk=project.pk).update(**fields)
    except IntegrityError:
        raise ApplicationError(
            "already_exists", f"Project {project.team.slug}/{slug} already exists.", field="name"
        ) from None
    for name, value in fields.items():
        setattr(project, name, value)
    return project


@transaction.atomic
def project_delete(*, project: Project) -> int:
    """Delete the project with its runs, their metrics and, once that commits, their files;
    answers how many runs went."""
    project_id = project.pk
    _, deleted = project.delete()
    transaction.on_commit(lambda: storage.remove_project_files(project_id))
    return deleted.get(Run._meta.label, 0)


# --- Runs --------------------------------------------------------------------------------


def _tags_replace(run: Run, tags: list[str]) -> None:
    RunTag.objects.filter(run=run).exclude(name__in=tags).delete()
    RunTag.objects.bulk_create([RunTag(run=run, name=tag) for tag in tags], ignore_conflicts=True)


def _clean_run_text(name: str, value: Any) -> str:
    return clean_text(value, field=name, max_length=max_length(Run, name))


def run_clean_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Validate the writable run fields present in ``data``."""
    rules: dict[str, Callable[[Any], Any]] = {
        **{
            name: partial(_clean_run_text, name)
            for name in ("name", "group", "notes", "host", "command", "error", "traceback")
        },
        "metadata": lambda v: clean_json_object(v, field="metadata"),
        "config": lambda v: clean_json_object(v, field="config"),
        "summary": lambda v: clean_json_object(v, field="summary"),
        "git": lambda v: clean_json_object(v, field="git"),
        "tags": lambda v: clean_tags(v, field="tags"),
    }
    return {name: rules[name](value) for name, value in data.items() if name in rules}


def run_create(*, user: User | None, project: Project, **fields: Any) -> Run:
    return run_create_or_get(user=user, project=project, **fields)[0]


def run_create_or_get(
    *, user: User | None, project: Project, client_id: str = "", **fields: Any
) -> tuple[Run, bool]:
    """Create a run; ``(run, created)``.

    A ``client_id`` makes the request safe to retry: the same user sending
    the same id again gets the run the first request created.
    """
    client_id = clean_text(client_id, field="client_id", max_length=max_length(Run, "client_id"))
    fields = run_clean_fields(fields)
    if client_id:
        existing = _run_for_client_id(user, project, client_id)
        if existing is not None:
            return existing, False
    try:
        return _run_insert(user=user, project=project, client_id=client_id, fields=fields), True
    except IntegrityError:  # a concurrent retry of the same request won the race
        raced = _run_for_client_id(user, project, client_id)
        if raced is None:
            raise  # not that race: another constraint failed
        return raced, False


def _run_for_client_id(user: User | None, project: Project, client_id: str) -> Run | None:
    run = Run.objects.filter(created_by=user, client_id=client_id).first()
    if run is not None and run.project_id != project.pk:
        raise Conflict(
            "conflict",
            "This client_id already created a run in another project.",
            field="client_id",
        )
    return run


@transaction.atomic
def _run_insert(
    *, user: User | None, project: Project, client_id: str, fields: dict[str, Any]
) -> Run:
    tags = fields.pop("tags", [])
    # Its colour for good: two runs created at the same moment may share one, nothing worse.
    index = Run.objects.filter(project=project).count()
    run = Run.objects.create(
        project=project, created_by=user, client_id=client_id, project_index=index, **fields
    )
    if not run.name:
        run.name = generated_run_name(run.pk)
        run.save(update_fields=["name"])
    _tags_replace(run, tags)
    events.publish(events.RunCreated(run_id=run.pk, project_id=project.pk))
    return run


def generated_run_name(run_id: int) -> str:
    adjectives = ("brisk", "calm", "eager", "fluent", "gentle", "lucid", "nimble", "quiet", "vivid")
    nouns = ("falcon", "glacier", "harbor", "meadow", "nebula", "orchid", "river", "summit")
    return f"{adjectives[run_id % len(adjectives)]}-{nouns[run_id % len(nouns)]}-{run_id}"


def _status_change(run: Run, *, status: str, exit_code: int | None, now: Any) -> None:
    if status not in RunStatus.values:
        raise invalid("status", f"Status must be one of {', '.join(RunStatus.values)}.")
    run.status = status
    run.ended_at = now if status in TERMINAL_STATUSES else None
    if exit_code is not None:
        run.exit_code = exit_code


@transaction.atomic
def run_update(*, run: Run, data: dict[str, Any]) -> Run:
    """Apply a PATCH: scalars and ``tags`` replace; ``config``, ``summary``, ``metadata`` merge.

    A ``null`` value inside one of those objects removes that key.
    """
    cleaned = run_clean_fields(data)
    old_status = run.status
    now = timezone.now()
    changed: set[str] = set()
    exit_code = _clean_exit_code(data.get("exit_code")) if "exit_code" in data else None
    if "status" in data:
        _status_change(run, status=data["status"], exit_code=exit_code, now=now)
        changed |= {"status", "ended_at", "exit_code"}
    elif exit_code is not None:
        run.exit_code = exit_code
        changed.add("exit_code")
    for name in ("config", "summary", "metadata"):
        if name in cleaned:
            merged = {**getattr(run, name), **cleaned.pop(name)}
            setattr(run, name, {k: v for k, v in merged.items() if v is not None})
            changed.add(name)
    if "tags" in cleaned:
        _tags_replace(run, cleaned.pop("tags"))
    for name, value in cleaned.items():
        setattr(run, name, value)
        changed.add(name)
    if changed:
        run.last_seen_at = now
        run.save(update_fields=[*sorted(changed), "last_seen_at"])
    if run.status != old_status:
        events.publish(
            events.RunStatusChanged(
                run_id=run.pk, project_id=run.project_id, old=old_status, new=run.status
            )
        )
    return run


def _clean_exit_code(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise invalid("exit_code", "Must be a 32-bit integer or null.")
    code: int = value
    return code


def run_heartbeat(*, run: Run) -> Run:
    """Mark the run alive; a run the stall scan had marked crashed is running again."""
    now = timezone.now()
    if run.status == RunStatus.CRASHED:
        return run_update(run=run, data={"status": RunStatus.RUNNING})
    Run.objects.filter(pk=run.pk).update(last_seen_at=now)
    run.last_seen_at = now
    return run


@transaction.atomic
def run_mark_crashed(*, run: Run, silent_since: datetime) -> bool:
    """``running`` → ``crashed`` if the run is still silent since then (compare-and-set).

    Two scans racing over the same run change it once; only the winner
    announces the status change, so ``run_failed`` rules fire once.
    """
    changed = Run.objects.filter(
        pk=run.pk, status=RunStatus.RUNNING, last_seen_at__lt=silent_since
    ).update(status=RunStatus.CRASHED, ended_at=timezone.now())
    if changed:
        events.publish(
            events.RunStatusChanged(
                run_id=run.pk,
                project_id=run.project_id,
                old=RunStatus.RUNNING,
                new=RunStatus.CRASHED,
            )
        )
    return bool(changed)


@transaction.atomic
def run_annotate(*, run: Run, notes: str | None = None, tags: list[str] | None = None) -> Run:
    """Edit what people write about a run; unlike ``run_update`` it is no sign of life."""
    data = {name: value for name, value in (("notes", notes), ("tags", tags)) if value is not None}
    cleaned = run_clean_fields(data)
    if "notes" in cleaned:
        run.notes = cleaned["notes"]
        run.save(update_fields=["notes"])
    if "tags" in cleaned:
        _tags_replace(run, cleaned["tags"])
    return run


@transaction.atomic
def runs_tag(
    *, runs: list[Run], add: list[str] | None = None, remove: list[str] | None = None
) -> None:
    """Add and remove tags on many runs at once (the project page's bulk edit)."""
    add, remove = clean_tags(add, field="tag"), clean_tags(remove, field="tag")
    run_ids = [run.pk for run in runs]
    RunTag.objects.filter(run_id__in=run_ids, name__in=remove).delete()
    if not add:
        return
    crowded = (
        RunTag.objects.filter(run_id__in=run_ids)
        .exclude(name__in=add)
        .values("run_id")
        .annotate(n=Count("id"))
        .filter(n__gt=MAX_TAGS - len(add))
    )
    if crowded.exists():
        raise invalid("tag", f"A run can carry at most {MAX_TAGS} tags.")
    new = [RunTag(run_id=run_id, name=tag) for run_id in run_ids for tag in add]
    RunTag.objects.bulk_create(new, ignore_conflicts=True)


MAX_ALERT_WAIT = 7 * 24 * 3600  # seconds a repeated SDK alert title may stay muted


@transaction.atomic
def sdk_alert_raise(
    *, run: Run, title: Any, text: Any = "", level: str = "info", wait_seconds: int = 60
) -> tuple[SdkAlert, bool]:
    """Record an alert from training code; ``(alert, raised)``.

    A repeat of the same title on the same run within ``wait_seconds`` of the
    last raised one is only counted on it (``raised`` is False), so a loop that
    alerts every step pages the team once per window.
    """
    title = clean_text(
        title, field="title", max_length=max_length(SdkAlert, "title"), required=True
    )
    text = clean_text(text, field="text", max_length=max_length(SdkAlert, "text"))
    if level not in AlertLevel.values:
        raise invalid("level", f"Level must be one of {', '.join(AlertLevel.values)}.")
    if (
        isinstance(wait_seconds, bool)
        or not isinstance(wait_seconds, int)
        or not (0 <= wait_seconds <= MAX_ALERT_WAIT)
    ):
        raise invalid("wait_duration", f"Must be whole seconds between 0 and {MAX_ALERT_WAIT}.")
    since = timezone.now() - timedelta(seconds=wait_seconds)
    recent = (
        SdkAlert.objects.select_for_update()
        .filter(run=run, title=title, created_at__gt=since)
        .first()
    )
    if recent is not None:
        SdkAlert.objects.filter(pk=recent.pk).update(repeats=F("repeats") + 1)
        return recent, False
    alert = SdkAlert.objects.create(run=run, title=title, text=text, level=level)
    events.publish(
        events.SdkAlertRaised(run_id=run.pk, project_id=run.project_id, alert_id=alert.pk)
    )
    return alert, True


def run_tags(run: Run) -> list[str]:
    return [tag.name for tag in run.tag_rows.all()]


def require_write(role: str | None) -> None:
    if role not in WRITE_ROLES:
        raise PermissionDenied("Viewers cannot change this.")


# --- Saved views of the runs table -------------------------------------------------------


def saved_view_save(*, user: User, project: ProjectWithRole, name: Any, query: str) -> SavedView:
    """Save the runs table's ``query`` under ``name``; the same name again replaces it."""
    require_write(project.role)
    name = clean_text(name, field="name", max_length=max_length(SavedView, "name"), required=True)
    if len(query) > max_length(SavedView, "query"):
        raise invalid("query", "This view has too many filters and columns to save.")
    view, created = SavedView.objects.get_or_create(
        project=project, name=name, defaults={"query": query, "created_by": user}
    )
    if not created:
        view.query = query
        view.updated_at = timezone.now()
        view.save(update_fields=["query", "updated_at"])
    return view


def saved_view_delete(*, project: ProjectWithRole, view_id: int) -> None:
    require_write(project.role)
    deleted, _ = SavedView.objects.filter(project=project, pk=view_id).delete()
    if not deleted:
        raise NotFound("View", field="view")
