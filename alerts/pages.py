"""What the alerting pages show, and how their plain HTML forms become service calls.

Reads go through ``alerts.selectors`` (outsiders get ``NotFound``) and writes
through ``alerts.services`` (viewers get ``PermissionDenied``). A service's
``ApplicationError`` names a field of the API (``config.url``,
``params.key``); ``FIELD_ALIASES`` and the rule form's prefixes put it next to
the matching form field instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from django.core.paginator import Page, Paginator
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from alerts import personal, selectors, services, snapshot
from alerts.actions import ACKNOWLEDGE, ACTIONS, Action, action_path
from alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    Destination,
    DestinationKind,
    Notification,
    PersonalAlerts,
    Silence,
    Trigger,
)
from alerts.reach import Addresses, reach
from alerts.transports import transport_for
from alerts.transports.base import readable
from alerts.triggers import AGGREGATES, FAILED, LEVELS, OPERATORS, TRIGGERS, describe
from kernel import forms
from kernel.errors import ApplicationError, NotFound, invalid
from kernel.ids import is_id
from tracking import selectors as tracking_selectors
from tracking.models import WRITE_ROLES, Project, Team
from tracking.selectors import User

if TYPE_CHECKING:
    from alerts.models import AlertWithRole, DestinationWithRole, RuleWithRole
    from tracking.models import ProjectWithRole, TeamWithRole

PAGE_SIZE = 50
DESTINATION_FIELDS = (
    "kind", "name", "addresses", "team_members", "url", "secret", "routing_key", "events_url",
)  # fmt: skip
# Form fields holding a secret: never echoed back; left blank on edit, the stored one stays.
SECRET_FIELDS = ("secret", "routing_key")
FIELD_ALIASES = {
    "config": "kind",
    "config.addresses": "addresses",
    "config.team_members": "addresses",
    "config.url": "url",
    "config.secret": "secret",
    "config.routing_key": "routing_key",
}
RULE_FIELDS = (
    "name", "trigger", "destinations", "tags", "group", "notify_on_resolve",
    "repeat_interval", "group_wait", "enabled",
)  # fmt: skip
SILENCE_FIELDS = ("scope", "rule", "run", "until", "reason")
# The inputs of each trigger's fieldset, named "<trigger>.<param>" in the form.
TRIGGER_PARAMS: dict[str, tuple[str, ...]] = {name: spec.names for name, spec in TRIGGERS.items()}
PARAMS = {param.name: param for spec in TRIGGERS.values() for param in spec.params}
PARAM_DEFAULTS: dict[str, dict[str, Any]] = {
    name: {param.name: param.form_value for param in spec.params} for name, spec in TRIGGERS.items()
}
NUMERIC = ("int", "run", "number", "positive")
# The bounds of the number inputs, for the fieldsets' min and max.
PARAM_BOUNDS = {
    name: {p.name: {"low": p.low, "high": p.high} for p in spec.params if p.kind == "int"}
    for name, spec in TRIGGERS.items()
}


# --- Forms -----------------------------------------------------------------------------------


@dataclass
class Form(forms.Form):
    """Values to fill in and an error per field; ``params`` holds each trigger's values."""

    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    param_errors: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.param_errors)

    def place(self, error: ApplicationError, fields: Sequence[str]) -> None:
        """Next to its field, by alias; a trigger parameter's error next to that parameter."""
        name = FIELD_ALIASES.get(error.field or "", error.field or "")
        trigger = self.values.get("trigger", "")
        if name.startswith("params") and trigger in TRIGGER_PARAMS:
            param = name.partition(".")[2]
            if param not in TRIGGER_PARAMS[trigger]:
                param = (TRIGGER_PARAMS[trigger] or ("",))[0]
            if param:
                self.param_errors[trigger] = {param: error.message}
                return
            name = "trigger"
        self.errors[name if name in fields else fields[0]] = error.message


