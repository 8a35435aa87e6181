"""One-click links to act on an alert: acknowledge it, or silence its rule for an hour or a day.

A notification carries one signed link per action (:func:`links_for`). The
token says which alert and what to do, never who: the link opens a
confirmation page for the logged-in member (``alerts.views.alert_act``), and
only that page's POST acts, through ``alerts.services`` (``alert_acknowledge``,
``alert_silence_rule``: editors and owners, like alerting's other writes). A
mail scanner or a chat's link preview that fetches the link changes nothing,
and a forwarded email lets nobody outside the team act.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core import signing
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert
from kernel.errors import ApplicationError
from kernel.http import absolute_url

SALT = "labbook.alerts.action-link"
LINK_MAX_AGE = timedelta(days=7)  # how long a notification's links work


@dataclass(frozen=True)
class Action:
    """One thing a link can do; ``silence`` set: silence the alert's rule that long."""

    name: str
    silence: timedelta | None = None
    span: str = ""  # the silence's length in words

    @property
    def label(self) -> str:
        """Its button on the alert page: "Acknowledge", "Silence 1 hour"."""
        return f"Silence {self.span}" if self.silence else "Acknowledge"

    def button(self, rule: str) -> str:
        """The confirmation's button: "Acknowledge", "Silence <rule> for 1 hour"."""
        return f"Silence {rule} for {self.span}" if self.silence else "Acknowledge"


ACKNOWLEDGE = Action("acknowledge")
ACTIONS = {
    action.name: action
    for action in (
        ACKNOWLEDGE,
        Action("silence_1h", silence=timedelta(hours=1), span="1 hour"),
        Action("silence_1d", silence=timedelta(days=1), span="1 day"),
    )
}


# --- Links ------------------------------------------------------------------------------------


class LinkExpired(ApplicationError):
    status = 410

    def __init__(self) -> None:
        days = LINK_MAX_AGE.days
        super().__init__(
            "link_expired",
            f"This link has expired: a notification's links work for {days} days."
            " Open the alert in Labbook to act on it.",
        )


class LinkInvalid(ApplicationError):
    status = 400

    def __init__(self) -> None:
        super().__init__(
            "link_invalid",
            "This link is not one Labbook made, or it was cut short: copy the whole link"
            " from the notification, or open the alert in Labbook.",
        )


@dataclass(frozen=True)
class Link:
    alert_id: int
    action: Action


class _SignedAt(signing.TimestampSigner):
    """Signs with a given time, not the clock's: the same inputs make the same token."""

    def __init__(self, at: datetime) -> None:
        super().__init__(salt=SALT)
        self.at = at

    def timestamp(self) -> str:
        return signing.b62_encode(int(self.at.timestamp()))


def token_for(alert_id: int, action: str, *, issued: datetime | None = None) -> str:
    """A signed token naming the alert and the action (URL-safe, no slash), valid for
    ``LINK_MAX_AGE`` from ``issued`` (now by default)."""
    if action not in ACTIONS:
        raise ValueError(f"no action {action!r}")
    payload = {"alert": alert_id, "action": action}
    return _SignedAt(issued or timezone.now()).sign_object(payload, compress=False)


def read_token(token: str) -> Link:
    """The link's alert and action; ``LinkExpired`` (410) or ``LinkInvalid`` (400) otherwise."""
    try:
        payload: Any = signing.loads(token, salt=SALT, max_age=LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise LinkExpired() from None
    except signing.BadSignature:
        raise LinkInvalid() from None
    if not isinstance(payload, dict):
        raise LinkInvalid()
    alert_id, action = payload.get("alert"), payload.get("action")
    if isinstance(alert_id, bool) or not isinstance(alert_id, int) or action not in ACTIONS:
        raise LinkInvalid()
    return Link(alert_id, ACTIONS[action])


def action_path(alert_id: int, action: str, *, issued: datetime | None = None) -> str:
    """The confirmation page of ``action`` on the alert (a site path)."""
    return reverse("alert-act", kwargs={"token": token_for(alert_id, action, issued=issued)})


def links_for(alert: Alert) -> dict[str, str]:
    """A notification's links, absolute: each action's confirmation page, and the run page.

    Issued when the alert last notified, not when the message is sent: every
    attempt at one message carries the same links, so a retry's body is the
    first attempt's, byte for byte.
    """
    issued = alert.last_notified_at or alert.fired_at
    links = {name: absolute_url(action_path(alert.pk, name, issued=issued)) for name in ACTIONS}
    links["alert"] = absolute_url(reverse("alert", kwargs={"alert_id": alert.pk}))
    if alert.run is not None:  # an expected run that did not come has none
        links["run"] = absolute_url(alert.run.get_absolute_url())
    return links
