"""Access-checked reads of alerting: members of a team see its alerting, others get NotFound.

Each object read for a single-object view carries ``role``, the caller's role
in the owning team, for the write checks in ``alerts.services``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from django.db.models import Model, OuterRef, Q, QuerySet, Subquery

from alerts.models import Alert, AlertRule, Destination, Notification, Silence
from kernel.errors import NotFound
from kernel.ids import by_id
from tracking.models import Membership, Project, Team
from tracking.selectors import User

if TYPE_CHECKING:
    from alerts.models import AlertWithRole, DestinationWithRole, RuleWithRole

M = TypeVar("M", bound=Model)


def _role(user: User, team_ref: str) -> Subquery:
    rows = Membership.objects.filter(team=OuterRef(team_ref), user_id=user.pk)
    return Subquery(rows.values("role")[:1])


def _one(queryset: QuerySet[M], pk: int, what: str) -> M:
    found = by_id(queryset, pk)
    if found is None:
        raise NotFound(what)
    return found


def destinations_for_user(user: User, *, team: Team | None = None) -> QuerySet[DestinationWithRole]:
    # Personal destinations (alerts.personal) are their owner's, never the team's to list or edit.
    found = Destination.objects.filter(team__memberships__user_id=user.pk, owner__isnull=True)
    if team is not None:
        found = found.filter(team=team)
    return found.select_related("team").annotate(role=_role(user, "team_id"))


def destination_get_for_user(user: User, pk: int) -> DestinationWithRole:
    return _one(destinations_for_user(user), pk, "Destination")


def rules_for_user(user: User, *, project: Project | None = None) -> QuerySet[RuleWithRole]:
    # Personal rules (alerts.personal) are their owner's, never the team's to list or edit.
    rules = AlertRule.objects.filter(
        project__team__memberships__user_id=user.pk, owner__isnull=True
    )
    if project is not None:
        rules = rules.filter(project=project)
    return (
        rules.select_related("project__team")
        .prefetch_related("destinations")
        .annotate(role=_role(user, "project__team_id"))
    )


def rule_get_for_user(user: User, pk: int) -> RuleWithRole:
    return _one(rules_for_user(user), pk, "Alert rule")


def alerts_for_user(
    user: User, *, project: Project | None = None, state: str | None = None
) -> QuerySet[Alert]:
    alerts = Alert.objects.filter(rule__project__team__memberships__user_id=user.pk)
    if project is not None:
        alerts = alerts.filter(rule__project=project)
    if state:
        alerts = alerts.filter(state=state)
    return alerts.select_related("rule__project__team", "run", "acknowledged_by")


def alerts_listed_for_user(
    user: User, *, project: Project | None = None, state: str | None = None
) -> QuerySet[Alert]:
    """The alerts a list shows: the team's, and the caller's own personal ones (a teammate's
    personal alerts are theirs; each alert's page still opens for every member)."""
    alerts = alerts_for_user(user, project=project, state=state)
    return alerts.filter(Q(rule__owner__isnull=True) | Q(rule__owner_id=user.pk))


def alert_get_for_user(user: User, pk: int) -> Alert:
    return _one(alerts_for_user(user), pk, "Alert")


def alert_get_with_role(user: User, pk: int) -> AlertWithRole:
    """The alert with ``role``, the caller's role in its team: for acting on it."""
    alerts = alerts_for_user(user).annotate(role=_role(user, "rule__project__team_id"))
    return _one(alerts, pk, "Alert")


def notifications_for_user(user: User, *, alert: Alert | None = None) -> QuerySet[Notification]:
    rows = Notification.objects.filter(destination__team__memberships__user_id=user.pk).filter(
        Q(destination__owner__isnull=True) | Q(destination__owner_id=user.pk)  # not others' own
    )
    if alert is not None:
        rows = rows.filter(alert=alert)
    return rows.select_related("destination", "alert")


def silences_for_user(user: User, *, project: Project | None = None) -> QuerySet[Silence]:
    teams = Membership.objects.filter(user_id=user.pk).values("team_id")
    scope = (
        Q(project__team_id__in=teams)
        | Q(rule__project__team_id__in=teams)
        | Q(run__project__team_id__in=teams)
    )
    silences = Silence.objects.filter(scope)
    if project is not None:
        silences = silences.filter(
            Q(project=project) | Q(rule__project=project) | Q(run__project=project)
        )
    return silences.select_related("project__team", "rule__project__team", "run__project__team")


def silence_get_for_user(user: User, pk: int) -> Silence:
    return _one(silences_for_user(user), pk, "Silence")
