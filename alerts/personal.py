"""Personal alerts: a user asks to be told when their own runs fail or hang, without a team rule.

The settings (``PersonalAlerts``, one row a user) become ordinary rules and
destinations with ``owner`` set, made lazily in the project and team of a run
of theirs when one needs them (:func:`personal_rules_for`): delivery, retries,
grouping, silences, the delivery log and the one-click links are the team's
own machinery. Such a rule takes only the runs its owner created
(``alerts.evaluation.applies``); the team's pages and API never list these
rows. Its email destination holds ``{"user": <id>}``, the owner's address
looked up at send time (``alerts.reach``); its Slack one the owner's URL.

Nobody is told about a team they left: a rule is only made or turned on while
its owner is a member of the run's team, leaving a team turns the leaver's
rules there off (:func:`on_membership_removed`, and again when next seen), and
delivery refuses a personal destination whose owner is no longer a member
(``alerts.reach``), for what was already on its way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from alerts import services, triggers
from alerts.models import (
    Alert,
    AlertRule,
    Destination,
    DestinationKind,
    Notification,
    PersonalAlerts,
    Trigger,
)
from alerts.transports.base import SECRET_MASK
from alerts.transports.slack import SlackTransport, masked_url
from kernel.errors import ApplicationError, invalid
from tracking import events
from tracking.models import FAILED_STATUSES, Membership, Project, Run, RunStatus, Team

# The bounds of a hang's delay are run_no_progress's: a personal rule is one of those.
HANG_AFTER = next(
    param
    for param in triggers.TRIGGERS[Trigger.RUN_NO_PROGRESS].params
    if param.name == "after_seconds"
)
SETTINGS_FIELDS = ("on_failure", "hang_after_seconds", "email", "slack_url")
RULE_NAMES: dict[str, str] = {
    Trigger.RUN_FAILED: "failed runs",
    Trigger.RUN_NO_PROGRESS: "hung runs",
}
DESTINATION_NAMES: dict[str, str] = {DestinationKind.EMAIL: "email", DestinationKind.SLACK: "Slack"}
RECENT_ALERTS = 50


# --- The settings --------------------------------------------------------------------------


def settings_of(user: User) -> PersonalAlerts:
    """The user's settings; everything off (unsaved) for a user who never set any."""
    found = PersonalAlerts.objects.filter(user_id=user.pk).first()
    return found if found is not None else PersonalAlerts(user=user)


def public(settings: PersonalAlerts) -> dict[str, Any]:
    """The settings as the API and the page show them: the Slack URL's key masked."""
    return {
        "on_failure": settings.on_failure,
        "hang_after_seconds": settings.hang_after_seconds,
        "email": settings.email,
        "slack_url": masked_url(settings.slack_url) if settings.slack_url else "",
    }


def _flag(data: dict[str, Any], name: str, current: bool) -> bool:
    value = data.get(name, current)
    if not isinstance(value, bool):
        raise invalid(name, "Must be true or false.")
    return value


def clean_hang(value: Any) -> int | None:
    """Seconds without a metric point before a run counts as hung; None: off."""
    if value is None:
        return None
    low, high = HANG_AFTER.low, HANG_AFTER.high
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(
            "hang_after_seconds",
            f"Whole seconds from {low} ({low // 60} min) to {high} ({high // 86400} days),"
            " or null for off.",
        )
    seconds: int = value
    return seconds


def clean_slack_url(value: Any, stored: str) -> str:
    """ "" (none), or an incoming-webhook URL the network guard takes; sent back masked as
    shown, the stored one stays."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise invalid("slack_url", "A Slack incoming webhook URL, or empty for none.")
    if stored and value.strip() in (masked_url(stored), SECRET_MASK):
        return stored
    try:
        return str(SlackTransport().clean_config({"url": value})["url"])
    except ApplicationError as error:
        raise invalid("slack_url", error.message) from None


def clean_settings(data: dict[str, Any], current: PersonalAlerts) -> dict[str, Any]:
    """Every setting: what ``data`` says, else the current one; errors name the field."""
    return {
        "on_failure": _flag(data, "on_failure", current.on_failure),
        "hang_after_seconds": clean_hang(
            data.get("hang_after_seconds", current.hang_after_seconds)
        ),
        "email": _flag(data, "email", current.email),
        "slack_url": clean_slack_url(data.get("slack_url", current.slack_url), current.slack_url),
    }


@transaction.atomic
def save_settings(user: User, data: dict[str, Any]) -> PersonalAlerts:
    """Save the user's settings and bring their existing personal rules and destinations
    in line (:func:`sync`).

    Not in the audit log: it is a team's log (its owners read it), and these
    settings are one person's, changing nothing any team shares.
    """
    current = settings_of(user)
    cleaned = clean_settings(data, current)
    settings, _ = PersonalAlerts.objects.update_or_create(
        user=user, defaults={**cleaned, "updated_at": timezone.now()}
    )
    sync(user, settings)
    return settings


# --- Rules and destinations, made when a run needs them -------------------------------------


def _wanted(settings: PersonalAlerts) -> dict[str, dict[str, Any]]:
    """The personal rules the settings ask for: trigger -> params."""
    wanted: dict[str, dict[str, Any]] = {}
    if settings.on_failure:
        wanted[Trigger.RUN_FAILED] = triggers.clean_params(Trigger.RUN_FAILED, {})
    if settings.hang_after_seconds is not None:
        wanted[Trigger.RUN_NO_PROGRESS] = triggers.clean_params(
            Trigger.RUN_NO_PROGRESS, {"after_seconds": settings.hang_after_seconds}
        )
    return wanted


def _is_member(user_id: int, team_id: int) -> bool:
    return Membership.objects.filter(team_id=team_id, user_id=user_id).exists()


def connect() -> None:
    events.decide_with(events.MembershipRemoved, on_membership_removed)


def on_membership_removed(event: events.MembershipRemoved) -> None:
    """Leaving a team stops one's personal rules there, in the same transaction."""
    _turn_off_in_team(event.user_id, event.team_id)


