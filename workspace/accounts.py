"""What the profile page and the email banner show, and how the profile form fails.

A user without an email address sees a banner on every page until they add
one or dismiss it for the session: alerts to "all team members" and mention
emails skip them, and nothing else would tell them so. The banner costs no
query: ``request.user`` and the session are loaded already.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest, QueryDict

from kernel.forms import Form
from tracking import accounts

PROFILE_FIELDS = accounts.PROFILE_FIELDS
EMAIL_BANNER_DISMISSED = "labbook.email_banner_dismissed"


def email_banner(request: HttpRequest) -> bool:
    """Whether the page shows "Add your email": a user without one who has not dismissed it."""
    user = request.user
    if not user.is_authenticated:
        return False
    return not user.email and not request.session.get(EMAIL_BANNER_DISMISSED, False)


def email_banner_dismiss(request: HttpRequest) -> None:
    request.session[EMAIL_BANNER_DISMISSED] = True


def profile_form(user: User) -> Form:
    return Form(values={name: getattr(user, name) for name in PROFILE_FIELDS})


def profile_save(user: User, data: QueryDict) -> User:
    return accounts.profile_update(
        user=user,
        first_name=data.get("first_name", ""),
        last_name=data.get("last_name", ""),
        email=data.get("email", ""),
    )


def profile_page_context(form: Form) -> dict[str, Any]:
    return {"section": "profile", "form": form}
