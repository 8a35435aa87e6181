"""Writing the audit log: one ``audit_record`` call inside the service that makes the change.

The call runs in the service's transaction, so a change that rolls back
leaves no event and a committed change always has its event. Only names go
into an event (``target_repr``, ``data``): the targets' own ``__str__`` is
never used, because a token's or a share link's shows the start of its secret.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import models
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from kernel.http import request_ip, valid_ip

if TYPE_CHECKING:
    from tracking.models import Team

# A public link opened by many readers must not flood the log: one event per
# link and client address in this window.
ACCESS_QUIET = timedelta(minutes=10)
FORBIDDEN_KEYS = ("secret", "token", "password")  # never a key of ``data``
MAX_REPR = 250


def _report_name(report: Any) -> str:
    # Owners may not read a teammate's private report: not even its title leaks here.
    if report.visibility == "private":
        return f"private report #{report.pk}"
    return f"report “{report.title}”"


# What a target is called in the log, by model: an allowlist (anything else is a bug).
TARGETS: dict[str, tuple[str, Callable[[Any], str]]] = {
    settings.AUTH_USER_MODEL.lower(): ("user", lambda user: user.get_username()),
    "tracking.apitoken": ("token", lambda token: token.name),
    # What the owner typed, never the account behind it (see tracking.invitations).
    "tracking.teaminvitation": ("invitation", lambda invitation: invitation.invited_as),
    "reports_app.report": ("report", _report_name),
    "reports_app.sharelink": ("share_link", lambda link: f"link to {_report_name(link.report)}"),
    "alerts.alertrule": ("alert_rule", lambda rule: rule.name),
    "alerts.destination": ("destination", lambda destination: destination.name),
    "alerts.alert": ("alert", lambda alert: f"alert #{alert.pk}: {alert.summary}"),
}


def _actor_name(actor: User | AnonymousUser | None) -> str:
    if actor is None:
        return "system"  # a command, a worker, a test: no person behind the change
    return actor.get_username() if actor.is_authenticated else "anonymous"


def _target(target: models.Model | None) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    kind, describe = TARGETS[target._meta.label_lower]
    return kind, str(target.pk), describe(target)[:MAX_REPR]


def _clean_data(data: dict[str, Any] | None) -> dict[str, Any]:
    data = dict(data or {})
    for key in data:
        if any(word in key.lower() for word in FORBIDDEN_KEYS):
            raise ValueError(f"The audit log keeps no secrets: drop {key!r} from the event.")
    return data


def audit_record(
    *,
    action: str,
    actor: User | AnonymousUser | None,
    team: Team | None = None,
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    ip: str | None = None,
    actor_name: str | None = None,
) -> AuditEvent:
    """Append one event; call it inside the transaction of the change it records.

    ``actor`` None is "system" (no person: a command, a worker); an
    ``AnonymousUser`` is "anonymous" (a visitor who is not logged in).
    ``actor_name`` names an actor the log must not identify (an invitee who
    declines). ``ip`` defaults to the request's client address.
    """
    target_type, target_id, target_repr = _target(target)
    user = actor if actor is not None and actor.is_authenticated else None
    return AuditEvent.objects.create(
        team=team,
        team_slug=team.slug if team is not None else "",
        actor=user,
        actor_name=actor_name or _actor_name(actor),
        action=AuditAction(action),
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        data=_clean_data(data),
        ip=valid_ip(ip) or request_ip(request),
    )


def audit_share_link_access(
    *, link: Any, actor: User | AnonymousUser | None, ip: str | None
) -> AuditEvent | None:
    """Record that someone opened ``link``, unless this address did in the last 10 minutes.

    The caller must hold the link's row lock (``share_link_touch`` updates the
    row first), so two requests at once take turns and the second sees the
    first one's event.
    """
    recent = AuditEvent.objects.filter(
        action=AuditAction.SHARE_LINK_ACCESSED,
        target_type="share_link",
        target_id=str(link.pk),
        ip=valid_ip(ip),
        created_at__gt=timezone.now() - ACCESS_QUIET,
    )
    if recent.exists():
        return None
    team = link.report.project.team
    return audit_record(
        action=AuditAction.SHARE_LINK_ACCESSED, actor=actor, team=team, target=link, ip=ip
    )


def moment(value: datetime | None) -> str | None:
    """A datetime for ``data``: ISO 8601, or None."""
    return value.isoformat() if value is not None else None


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The names of ``before`` whose values ``after`` changes: what an ``*.updated`` event says.

    Only the names: a destination's config holds URLs and a webhook's secret.
    """
    return sorted(name for name in before if after.get(name) != before[name])
