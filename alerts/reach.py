"""Who an alert would reach: the one answer for delivery, the save messages and the pages' warnings.

An email destination reaches its addresses, or (``team_members``) every
member of its team who has an address, looked up when asked because members
come and go; a personal one (``{"user": id}``, ``alerts.personal``) its owner's
address now. A personal destination of any kind reaches nobody once its owner
left its team. Every other kind (Slack, Teams, Discord, PagerDuty, webhook)
reaches its URL's host. A rule reaches whoever its enabled destinations
reach (firing skips disabled ones), and nobody without a destination.
Reaching nobody is a warning, never an error: the rule still records its
alerts on the pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.contrib.auth.models import User

from alerts.models import AlertRule, Destination, DestinationKind
from tracking.models import Membership


@dataclass(frozen=True)
class Reach:
    """The recipients (addresses, or a URL's host); when there are none, ``nobody`` says why."""

    recipients: tuple[str, ...] = ()
    nobody: str = ""


@dataclass
class Addresses:
    """Team members' addresses, read once per team however many destinations ask."""

    by_team: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def of_team(self, team_id: int) -> tuple[str, ...]:
        if team_id not in self.by_team:
            members = Membership.objects.filter(team_id=team_id).exclude(user__email="")
            self.by_team[team_id] = tuple(sorted(members.values_list("user__email", flat=True)))
        return self.by_team[team_id]


def reach(target: Destination | AlertRule, addresses: Addresses | None = None) -> Reach:
    """Who ``target`` would reach if it sent now. Pass one ``addresses`` to a page's many calls.

    A rule's destinations are read with ``rule.destinations.all()``: prefetch them for a list.
    """
    addresses = addresses if addresses is not None else Addresses()
    if isinstance(target, AlertRule):
        return _rule_reach(target, addresses)
    return _destination_reach(target, addresses)


def _destination_reach(destination: Destination, addresses: Addresses) -> Reach:
    config = destination.config
    if destination.owner_id is not None:  # personal (alerts.personal): while a member only
        gone = _owner_gone(destination)
        if gone:
            return Reach(nobody=gone)
    if destination.kind == DestinationKind.EMAIL and config.get("user"):
        address = User.objects.filter(pk=config["user"]).values_list("email", flat=True).first()
        return Reach((address,)) if address else Reach(nobody="its owner has no email address")
    if destination.kind != DestinationKind.EMAIL:
        host = urlsplit(str(config.get("url") or "")).hostname
        return Reach((host,)) if host else Reach(nobody="it has no URL")
    if config.get("team_members"):
        members = addresses.of_team(destination.team_id)
        why = "no team member has an email address yet"
        return Reach(members) if members else Reach(nobody=why)
    listed = tuple(address for address in config.get("addresses") or () if address)
    return Reach(listed) if listed else Reach(nobody="it lists no email address")


def _owner_gone(destination: Destination) -> str:
    """Why a personal destination reaches nobody because of its owner; "" while they are in."""
    owner = destination.owner_id
    member = owner is not None and (
        Membership.objects.filter(team_id=destination.team_id, user_id=owner).exists()
    )
    return "" if member else "its owner is no longer a member of the team"


def _rule_reach(rule: AlertRule, addresses: Addresses) -> Reach:
    destinations = list(rule.destinations.all())
    if not destinations:
        return Reach(nobody="it sends to no destination")
    recipients: list[str] = []
    reasons: list[str] = []
    for destination in destinations:
        found = (
            _destination_reach(destination, addresses)
            if destination.enabled
            else Reach(nobody="disabled")
        )
        recipients += [r for r in found.recipients if r not in recipients]
        reasons.append(f"{destination.name}: {found.nobody}")
    if recipients:
        return Reach(tuple(recipients))
    return Reach(nobody=f"none of its destinations reaches anyone ({'; '.join(reasons)})")
