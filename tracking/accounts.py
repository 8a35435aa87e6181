"""The user's own account: their name and email address (the profile page).

The address is where alerts to "all team members" and mention emails go, so
it must be a valid one and no other account's (compared case-insensitively).
It may be left empty: that user gets no email. Nobody proves they read the
address, so it grants nothing: an invitation to an email address is answered
only through its emailed link (``tracking.invitations``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from kernel.errors import invalid
from kernel.limits import max_length
from tracking.validation import clean_text

PROFILE_FIELDS = ("first_name", "last_name", "email")


@transaction.atomic
def profile_update(*, user: User, first_name: Any, last_name: Any, email: Any) -> User:
    """Save the user's names and address; a bad or taken address names the ``email`` field."""
    cleaned = (
        _clean_name(first_name, "first_name"),
        _clean_name(last_name, "last_name"),
        _clean_email(user, email),
    )
    # Checked in full before any is set: a refused save leaves ``user`` as it was.
    user.first_name, user.last_name, user.email = cleaned
    user.save(update_fields=list(PROFILE_FIELDS))
    return user


def _clean_name(value: Any, field: str) -> str:
    return clean_text(value, field=field, max_length=max_length(get_user_model(), field))


def _clean_email(user: User, value: Any) -> str:
    address = clean_text(value, field="email", max_length=max_length(get_user_model(), "email"))
    if not address:
        return ""
    try:
        validate_email(address)
    except ValidationError:
        raise invalid("email", f"{address!r} is not a valid email address.") from None
    others = get_user_model().objects.exclude(pk=user.pk)
    if others.filter(email__iexact=address).exists():
        raise invalid("email", "Another account uses this address: use your own.")
    return address
