"""Writes of alerting's configuration: destinations, rules, silences, and the test message.

Editors and owners of a team configure its alerting; viewers read it; anyone
else gets ``NotFound`` from the selectors before reaching these functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from alerts import delivery, triggers
from alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    Destination,
    DestinationKind,
    Notification,
    NotificationEvent,
    NotificationStatus,
    Silence,
)
from alerts.transports import transport_for
from alerts.transports.base import TransportError
from audit.models import AuditAction
from audit.services import audit_record, changed_fields, moment
from kernel.errors import ApplicationError, invalid
from kernel.limits import max_length
from tracking.models import Project, Run, Team
from tracking.services import require_write
from tracking.validation import clean_tags, clean_text

if TYPE_CHECKING:
    from alerts.models import AlertWithRole, RuleWithRole
    from tracking.models import ProjectWithRole

MAX_GROUP_WAIT = 3600
MIN_REPEAT = 60
MAX_REPEAT = 30 * 86400


# --- Destinations --------------------------------------------------------------------------


def _clean_destination(kind: Any, name: Any, config: Any) -> dict[str, Any]:
    if kind not in DestinationKind.values:
        raise invalid("kind", f"Kind must be one of {', '.join(DestinationKind.values)}.")
    return {
        "kind": kind,
        "name": clean_text(
            name, field="name", max_length=max_length(Destination, "name"), required=True
        ),
        "config": transport_for(kind).clean_config(config),
    }


def _unique_name(team: Team, name: str, *, exclude: int | None = None) -> None:
    taken = Destination.objects.filter(team=team, name=name, owner__isnull=True)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise ApplicationError("already_exists", f"{name!r} already exists.", field="name")


def _audit_destination(
    action: str, destination: Destination, actor: User | None, ip: str | None, **data: Any
) -> None:
    # The config holds addresses, URLs and a webhook's secret: only its kind goes in the log.
    data = {"kind": destination.kind, **data}
    team = destination.team
    audit_record(action=action, actor=actor, team=team, target=destination, data=data, ip=ip)


@transaction.atomic
def destination_create(
    *,
    user: User,
    team: Team,
    role: str,
    kind: Any,
    name: Any,
    config: Any,
    ip: str | None = None,
) -> Destination:
    require_write(role)
    cleaned = _clean_destination(kind, name, config)
    _unique_name(team, cleaned["name"])
    destination = Destination.objects.create(team=team, created_by=user, **cleaned)
    _audit_destination(AuditAction.DESTINATION_CREATED, destination, user, ip)
    return destination


@transaction.atomic
def destination_update(
    *,
    destination: Destination,
    role: str,
    data: dict[str, Any],
    actor: User | None = None,
    ip: str | None = None,
) -> Destination:
    """Change name, config (a secret left out or sent masked keeps the old one) or enabled.

    A new config clears ``broken``: the service said the old URL was gone. The
    audit event names the changed fields; a save that changes nothing has none.
    """
    require_write(role)
    before = {
        "name": destination.name,
        "config": destination.config,
        "enabled": destination.enabled,
    }
    transport = transport_for(destination.kind)
    config = transport.with_secrets_kept(data.get("config", destination.config), destination.config)
    cleaned = _clean_destination(destination.kind, data.get("name", destination.name), config)
    _unique_name(destination.team, cleaned["name"], exclude=destination.pk)
    enabled = data.get("enabled", destination.enabled)
    if not isinstance(enabled, bool):
        raise invalid("enabled", "Must be true or false.")
    if cleaned["config"] != destination.config:
        destination.broken = False
    destination.name, destination.config, destination.enabled = (
        cleaned["name"],
        cleaned["config"],
        enabled,
    )
    destination.save(update_fields=["name", "config", "enabled", "broken"])
    changed = changed_fields(before, {**cleaned, "enabled": enabled})
    if changed:
        _audit_destination(AuditAction.DESTINATION_UPDATED, destination, actor, ip, changed=changed)
    return destination


@transaction.atomic
def destination_delete(
    *,
    destination: Destination,
    role: str,
    actor: User | None = None,
    ip: str | None = None,
) -> None:
    """Delete the destination with its delivery log; rules that sent to it stop sending there."""
    require_write(role)
    _audit_destination(AuditAction.DESTINATION_DELETED, destination, actor, ip)
    destination.delete()


def destination_test(*, destination: Destination, role: str) -> Notification:
    """Send a test message now, once (no retry); the result is in the delivery log."""
    require_write(role)
    return destination_send_test(destination)


def destination_send_test(destination: Destination) -> Notification:
    """The test message itself, for a caller that checked who may send it (a team's editors,
    or the owner of a personal destination: ``alerts.personal``)."""
    notification = Notification.objects.create(
        destination=destination,
        event=NotificationEvent.TEST,
        status=NotificationStatus.SENDING,
        attempts=1,
    )
    message = delivery.message_for([notification])
    try:
        sent = transport_for(destination.kind).send(
            message, delivery.destination_config(destination)
        )
    except TransportError as error:
        delivery._failed([notification], destination, _final(error))
    else:
        delivery._sent([notification], destination, sent)
    notification.refresh_from_db()
    return notification


def _final(error: TransportError) -> TransportError:
    return TransportError(
        error.message, retryable=False, status_code=error.status_code, broken=error.broken
    )


# --- Rules ------------------------------------------------------------------------------------


RULE_DEFAULTS: dict[str, Any] = {
    "name": None,
    "trigger": None,
    "params": {},
    "tags": [],
    "group": "",
    "notify_on_resolve": True,
    "enabled": True,
    "repeat_interval": None,
    "group_wait": 30,
}


def _clean_rule(data: dict[str, Any], rule: AlertRule | None) -> dict[str, Any]:
    """Every field of a rule: what ``data`` says, else the rule's (or the default)."""
    base = RULE_DEFAULTS if rule is None else {name: getattr(rule, name) for name in RULE_DEFAULTS}
    value = {name: data.get(name, base[name]) for name in RULE_DEFAULTS}
    return {
        "name": clean_text(
            value["name"], field="name", max_length=max_length(AlertRule, "name"), required=True
        ),
        "trigger": value["trigger"],
        "params": triggers.clean_params(value["trigger"], value["params"]),
        "tags": clean_tags(value["tags"], field="tags"),
        "group": clean_text(
            value["group"], field="group", max_length=max_length(AlertRule, "group")
        ),
        "notify_on_resolve": _bool(value, "notify_on_resolve"),
        "enabled": _bool(value, "enabled"),
        "repeat_interval": _seconds(
            value, "repeat_interval", MIN_REPEAT, MAX_REPEAT, nullable=True
        ),
        "group_wait": _seconds(value, "group_wait", 0, MAX_GROUP_WAIT),
    }


