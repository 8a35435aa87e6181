"""The notification transports, one module each, looked up by a destination's kind."""

from __future__ import annotations

from typing import Any

from alerts.transports.base import Transport
from alerts.transports.email import EmailTransport
from alerts.transports.slack import SlackTransport
from alerts.transports.webhook import WebhookTransport, public_config
from tracking.validation import invalid

TRANSPORTS: dict[str, Transport] = {
    "email": EmailTransport(),
    "slack": SlackTransport(),
    "webhook": WebhookTransport(),
}


def transport_for(kind: str) -> Transport:
    """The transport of a destination kind, or ApplicationError naming ``kind``."""
    try:
        return TRANSPORTS[kind]
    except KeyError:
        raise invalid("kind", f"Unknown kind {kind!r}; expected {', '.join(TRANSPORTS)}.") from None


def config_for_api(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """What the API may show of a destination's config: a webhook's secret never leaves."""
    if kind == "webhook":
        return public_config(config)
    return dict(config)


__all__ = ["TRANSPORTS", "Transport", "config_for_api", "transport_for"]