def _turn_off_in_team(user_id: int, team_id: int) -> None:
    """The user left the team: their personal rules there stop."""
    AlertRule.objects.filter(owner_id=user_id, project__team_id=team_id, enabled=True).update(
        enabled=False
    )


def _destination_config(settings: PersonalAlerts, kind: str) -> dict[str, Any]:
    if kind == DestinationKind.EMAIL:
        return {"user": settings.user_id}
    return {"url": settings.slack_url}


def _destinations(settings: PersonalAlerts, team_id: int) -> list[Destination]:
    """The user's personal destinations in the team, made for each channel turned on and
    turned off for each one turned off (a Slack URL removed)."""
    existing = {d.kind: d for d in Destination.objects.filter(team_id=team_id, owner=settings.user)}
    wanted = {
        DestinationKind.EMAIL: settings.email,
        DestinationKind.SLACK: bool(settings.slack_url),
    }
    found: list[Destination] = []
    for kind, on in wanted.items():
        destination = existing.get(kind)
        if destination is None and not on:
            continue
        config = _destination_config(settings, kind) if on else None
        if destination is None:
            destination, _ = Destination.objects.get_or_create(
                team_id=team_id,
                owner=settings.user,
                kind=kind,
                defaults={
                    "name": f"Personal {DESTINATION_NAMES[kind]} ({settings.user.get_username()})"[
                        :100
                    ],
                    "config": config,
                    "created_by": settings.user,
                },
            )
        changed = destination.enabled != on or (config is not None and destination.config != config)
        if changed:
            destination.enabled = on
            if config is not None:
                destination.broken = destination.broken and destination.config == config
                destination.config = config
            destination.save(update_fields=["enabled", "config", "broken"])
        found.append(destination)
    return found


def _rule_name(user: User, trigger: str) -> str:
    return f"Personal ({user.get_username()}): {RULE_NAMES[trigger]}"[:100]


def _materialize(
    settings: PersonalAlerts, project: Project, wanted: Iterable[str]
) -> list[AlertRule]:
    """The user's personal rules of ``wanted`` triggers in the project, made or turned on."""
    if not _is_member(settings.user_id, project.team_id):
        _turn_off_in_team(settings.user_id, project.team_id)
        return []
    asked = {trigger: params for trigger, params in _wanted(settings).items() if trigger in wanted}
    if not asked:
        return []
    destinations = _destinations(settings, project.team_id)
    rules = []
    for trigger, params in asked.items():
        rule, created = AlertRule.objects.get_or_create(
            project=project,
            owner=settings.user,
            trigger=trigger,
            defaults={
                "name": _rule_name(settings.user, trigger),
                "params": params,
                "created_by": settings.user,
            },
        )
        if created:
            rule.destinations.set(destinations)
        elif rule.params != params or not rule.enabled:
            rule.params, rule.enabled = params, True
            rule.save(update_fields=["params", "enabled"])
        rules.append(rule)
    return rules


def personal_rules_for(run: Run, wanted: Iterable[str]) -> list[AlertRule]:
    """The run creator's personal rules of ``wanted`` triggers in the run's project, made
    if their settings ask for them and they are still a member of its team."""
    if run.created_by_id is None:
        return []
    settings = (
        PersonalAlerts.objects.filter(user_id=run.created_by_id).select_related("user").first()
    )
    if settings is None or not settings.wanted:
        return []
    return _materialize(settings, run.project, wanted)