def _bool(value: dict[str, Any], name: str) -> bool:
    flag = value[name]
    if not isinstance(flag, bool):
        raise invalid(name, "Must be true or false.")
    return flag


def _seconds(
    value: dict[str, Any], name: str, low: int, high: int, *, nullable: bool = False
) -> int | None:
    seconds = value[name]
    if seconds is None and nullable:
        return None
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not low <= seconds <= high:
        hint = ", or null" if nullable else ""
        raise invalid(name, f"Whole seconds from {low} to {high}{hint}.")
    return seconds


def _destinations(project: Project, value: Any) -> list[Destination]:
    if value is None:
        return []
    if not isinstance(value, list) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in value
    ):
        raise invalid("destinations", "A list of destination ids.")
    found = list(  # a personal destination (alerts.personal) is no team rule's
        Destination.objects.filter(team_id=project.team_id, pk__in=value, owner__isnull=True)
    )
    missing = sorted(set(value) - {d.pk for d in found})
    if missing:
        raise invalid("destinations", f"Destination {missing[0]} is not one of this team's.")
    return found


def _audit_rule(
    action: str, rule: AlertRule, actor: User | None, ip: str | None, **data: Any
) -> None:
    data = {"project": rule.project.full_name, "trigger": rule.trigger, **data}
    team = rule.project.team
    audit_record(action=action, actor=actor, team=team, target=rule, data=data, ip=ip)


@transaction.atomic
def rule_create(
    *,
    user: User | None,
    project: ProjectWithRole,
    data: dict[str, Any],
    ip: str | None = None,
) -> AlertRule:
    require_write(project.role)
    cleaned = _clean_rule(data, None)
    triggers.check_in_project(cleaned["trigger"], cleaned["params"], project.pk)
    destinations = _destinations(project, data.get("destinations"))
    rule = AlertRule.objects.create(project=project, created_by=user, **cleaned)
    rule.destinations.set(destinations)
    _audit_rule(AuditAction.ALERT_RULE_CREATED, rule, user, ip)
    return rule