def _int(value: str, name: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise invalid(name, "A whole number.") from None


def _float(value: str, name: str) -> float:
    try:
        return float(value.strip())
    except ValueError:
        raise invalid(name, "A number.") from None


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _can_write(role: str | None) -> bool:
    return role in WRITE_ROLES


# --- Destinations ----------------------------------------------------------------------------


@dataclass
class DestinationRow:
    destination: Destination
    target: str
    nobody: str = ""  # why it would reach nobody, when it would


def reach_warning(target: Destination | AlertRule, addresses: Addresses | None = None) -> str:
    """The warning of a destination or rule that would reach nobody; empty if it reaches someone."""
    nobody = reach(target, addresses).nobody
    if not nobody:
        return ""
    what = "rule" if isinstance(target, AlertRule) else "destination"
    return f"The {what} {target.name} reaches nobody: {nobody}."


def destination_target(destination: Destination) -> str:
    """Where it sends, without secrets: the addresses, or only the host of a URL."""
    config = destination.config
    if destination.kind == DestinationKind.EMAIL:
        if config.get("team_members"):
            return "all team members"
        return ", ".join(config.get("addresses", []))
    return urlsplit(str(config.get("url", ""))).hostname or ""


def destination_form(data: QueryDict | None = None) -> Form:
    if data is None:
        return Form(values={"kind": DestinationKind.EMAIL})
    values = {name: data.get(name, "") for name in DESTINATION_FIELDS}
    values.update(dict.fromkeys(SECRET_FIELDS, ""))  # never echoed back into the page
    return Form(values=values)


def destination_config(data: QueryDict) -> dict[str, Any]:
    kind = data.get("kind", "")
    if kind == DestinationKind.EMAIL:
        if data.get("team_members") and not data.get("addresses", "").strip():
            return {"team_members": True}
        return {"addresses": _csv(data.get("addresses", ""))}
    if kind == DestinationKind.WEBHOOK:
        return {"url": data.get("url", "").strip(), "secret": data.get("secret", "")}
    if kind == DestinationKind.PAGERDUTY:  # a blank events URL is PagerDuty's own
        return {
            "routing_key": data.get("routing_key", "").strip(),
            "url": data.get("events_url", "").strip(),
        }
    return {"url": data.get("url", "").strip()}


def destination_edit_form(destination: Destination) -> Form:
    """The form of an existing destination: its kind is fixed, its secret is never shown."""
    config = destination.config
    values: dict[str, Any] = {"kind": destination.kind, "name": destination.name}
    values.update(dict.fromkeys(SECRET_FIELDS, ""))
    if destination.kind == DestinationKind.EMAIL:
        values["addresses"] = ", ".join(config.get("addresses", []))
        values["team_members"] = bool(config.get("team_members"))
    elif destination.kind == DestinationKind.PAGERDUTY:
        values["events_url"] = config.get("url", "")
    else:  # a Slack URL's key stays masked: saved as shown, it keeps the stored one
        values["url"] = transport_for(destination.kind).public_config(config).get("url", "")
    return Form(values=values)


def destination_posted_form(destination: Destination, data: QueryDict) -> Form:
    form = destination_form(data)
    form.values["kind"] = destination.kind
    return form


def destination_save(
    destination: DestinationWithRole, data: QueryDict, *, actor: User, ip: str | None = None
) -> Destination:
    """Name and where it sends; a secret (webhook, routing key) left blank keeps the old one."""
    posted = data.copy()
    posted["kind"] = destination.kind
    config = destination_config(posted)
    for name in SECRET_FIELDS:
        if not config.get(name):
            config.pop(name, None)
    return services.destination_update(
        destination=destination,
        role=destination.role,
        data={"name": data.get("name", "").strip(), "config": config},
        actor=actor,
        ip=ip,
    )


def destination_create(
    user: User, team: TeamWithRole, data: QueryDict, *, ip: str | None = None
) -> Destination:
    return services.destination_create(
        user=user,
        team=team,
        role=team.role,
        kind=data.get("kind", ""),
        name=data.get("name", "").strip(),
        config=destination_config(data),
        ip=ip,
    )


def destination_in_team(user: User, team: Team, destination_id: int) -> DestinationWithRole:
    destination = selectors.destination_get_for_user(user, destination_id)
    if destination.team_id != team.pk:
        raise NotFound("Destination")
    return destination


def destination_delete(
    destination: DestinationWithRole, *, actor: User, ip: str | None = None
) -> None:
    services.destination_delete(destination=destination, role=destination.role, actor=actor, ip=ip)


def test_result(destination: Destination, notification: Notification) -> tuple[bool, str]:
    """Whether the test message went, and the sentence saying so."""
    if notification.status == "sent":
        code = f"HTTP {notification.response_code}, " if notification.response_code else ""
        return True, f"Sent a test to {destination.name} ({code}{notification.latency_ms} ms)."
    return False, f"The test to {destination.name} failed: {notification.last_error}"


def destinations_page_context(user: User, team: TeamWithRole, *, form: Form) -> dict[str, Any]:
    rows = selectors.destinations_for_user(user, team=team)
    addresses = Addresses()
    return {
        "section": "destinations",
        "current_team": team,
        "team": team,
        "rows": [
            DestinationRow(d, destination_target(d), reach(d, addresses).nobody) for d in rows
        ],
        "can_write": _can_write(team.role),
        "kinds": DestinationKind.choices,
        "form": form,
    }


# --- Alerts ----------------------------------------------------------------------------------


def alerts_listed(user: User, *, project: Project | None, state: str | None) -> QuerySet[Alert]:
    """Firing first, then newest first."""
    firing_first = Case(
        When(state=AlertState.FIRING, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    alerts = selectors.alerts_listed_for_user(user, project=project, state=state)
    return alerts.annotate(firing_first=firing_first).order_by("firing_first", "-fired_at", "-id")


def run_href(project: Project, run_id: int | None) -> str:
    """The run page's path; "" for an alert about no run (an expected run that did not come)."""
    if run_id is None:
        return ""
    kwargs = {"team": project.team.slug, "project": project.slug, "run_id": run_id}
    return reverse("run", kwargs=kwargs)


def _alerts_page(
    user: User, query: QueryDict, *, project: Project | None, keep: dict[str, str]
) -> dict[str, Any]:
    """One page of alerts with the state filter; ``keep`` goes into the paging links."""
    state = query.get("state") if query.get("state") in AlertState.values else None
    alerts = alerts_listed(user, project=project, state=state)
    page: Page[Alert] = Paginator(alerts, PAGE_SIZE).get_page(query.get("page"))
    for alert in page:
        alert.run_href = run_href(alert.rule.project, alert.run_id)
    kept = {**keep, "state": state or ""}
    return {
        "page": page,
        "state": state or "",
        "states": AlertState.choices,
        "filters": urlencode({name: value for name, value in kept.items() if value}),
    }


def alerts_page_context(user: User, project: Project, query: QueryDict) -> dict[str, Any]:
    listed = _alerts_page(user, query, project=project, keep={})
    return {
        "current_team": project.team,
        "project": project,
        "unreached": rules_reaching_nobody(user, project),
        **listed,
    }


def rules_reaching_nobody(user: User, project: Project) -> list[AlertRule]:
    """The project's enabled rules whose alerts would reach nobody, each with ``reaches_nobody``."""
    rules = list(selectors.rules_for_user(user, project=project).filter(enabled=True))
    _set_reach(rules)
    return [rule for rule in rules if rule.reaches_nobody]


def _set_reach(rules: Sequence[AlertRule]) -> None:
    addresses = Addresses()  # one query for the team, however many rules
    for rule in rules:
        rule.reaches_nobody = reach(rule, addresses).nobody


def all_alerts_page_context(user: User, query: QueryDict) -> dict[str, Any]:
    """Alerts of every team of the user's, or of one project (``?project=team/project``)."""
    projects = list(tracking_selectors.projects_for_user(user).order_by("team__slug", "slug"))
    chosen = next((p for p in projects if p.full_name == query.get("project")), None)
    keep = {"project": chosen.full_name if chosen else ""}
    return {
        **_alerts_page(user, query, project=chosen, keep=keep),
        "projects": projects,
        "chosen": chosen,
        "current_team": chosen.team if chosen else None,
    }


def alert_page_context(user: User, alert: AlertWithRole) -> dict[str, Any]:
    project = alert.rule.project
    notifications = selectors.notifications_for_user(user, alert=alert).order_by("created_at", "id")
    return {
        "current_team": project.team,
        "project": project,
        "alert": alert,
        "run_href": run_href(project, alert.run_id),
        "fires_when": describe(alert.rule.trigger, alert.rule.params),
        "values": [(key, readable(value)) for key, value in sorted(alert.values.items())],
        "buttons": alert_buttons(alert) if _can_write(alert.role) else [],
        "notifications": list(notifications),
        # The metric around its firing point (alerts.snapshot), for a metric alert.
        "chart_alt": snapshot.chart_alt(alert) if snapshot.has_chart(alert) else "",
    }


# --- Acting on an alert (its page's buttons, a notification's links) -------------------------


@dataclass(frozen=True)
class ActionButton:
    label: str
    href: str  # the action's confirmation page, whose POST acts


def alert_buttons(alert: Alert) -> list[ActionButton]:
    """The alert page's buttons: Acknowledge while it fires unacknowledged, the silences always.

    They post to the same signed action URLs a notification links to: one way to act.
    """
    names = [name for name, action in ACTIONS.items() if action.silence is not None]
    if alert.state == AlertState.FIRING and alert.acknowledged_at is None:
        names.insert(0, ACKNOWLEDGE.name)
    return [ActionButton(ACTIONS[name].label, action_path(alert.pk, name)) for name in names]


def what_it_does(alert: Alert, action: Action) -> str:
    """The confirmation page's sentence: what its button will do."""
    if action.silence is not None:
        return (
            f"Silence the rule {alert.rule.name} for {action.span}: its alerts still open and"
            " show in Labbook, but send no notifications until then (they are logged as silenced)."
        )
    return (
        "Acknowledge this alert: it sends no more reminders while it fires, and it still"
        " resolves (and says so) as usual. Your name is shown on the alert."
    )


def action_page_context(alert: AlertWithRole, action: Action) -> dict[str, Any]:
    project = alert.rule.project
    return {
        "current_team": project.team,
        "project": project,
        "alert": alert,
        "action": action,
        "button": action.button(alert.rule.name),
        "what": what_it_does(alert, action),
        "fires_when": describe(alert.rule.trigger, alert.rule.params),
        "run_href": run_href(project, alert.run_id),
        "can_write": _can_write(alert.role),
        "moot": action is ACKNOWLEDGE and alert.state != AlertState.FIRING,
    }


def act(alert: AlertWithRole, action: Action, *, actor: User, ip: str | None = None) -> str:
    """Do ``action`` on the alert (editors and owners); the sentence saying what happened."""
    if action.silence is not None:
        silence = services.alert_silence_rule(alert, actor=actor, span=action.silence, ip=ip)
        return f"Silenced the rule {alert.rule.name} until {silence.until:%Y-%m-%d %H:%M} UTC."
    if services.alert_acknowledge(alert, actor=actor, ip=ip):
        return "Acknowledged: this alert sends no more reminders."
    if alert.state != AlertState.FIRING:
        return "Nothing to acknowledge: the alert has resolved."
    who = alert.acknowledged_by.get_username() if alert.acknowledged_by else "someone"
    return f"Already acknowledged by {who}."


# --- Rules -----------------------------------------------------------------------------------


def params_summary(trigger: str, params: dict[str, Any]) -> str:
    """When the rule fires, in words: one sentence per trigger (``alerts.triggers.describe``)."""
    return describe(trigger, params)


def rules_page_context(user: User, project: ProjectWithRole) -> dict[str, Any]:
    rules = list(selectors.rules_for_user(user, project=project))
    for rule in rules:
        rule.summary = params_summary(rule.trigger, rule.params)
    _set_reach(rules)
    return {
        "current_team": project.team,
        "project": project,
        "rules": rules,
        "can_write": _can_write(project.role),
    }


def rule_in_project(user: User, project: Project, rule_id: int) -> RuleWithRole:
    rule = selectors.rule_get_for_user(user, rule_id)
    if rule.project_id != project.pk:
        raise NotFound("Alert rule")
    return rule


def _all_params(
    chosen: str = "", params: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    every = {trigger: dict(defaults) for trigger, defaults in PARAM_DEFAULTS.items()}
    if chosen in every and params is not None:
        every[chosen] = {**every[chosen], **params}
    return every


def rule_form(rule: AlertRule | None = None) -> Form:
    if rule is None:
        values = {"trigger": Trigger.RUN_FAILED, "group_wait": 30, "destinations": []}
        return Form(
            values={**values, "notify_on_resolve": True, "enabled": True}, params=_all_params()
        )
    values = {name: getattr(rule, name) for name in RULE_FIELDS if name != "destinations"}
    values["tags"] = ", ".join(rule.tags)
    values["repeat_interval"] = "" if rule.repeat_interval is None else rule.repeat_interval
    values["destinations"] = [d.pk for d in rule.destinations.all()]
    return Form(values=values, params=_all_params(rule.trigger, rule.params))


def posted_rule_form(data: QueryDict) -> Form:
    """The posted rule form as it would show again (every trigger's fieldset)."""
    values: dict[str, Any] = {name: data.get(name, "") for name in RULE_FIELDS}
    values["destinations"] = [_safe_int(v) for v in data.getlist("destinations")]
    values["notify_on_resolve"] = bool(data.get("notify_on_resolve"))
    values["enabled"] = bool(data.get("enabled"))
    trigger = values["trigger"]
    posted = {
        name: data.getlist(f"{trigger}.{name}")
        if PARAMS[name].kind == "choices"
        else data.get(f"{trigger}.{name}", "")
        for name in TRIGGER_PARAMS.get(trigger, ())
    }
    # Only the chosen trigger's fieldset is sent (the others are disabled): they keep
    # their defaults, so switching trigger on the page shown again starts from those.
    return Form(values=values, params=_all_params(trigger, posted))


def _safe_int(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def rule_params(data: QueryDict, trigger: str) -> dict[str, Any]:
    """The params of the chosen trigger only: other fieldsets are ignored."""
    params: dict[str, Any] = {}
    spec = TRIGGERS.get(trigger)
    for param in spec.params if spec else ():  # its own: "window_points" differs by trigger
        name, kind = param.name, param.kind
        key = f"{trigger}.{name}"
        text = data.get(key, "").strip()
        if kind == "choices":
            params[name] = data.getlist(key)
        elif kind in NUMERIC and not text and param.default is None:
            params[name] = None  # an optional number left empty
        elif kind in ("int", "run"):
            params[name] = _int(text, f"params.{name}")
        elif kind in ("number", "positive"):
            params[name] = _float(text, f"params.{name}")
        else:
            params[name] = text
    return params


def rule_data(data: QueryDict) -> dict[str, Any]:
    """The service's input from the posted form; every field is given (checkboxes may be off)."""
    trigger = data.get("trigger", "")
    repeat = data.get("repeat_interval", "").strip()
    destinations = data.getlist("destinations")
    if not all(value.isdigit() and len(value) < 19 for value in destinations):
        raise invalid("destinations", "Pick destinations from the list.")
    return {
        "name": data.get("name", "").strip(),
        "trigger": trigger,
        "params": rule_params(data, trigger) if trigger in TRIGGER_PARAMS else {},
        "tags": _csv(data.get("tags", "")),
        "group": data.get("group", "").strip(),
        "notify_on_resolve": bool(data.get("notify_on_resolve")),
        "enabled": bool(data.get("enabled")),
        "repeat_interval": _int(repeat, "repeat_interval") if repeat else None,
        "group_wait": _int(data.get("group_wait", ""), "group_wait"),
        "destinations": [int(value) for value in destinations],
    }


def rule_save(
    user: User,
    project: ProjectWithRole,
    rule: RuleWithRole | None,
    data: QueryDict,
    *,
    ip: str | None = None,
) -> AlertRule:
    if rule is None:
        return services.rule_create(user=user, project=project, data=rule_data(data), ip=ip)
    return services.rule_update(rule=rule, data=rule_data(data), actor=user, ip=ip)


def rule_delete(rule: RuleWithRole, *, actor: User, ip: str | None = None) -> None:
    services.rule_delete(rule=rule, actor=actor, ip=ip)


def rule_page_context(
    user: User, project: ProjectWithRole, *, form: Form, rule: AlertRule | None
) -> dict[str, Any]:
    chosen = form.values.get("trigger") or Trigger.RUN_FAILED
    return {
        "current_team": project.team,
        "project": project,
        "rule": rule,
        "form": form,
        "chosen": chosen,
        "can_write": _can_write(project.role),
        "triggers": Trigger.choices,
        "destinations": list(selectors.destinations_for_user(user, team=project.team)),
        "statuses": FAILED,
        "levels": LEVELS,
        "ops": tuple(OPERATORS),
        "aggregates": AGGREGATES,
        "bounds": PARAM_BOUNDS,
        "rule_bounds": {
            "repeat_interval": {"low": services.MIN_REPEAT, "high": services.MAX_REPEAT},
            "group_wait": {"low": 0, "high": services.MAX_GROUP_WAIT},
        },
        "summary": params_summary(rule.trigger, rule.params) if rule else "",
    }


# --- Silences --------------------------------------------------------------------------------


def silences_page_context(user: User, project: ProjectWithRole, *, form: Form) -> dict[str, Any]:
    now = timezone.now()
    silences = list(selectors.silences_for_user(user, project=project).order_by("-until", "-id"))
    return {
        "current_team": project.team,
        "project": project,
        "active": [s for s in silences if s.until > now],
        "past": [s for s in silences if s.until <= now],
        "rules": list(
            AlertRule.objects.filter(project=project, owner__isnull=True).only("id", "name")
        ),
        "can_write": _can_write(project.role),
        "form": form,
    }


def silence_form(data: QueryDict | None = None) -> Form:
    if data is None:
        return Form(values={"scope": "project"})
    return Form(values={name: data.get(name, "") for name in SILENCE_FIELDS})


def parse_until(value: str) -> datetime:
    """A ``datetime-local`` value, read as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid("until", "A date and time, e.g. 2027-01-31T12:00 (UTC).") from None
    return parsed.replace(tzinfo=UTC) if timezone.is_naive(parsed) else parsed


def _silence_scope(user: User, project: Project, data: QueryDict) -> dict[str, Any]:
    scope = data.get("scope", "")
    if scope == "project":
        return {"project": project}
    if scope == "rule":
        try:
            return {"rule": rule_in_project(user, project, _int(data.get("rule", ""), "rule"))}
        except NotFound:
            raise invalid("rule", "Pick a rule of this project.") from None
    if scope == "run":
        run_id = _int(data.get("run", ""), "run")
        run = (
            None
            if not is_id(run_id)
            else tracking_selectors.runs_for_user(user).filter(pk=run_id, project=project).first()
        )
        if run is None:
            raise invalid("run", f"No run {run_id} in {project.full_name}.")
        return {"run": run}
    raise invalid("scope", "Silence the project, a rule or a run.")


def silence_create(user: User, project: ProjectWithRole, data: QueryDict) -> Silence:
    scope = _silence_scope(user, project, data)
    until = parse_until(data.get("until", ""))
    return services.silence_create(
        user=user, role=project.role, until=until, reason=data.get("reason", ""), **scope
    )


def silence_in_project(user: User, project: Project, silence_id: int) -> Silence:
    silence = selectors.silence_get_for_user(user, silence_id)
    if not selectors.silences_for_user(user, project=project).filter(pk=silence.pk).exists():
        raise NotFound("Silence")
    return silence


def silence_end(silence: Silence, project: ProjectWithRole) -> None:
    services.silence_end(silence=silence, role=project.role)


# --- My alerts: a user's personal alerts (alerts.personal) -----------------------------------

MY_ALERTS_FIELDS = ("on_failure", "hang_minutes", "email", "slack_url")


def my_alerts_form(user: User) -> forms.Form:
    """The user's settings as the form shows them: minutes, the Slack URL masked."""
    shown = personal.public(personal.settings_of(user))
    hang = shown["hang_after_seconds"]
    values = {**shown, "hang_minutes": "" if hang is None else hang // 60}
    return forms.Form(values=values)


def my_alerts_data(data: QueryDict) -> dict[str, Any]:
    """The service's input from the posted form; blank minutes turn the hang alert off."""
    minutes = data.get("hang_minutes", "").strip()
    return {
        "on_failure": bool(data.get("on_failure")),
        "hang_after_seconds": _int(minutes, "hang_after_seconds") * 60 if minutes else None,
        "email": bool(data.get("email")),
        "slack_url": data.get("slack_url", "").strip(),
    }


class MyAlertsForm(forms.Form):
    """The service names ``hang_after_seconds``; the form asks for minutes."""

    def place(self, error: ApplicationError, fields: Sequence[str]) -> None:
        name = "hang_minutes" if error.field == "hang_after_seconds" else error.field or ""
        self.errors[name if name in fields else fields[0]] = error.message


def my_alerts_posted_form(data: QueryDict) -> MyAlertsForm:
    values: dict[str, Any] = {name: data.get(name, "") for name in MY_ALERTS_FIELDS}
    values["on_failure"], values["email"] = bool(data.get("on_failure")), bool(data.get("email"))
    return MyAlertsForm(values=values)


def my_alerts_save(user: User, data: QueryDict) -> PersonalAlerts:
    return personal.save_settings(user, my_alerts_data(data))


def my_alerts_test(user: User) -> list[tuple[bool, str]]:
    """Send the test; for each channel, whether it went and the sentence saying so."""
    return [test_result(d, notification) for d, notification in personal.send_test(user)]


def my_alerts_page_context(user: User, form: forms.Form) -> dict[str, Any]:
    settings = personal.settings_of(user)
    alerts = personal.recent_alerts(user)
    for alert in alerts:
        alert.run_href = run_href(alert.rule.project, alert.run_id)
    return {
        "section": "my-alerts",
        "form": form,
        "alerts": alerts,
        "has_email": bool(user.email),
        "channel": settings.email or bool(settings.slack_url),
        "hang_low": personal.HANG_AFTER.low // 60,
        "hang_high": personal.HANG_AFTER.high // 60,
    }
