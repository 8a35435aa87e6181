"""The notification transports, one module each, looked up by a destination's kind."""

from __future__ import annotations

from alerts.transports.base import Transport
from alerts.transports.discord import DiscordTransport
from alerts.transports.email import EmailTransport
from alerts.transports.pagerduty import PagerDutyTransport
from alerts.transports.slack import SlackTransport
from alerts.transports.teams import TeamsTransport
from alerts.transports.webhook import WebhookTransport
from kernel.errors import invalid

TRANSPORTS: dict[str, Transport] = {
    "email": EmailTransport(),
    "slack": SlackTransport(),
    "webhook": WebhookTransport(),
    "pagerduty": PagerDutyTransport(),
    "teams": TeamsTransport(),
    "discord": DiscordTransport(),
}


def transport_for(kind: str) -> Transport:
    """The transport of a destination kind, or ApplicationError naming ``kind``."""
    try:
        return TRANSPORTS[kind]
    except KeyError:
        raise invalid("kind", f"Unknown kind {kind!r}; expected {', '.join(TRANSPORTS)}.") from None


__all__ = ["TRANSPORTS", "Transport", "transport_for"]