def _rule_state(rule: AlertRule, names: list[str]) -> dict[str, Any]:
    state = {name: getattr(rule, name) for name in names}
    state["destinations"] = sorted(rule.destinations.values_list("pk", flat=True))
    return state


@transaction.atomic
def rule_update(
    *,
    rule: RuleWithRole,
    data: dict[str, Any],
    actor: User | None = None,
    ip: str | None = None,
) -> RuleWithRole:
    """Change a rule; its audit event names the changed fields (none changed: no event)."""
    require_write(rule.role)
    cleaned = _clean_rule(data, rule)
    if "params" in data or "trigger" in data:  # a baseline run deleted since does not block edits
        triggers.check_in_project(cleaned["trigger"], cleaned["params"], rule.project_id)
    before = _rule_state(rule, list(cleaned))
    for name, value in cleaned.items():
        setattr(rule, name, value)
    rule.save(update_fields=list(cleaned))
    if "destinations" in data:
        rule.destinations.set(_destinations(rule.project, data["destinations"]))
    changed = changed_fields(before, _rule_state(rule, list(cleaned)))
    if changed:
        _audit_rule(AuditAction.ALERT_RULE_UPDATED, rule, actor, ip, changed=changed)
    return rule


@transaction.atomic
def rule_delete(*, rule: RuleWithRole, actor: User | None = None, ip: str | None = None) -> None:
    """Delete the rule with its alerts and their delivery log."""
    require_write(rule.role)
    _audit_rule(AuditAction.ALERT_RULE_DELETED, rule, actor, ip)
    rule.delete()


# --- Silences -----------------------------------------------------------------------------------


@transaction.atomic
def silence_create(
    *,
    user: User,
    role: str,
    until: datetime,
    reason: Any = "",
    project: Project | None = None,
    rule: AlertRule | None = None,
    run: Run | None = None,
) -> Silence:
    require_write(role)
    if until <= timezone.now():
        raise invalid("until", "A time in the future.")
    if not (project or rule or run):
        raise invalid("project", "Silence a project, a rule or a run.")
    reason = clean_text(reason, field="reason", max_length=max_length(Silence, "reason"))
    return Silence.objects.create(
        project=project, rule=rule, run=run, until=until, reason=reason, created_by=user
    )


@transaction.atomic
def silence_end(*, silence: Silence, role: str) -> None:
    require_write(role)
    Silence.objects.filter(pk=silence.pk).update(until=timezone.now())


# --- Acting on an alert (the alert page, a notification's links, the API) ------------------------

SILENCE_FROM_LINK = "from a notification link"


def _audit_alert(action: str, alert: Alert, actor: User, ip: str | None, **data: Any) -> None:
    rule = alert.rule
    data = {"rule": rule.name, "run": alert.run.name if alert.run else None, **data}
    audit_record(action=action, actor=actor, team=rule.project.team, target=alert, data=data, ip=ip)


@transaction.atomic
def alert_acknowledge(alert: AlertWithRole, *, actor: User, ip: str | None = None) -> bool:
    """Mark a firing alert as someone's: True if this call did, False if it already was
    (or has resolved). No more reminders (``alerts.scan``); it still resolves as usual.

    A compare-and-set: two people acknowledging at once, or one clicking twice,
    make one acknowledgement and one audit event.
    """
    require_write(alert.role)
    now = timezone.now()
    done = Alert.objects.filter(
        pk=alert.pk, state=AlertState.FIRING, acknowledged_at__isnull=True
    ).update(acknowledged_at=now, acknowledged_by=actor)
    if not done:
        alert.refresh_from_db(fields=["state", "acknowledged_at", "acknowledged_by"])
        return False
    alert.acknowledged_at, alert.acknowledged_by = now, actor
    _audit_alert(AuditAction.ALERT_ACKNOWLEDGED, alert, actor, ip)
    return True


@transaction.atomic
def alert_silence_rule(
    alert: AlertWithRole,
    *,
    actor: User,
    span: timedelta,
    reason: str = SILENCE_FROM_LINK,
    ip: str | None = None,
) -> Silence:
    """Silence the alert's rule from now for ``span``: its alerts still open, logged as silenced."""
    silence = silence_create(
        user=actor, role=alert.role, until=timezone.now() + span, reason=reason, rule=alert.rule
    )
    until = moment(silence.until)
    _audit_alert(AuditAction.ALERT_SILENCED, alert, actor, ip, until=until, silence=silence.pk)
    return silence