def sync(user: User, settings: PersonalAlerts | None = None) -> None:
    """Bring the user's existing personal rows in line with their settings: parameters,
    which rules are on (off when turned off, or in a team the user left), destinations."""
    settings = settings if settings is not None else settings_of(user)
    wanted = _wanted(settings)
    member_of = set(Membership.objects.filter(user_id=user.pk).values_list("team_id", flat=True))
    rules = list(AlertRule.objects.filter(owner=user).select_related("project"))
    teams = {rule.project.team_id for rule in rules} | set(
        Destination.objects.filter(owner=user).values_list("team_id", flat=True)
    )
    destinations = {team_id: _destinations(settings, team_id) for team_id in teams}
    for rule in rules:
        team_id = rule.project.team_id
        enabled = rule.trigger in wanted and team_id in member_of
        params = wanted.get(rule.trigger, rule.params)
        if (rule.enabled, rule.params) != (enabled, params):
            rule.enabled, rule.params = enabled, params
            rule.save(update_fields=["enabled", "params"])
        rule.destinations.set(destinations[team_id])


# --- Where the evaluation and the scan ask --------------------------------------------------


def ensure_failure_rules(run_id: int, status: str) -> None:
    """Before a failed run's rules are read: its creator's personal run_failed rule, if they
    asked for one. No query for other statuses; one when they did not ask (or the run has
    no creator)."""
    if status not in FAILED_STATUSES:
        return
    creator = Run.objects.filter(pk=run_id).values("created_by_id")
    settings = (
        PersonalAlerts.objects.filter(user_id__in=creator, on_failure=True)
        .select_related("user")
        .first()
    )
    if settings is not None:
        run = Run.objects.select_related("project").get(pk=run_id)
        _materialize(settings, run.project, (Trigger.RUN_FAILED,))


@dataclass(frozen=True)
class Watched:
    """A running run's (creator, project), and whether the creator is in the project's team."""

    user_id: int
    project_id: int
    member: bool


def ensure_hang_rules() -> int:
    """Before the hang scan: the personal run_no_progress rules of users who asked for them,
    in the projects of their running runs (one query for those runs); turned off where the
    user left the team. The scan then takes them as any rule, the rule's owner filter
    keeping other users' runs out. Answers how many rules it made or turned on."""
    member = Exists(
        Membership.objects.filter(
            team_id=OuterRef("project__team_id"), user_id=OuterRef("created_by_id")
        )
    )
    rows = (
        Run.objects.filter(
            status=RunStatus.RUNNING, created_by__personal_alerts__hang_after_seconds__isnull=False
        )
        .annotate(member=member)
        .values_list("created_by_id", "project_id", "member")
        .distinct()
    )
    watched = [Watched(*row) for row in rows]
    if not watched:
        return 0
    users = {w.user_id for w in watched}
    have = set(
        AlertRule.objects.filter(
            trigger=Trigger.RUN_NO_PROGRESS, owner_id__in=users, enabled=True
        ).values_list("owner_id", "project_id")
    )
    missing = [w for w in watched if w.member and (w.user_id, w.project_id) not in have]
    for gone in (w for w in watched if not w.member and (w.user_id, w.project_id) in have):
        AlertRule.objects.filter(
            owner_id=gone.user_id, project_id=gone.project_id, enabled=True
        ).update(enabled=False)
    if not missing:
        return 0
    settings = {
        s.user_id: s
        for s in PersonalAlerts.objects.filter(user_id__in=users).select_related("user")
    }
    projects = Project.objects.in_bulk({w.project_id for w in missing})
    made = 0
    for w in missing:
        with transaction.atomic():
            made += len(
                _materialize(
                    settings[w.user_id], projects[w.project_id], (Trigger.RUN_NO_PROGRESS,)
                )
            )
    return made


# --- The page: a test message, the recent alerts --------------------------------------------


def _test_team(user: User) -> int:
    """Where a test goes from: a team already holding a personal destination of the user's,
    else their first team (a destination belongs to a team)."""
    held = Destination.objects.filter(owner=user).values_list("team_id", flat=True).first()
    if held is not None:
        return held
    first = (
        Team.objects.filter(memberships__user_id=user.pk)
        .order_by("slug")
        .values_list("pk", flat=True)
        .first()
    )
    if first is None:
        raise invalid("email", "Join a team first: personal alerts are about runs in your teams.")
    return first


def send_test(user: User) -> list[tuple[Destination, Notification]]:
    """A test message to each channel the user turned on, through the team test path."""
    settings = settings_of(user)
    if not (settings.email or settings.slack_url):
        raise invalid("email", "Turn on email or give a Slack URL first, and save.")
    with transaction.atomic():
        destinations = [d for d in _destinations(settings, _test_team(user)) if d.enabled]
    return [(d, services.destination_send_test(d)) for d in destinations]


def recent_alerts(user: User, most: int = RECENT_ALERTS) -> list[Alert]:
    """The user's latest personal alerts, in the teams they are still in."""
    teams = Membership.objects.filter(user_id=user.pk).values("team_id")
    return list(
        Alert.objects.filter(rule__owner=user, rule__project__team_id__in=teams)
        .select_related("rule__project__team", "run")
        .order_by("-fired_at", "-id")[:most]
    )
