"""What the team page, the settings pages and the top bar show, and how their forms fail.

Reads go through ``tracking.selectors`` and writes through ``tracking.services``;
this module shapes rows for the templates and puts a service's
``ApplicationError`` next to the form field it names. Views check roles
before any write (``services.require_write`` / ``require_owner``): hidden
buttons are not a permission check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import SessionBase
from django.db.models import Count, Max, QuerySet
from django.http import HttpRequest, QueryDict
from django.utils import timezone

from kernel.errors import invalid
from kernel.forms import Form
from tracking import invitations, selectors, services
from tracking.models import (
    INVITATION_TTL,
    WRITE_ROLES,
    ApiToken,
    Membership,
    Project,
    Role,
    Run,
    Team,
    TeamInvitation,
    TokenScope,
)
from tracking.presentation import RunRow
from workspace import accounts, pages

if TYPE_CHECKING:
    from tracking.models import ProjectWithRole, TeamWithRole

NEW_TOKEN_KEY = "labbook.new_token"  # noqa: S105 - a session key, not a secret
TOKEN_FIELDS = ("name", "scope", "expires_in")
TOKEN_EXPIRY_DAYS = ("7", "30", "90", "365")
MEMBER_FIELDS = ("member", "role")
CONFIRM_REMOVE = "yes"  # the confirmation page's button: a bare POST removes nobody
PROJECT_FIELDS = ("name", "description")
TEAM_FIELDS = ("slug", "name")


# --- Top bar ---------------------------------------------------------------------


def top_bar(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the user's teams for the team switcher and the user menu.

    The queryset is lazy, so it costs one query on pages that render the top
    bar and none elsewhere (the admin, anonymous visitors). The email banner
    reads the loaded user and session: no query.
    """
    user = getattr(request, "user", None)  # absent when a template renders outside a request
    if user is None or not user.is_authenticated:
        return {}
    return {
        "nav_teams": selectors.teams_for_user(user),
        "email_banner": accounts.email_banner(request),
    }


# --- Team page ---------------------------------------------------------------------


def team_projects(user: User, team: Team) -> list[Project]:
    """The team's projects with ``run_count`` and ``last_run_at`` (one query)."""
    projects = selectors.projects_for_user(user, team_slug=team.slug)
    return list(projects.annotate(run_count=Count("runs"), last_run_at=Max("runs__created_at")))


def _team_runs(user: User, team: Team) -> QuerySet[Run]:
    # The team tables show no tags or metrics: skip runs_for_user's prefetches.
    return selectors.runs_for_user(user).prefetch_related(None).filter(project__team=team)


def team_recent_runs(user: User, team: Team, *, now: datetime) -> list[RunRow]:
    return pages.recent_runs(_team_runs(user, team), now=now)


def team_attention_runs(user: User, team: Team, *, now: datetime) -> list[RunRow]:
    return pages.attention_runs(_team_runs(user, team), now=now)


def team_page_context(user: User, team: TeamWithRole, *, form: Form) -> dict[str, Any]:
    now = timezone.now()
    return {
        "current_team": team,
        "team": team,
        "projects": team_projects(user, team),
        "runs": team_recent_runs(user, team, now=now),
        "attention": team_attention_runs(user, team, now=now),
        "attention_days": pages.ATTENTION_DAYS,
        "can_write": team.role in WRITE_ROLES,
        "is_owner": team.role == Role.OWNER,
        "form": form,
    }


def team_create(user: User, data: QueryDict) -> Team:
    slug = data.get("slug", "").strip()
    return services.team_create(slug=slug, owner=user, name=data.get("name", "").strip())


def project_create(user: User, team: Team, data: QueryDict) -> Project:
    return services.project_create(
        user=user,
        team_slug=team.slug,
        slug=data.get("name", "").strip(),
        description=data.get("description", ""),
    )


# --- Settings: team members -----------------------------------------------------------


@dataclass
class RowError:
    """An error about one member's row (changing their role, removing them)."""

    user_id: int
    message: str


def members_page_context(
    team: TeamWithRole, *, form: Form, row_error: RowError | None = None
) -> dict[str, Any]:
    return {
        "section": "team",
        "current_team": team,
        "team": team,
        "memberships": list(selectors.team_memberships(team)),
        "is_owner": team.role == Role.OWNER,
        # Only owners manage invitations; what they show is what the owner typed.
        "invitations": list(invitations.team_invitations(team)) if team.role == Role.OWNER else [],
        "invitation_days": INVITATION_TTL.days,
        "roles": Role.choices,
        "form": form,
        "row_error": row_error,
    }


