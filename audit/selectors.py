"""Reading the audit log: a team's events, newest first (callers check who may read them).

A team's log holds that team's events only. Token events carry no team: a
token belongs to a user, not to any one team, and its events (names, scopes,
client addresses) are that user's business. Showing them to the owners of
every team the user is in let anyone who added someone to a team read their
whole token history (found in a security review).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from audit.models import AuditAction, AuditEvent
from kernel.errors import invalid

if TYPE_CHECKING:
    from tracking.models import Team


def clean_action(value: str | None) -> str | None:
    if not value:
        return None
    if value not in AuditAction.values:
        raise invalid("action", f"Action must be one of {', '.join(AuditAction.values)}.")
    return value


def clean_before(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:  # the database stores UTC: a moment beyond year 9999 there is bad input
        return value.astimezone(UTC)
    except OverflowError:
        raise invalid("before", "A moment between the years 1 and 9999.") from None


def audit_events(
    team: Team, *, action: str | None = None, before: datetime | None = None
) -> QuerySet[AuditEvent]:
    """The events of ``team`` (already access-checked), newest first."""
    events = AuditEvent.objects.filter(team=team)
    action, before = clean_action(action), clean_before(before)
    if action:
        events = events.filter(action=action)
    if before is not None:
        events = events.filter(created_at__lt=before)
    return events.order_by("-created_at", "-id")
