"""Accounts made from the command line: the first administrator, and tokens for scripts.

``manage.py up`` calls ``admin_bootstrap`` on every start (it does nothing once a
superuser exists); ``manage.py createtoken`` calls ``token_issue``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import models, transaction

from kernel.errors import ApplicationError, invalid
from kernel.limits import max_length
from tracking.models import Membership, Role, Team
from tracking.services import membership_set, team_create, token_create, user_get_or_create
from tracking.validation import clean_slug

ADMIN_USERNAME = "admin"
ADMIN_TEAM = "default"
ADMIN_TOKEN_NAME = "admin (created by up)"  # noqa: S105 - a label, not a secret
DEFAULT_TOKEN_NAME = "created by createtoken"  # noqa: S105 - a label, not a secret


@dataclass(frozen=True)
class AdminCredentials:
    username: str
    password: str
    token: str


@dataclass(frozen=True)
class IssuedToken:
    token: str
    user_created: bool
    team_created: bool
    role: str | None  # the user's role in the team; None when no team was named


@transaction.atomic
def admin_bootstrap() -> AdminCredentials | None:
    """On first start (no superuser yet): user ``admin``, team ``default``, an API token.

    The password and the token are returned once and stored only hashed.
    """
    if superuser_first() is not None:
        return None
    password = secrets.token_urlsafe(12)
    user, _ = user_get_or_create(username=ADMIN_USERNAME)
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save(update_fields=["is_staff", "is_superuser", "password"])
    team_join(slug=ADMIN_TEAM, user=user, role=Role.OWNER)
    _, raw = token_create(user=user, name=ADMIN_TOKEN_NAME)
    return AdminCredentials(username=ADMIN_USERNAME, password=password, token=raw)


def superuser_first() -> User | None:
    return get_user_model().objects.filter(is_superuser=True).order_by("pk").first()


@transaction.atomic
def token_issue(
    *, username: str, team_slug: str | None = None, role: str | None = None, name: str = ""
) -> IssuedToken:
    """A fresh token for ``username``, creating the user (and the team) when missing.

    With ``team_slug`` the user joins the team: as owner when the team is new,
    else with ``role`` (an existing member keeps their role when ``role`` is None;
    a newcomer becomes an editor).
    """
    _check_role(role)
    username = _clean_username(username)
    user, user_created = user_get_or_create(username=username)
    team_created, member_role = False, None
    if team_slug is not None:
        team_created, member_role = team_join(slug=team_slug, user=user, role=role)
    _, raw = token_create(user=user, name=name or DEFAULT_TOKEN_NAME)
    return IssuedToken(raw, user_created, team_created, member_role)


def team_join(*, slug: str, user: User, role: str | None) -> tuple[bool, str]:
    """Put ``user`` in team ``slug``; answer (team was created, the user's role now)."""
    slug = clean_slug(slug, field="team", max_length=max_length(Team, "slug"))
    team = Team.objects.select_for_update().filter(slug=slug).first()
    if team is None:
        team_create(slug=slug, owner=user)
        return True, Role.OWNER
    current = Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()
    if role is None and current is not None:
        return False, current
    role = role or Role.EDITOR
    if current == Role.OWNER and role != Role.OWNER:
        _check_not_last_owner(team)
    membership_set(team=team, user=user, role=role)
    return False, role


def _check_not_last_owner(team: Team) -> None:
    if Membership.objects.filter(team=team, role=Role.OWNER).count() <= 1:
        raise ApplicationError(
            "last_owner",
            f"This user is the only owner of team {team.slug!r}; make someone else owner first.",
            field="role",
        )


def _check_role(role: str | None) -> None:
    if role is not None and role not in Role.values:
        raise invalid("role", f"Role must be one of {', '.join(Role.values)}.")


def _clean_username(username: str) -> str:
    user_model = get_user_model()
    username = user_model.normalize_username(str(username).strip())
    name_field = user_model._meta.get_field(user_model.USERNAME_FIELD)
    assert isinstance(name_field, models.CharField)  # a name: Django's own is one
    max_length = name_field.max_length
    if not username or (max_length is not None and len(username) > max_length):
        raise invalid("username", f"A username has 1 to {max_length} characters.")
    validator = getattr(user_model, "username_validator", None)
    try:
        if validator is not None:
            validator(username)
    except ValidationError as error:
        raise invalid("username", " ".join(error.messages)) from None
    return username