def member_remove_context(
    team: TeamWithRole, membership: Membership, *, you: User
) -> dict[str, Any]:
    return {
        "section": "team",
        "current_team": team,
        "team": team,
        "membership": membership,
        "leaving": membership.user_id == you.pk,
        "confirm": CONFIRM_REMOVE,
    }


def member_invite(
    team: Team, data: QueryDict, *, actor: User, ip: str | None = None
) -> TeamInvitation:
    """Invite whoever the owner typed: the same answer whether or not they have an account."""
    invitation, _ = invitations.invitation_create(
        team=team, invitee=data.get("member", ""), role=data.get("role", ""), actor=actor, ip=ip
    )
    return invitation


# --- Settings: my invitations ----------------------------------------------------------------


ANSWERS = ("accept", "decline")  # the ``answer`` of the buttons on an emailed link's page


def my_invitations_context(user: User) -> dict[str, Any]:
    return {"section": "invitations", "invitations": list(invitations.invitations_for_user(user))}


def link_answer(data: QueryDict) -> str | None:
    """The button pressed on a link's page: one of ``ANSWERS``, or None when unclear."""
    answers = data.getlist("answer")
    return answers[0] if len(answers) == 1 and answers[0] in ANSWERS else None


def invitation_page_context(
    request: HttpRequest, invitation: TeamInvitation | None, error: str, *, link: str
) -> dict[str, Any]:
    """An invitation's page: the offer, and the account that would answer it.

    On the emailed link's page (``link``, where its buttons post) an
    invitation to an email address is answered by whichever account is logged
    in, so the page names that account and offers to switch to another.
    """
    return {
        "section": "invitations",
        "invitation": invitation,
        "error": error,
        "answerable": bool(link and invitation and invitation.state == "pending"),
        "by_email": bool(invitation and invitation.email),
        "you": request.user.get_username(),
        "link": link,
    }


# --- Settings: API tokens ------------------------------------------------------------------


def token_expiry(value: str) -> datetime | None:
    """The form's "expires in" choice (days, empty for never) as a moment."""
    if value == "":
        return None
    if value not in TOKEN_EXPIRY_DAYS:
        raise invalid(
            "expires_in", f"Pick one of {', '.join(TOKEN_EXPIRY_DAYS)} days, or no expiry."
        )
    return timezone.now() + timedelta(days=int(value))


def token_create(
    user: User, session: SessionBase, data: QueryDict, *, ip: str | None = None
) -> ApiToken:
    """Create a token and keep its raw value in the session for the next page only."""
    token, raw = services.token_create(
        user=user,
        name=data.get("name", ""),
        scope=data.get("scope") or TokenScope.FULL,
        expires_at=token_expiry(data.get("expires_in", "")),
        ip=ip,
    )
    session[NEW_TOKEN_KEY] = {"id": token.pk, "name": token.name, "raw": raw}
    return token


def new_token_pop(session: SessionBase) -> dict[str, Any] | None:
    """The token created just before, once: reading it removes it from the session."""
    return session.pop(NEW_TOKEN_KEY, None)


def tokens_page_context(
    user: User, *, new_token: dict[str, Any] | None, form: Form, api_url: str
) -> dict[str, Any]:
    return {
        "section": "tokens",
        "tokens": list(selectors.tokens_for_user(user)),
        "new_token": new_token,
        "form": form,
        "api_url": api_url,
        "scopes": TokenScope.choices,
        "expiry_days": TOKEN_EXPIRY_DAYS,
    }


# --- Settings: project -----------------------------------------------------------------------


def project_form(project: Project) -> Form:
    return Form(values={"name": project.slug, "description": project.description})


def project_settings_context(
    project: ProjectWithRole, *, form: Form, delete_form: Form | None = None
) -> dict[str, Any]:
    return {
        "current_team": project.team,
        "project": project,
        "project_href": project.get_absolute_url(),
        "can_edit": project.role in WRITE_ROLES,
        "can_delete": project.role == Role.OWNER,
        "run_count": project.runs.count(),
        "form": form,
        "delete_form": delete_form or Form(),
    }


def project_update(project: Project, data: QueryDict) -> Project:
    return services.project_update(
        project=project,
        slug=data.get("name", "").strip(),
        description=data.get("description", ""),
    )


def project_delete(project: Project, data: QueryDict) -> int:
    """Delete once the user has typed the project's full name; answers how many runs went."""
    if data.get("confirm", "").strip() != project.full_name:
        raise invalid("confirm", f"Type {project.full_name} exactly to confirm.")
    return services.project_delete(project=project)
