"""Microsoft Teams: a message with one Adaptive Card, POSTed to a Workflows webhook.

Teams' "Post to a channel when a webhook request is received" workflow (and
the older incoming-webhook connector) takes ``{"type": "message",
"attachments": [<Adaptive Card>]}``. The card has a title, one container per
alert (summary; run, project, status and key metrics as a FactSet; a failed
run's traceback tail in monospace; buttons to open the run, acknowledge, or
silence for an hour when the alert has those links; for an expected run that
did not come, the project and schedule, and a button to the alert's page)
and a button to look at everything. Teams refuses messages over about 28 KB,
so a grouped message shows at most ``MAX_ALERTS`` alerts, fewer if the card
would still be too big, and counts the rest.

The URL is a secret (its ``sig`` parameter, or the key at the end of a
connector URL): shown masked. Any 2xx is a delivery; 404/410 means the
workflow is gone, and the destination is marked broken.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from alerts.transports import http
from alerts.transports.base import (
    SECRET_MASK,
    AlertInfo,
    Delivery,
    Message,
    Transport,
    TransportError,
    alert_page_url,
    missed_run_facts,
)
from alerts.transports.slack import masked_url as masked_path

CONFIG_KEYS = frozenset({"url"})
BROKEN_STATUSES = frozenset({404, 410})
MAX_ALERTS = 10  # containers in one card; the rest are counted
MAX_BODY_BYTES = 27 * 1024  # under Teams' ~28 KB message limit, with room for its envelope
TEXT_CHARS = 1000
TRACEBACK_CHARS = 1500
MAX_METRICS = 6
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
# AlertInfo.links -> the button's title, in this order.
ALERT_ACTIONS = {"acknowledge": "Acknowledge", "silence_1h": "Silence 1 h"}


class TeamsTransport(Transport):
    kind = "teams"

    def clean_config(self, config: Any) -> dict[str, Any]:
        config = http.require_keys(config, allowed=CONFIG_KEYS)
        return {"url": http.clean_url(config.get("url"))}

    def public_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "url": masked_url(config.get("url", ""))}

    def with_secrets_kept(self, new: Any, stored: dict[str, Any]) -> Any:
        stored_url = stored.get("url", "")
        if isinstance(new, dict) and new.get("url") in (None, masked_url(stored_url)):
            return {**new, "url": stored_url}
        return new

    def send(self, message: Message, config: dict[str, Any]) -> Delivery:
        headers = {"Content-Type": "application/json", "User-Agent": http.user_agent()}
        response = http.post(config["url"], body=payload_bytes(message), headers=headers)
        check_broken(response)
        return http.delivery_for(response)


def masked_url(url: str) -> str:
    """A Workflows URL carries its signature in the query: ``.../paths/invoke?********``;
    a connector URL its key in the last path segment, masked like Slack's."""
    head, question, _query = url.partition("?")
    if question:
        return f"{head}?{SECRET_MASK}"
    return masked_path(url)


def check_broken(response: http.HttpResponse) -> None:
    if response.status_code in BROKEN_STATUSES:
        raise TransportError(
            f"Teams says the workflow is gone (HTTP {response.status_code}: {response.excerpt()})",
            retryable=False,
            status_code=response.status_code,
            broken=True,
        )


def payload_bytes(message: Message) -> bytes:
    """The message with as many alerts as fit in ``MAX_BODY_BYTES`` (at least one)."""
    shown = min(len(message.alerts), MAX_ALERTS)
    body = orjson.dumps(teams_payload(message, shown))
    while len(body) > MAX_BODY_BYTES and shown > 1:
        shown -= 1
        body = orjson.dumps(teams_payload(message, shown))
    return body


def teams_payload(message: Message, shown: int) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {"contentType": CARD_TYPE, "contentUrl": None, "content": card(message, shown)}
        ],
    }


def card(message: Message, shown: int) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        text_block(message.title, size="Large", weight="Bolder", color=colour(message.event))
    ]
    if not message.alerts:
        body.append(
            text_block(
                f"This is a test notification from Labbook for {message.project}."
                " If you can read it, this destination works."
            )
        )
    body.extend(alert_container(alert) for alert in message.alerts[:shown])
    more = len(message.alerts) - shown
    footer = f"…and {more} more alert{'s' if more != 1 else ''} not shown here. " if more else ""
    body.append(text_block(f"{footer}Sent by Labbook for {message.project}.", isSubtle=True))
    return {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "actions": [open_url("View in Labbook", message.url)],
        "msteams": {"width": "Full"},
    }


def alert_container(alert: AlertInfo) -> dict[str, Any]:
    run = alert.run
    state = "RESOLVED" if alert.state == "resolved" else "FIRING"
    items: list[dict[str, Any]] = [
        text_block(
            f"{state} · {alert.rule}: {alert.summary}",
            weight="Bolder",
            color="Good" if alert.state == "resolved" else "Attention",
        ),
        {"type": "FactSet", "facts": facts(alert)},
    ]
    if run is not None and run.failed and run.traceback_tail:
        items.append(
            text_block(run.traceback_tail[-TRACEBACK_CHARS:], fontType="Monospace", size="Small")
        )
    if run is None:  # an expected run that did not come: the alert's page instead
        actions = [open_url("Open alert", alert_page_url(alert))]
    else:
        actions = [open_url("Open run", run.url)] if run.url else []
    actions += [
        open_url(title, alert.links[name])
        for name, title in ALERT_ACTIONS.items()
        if alert.links.get(name)
    ]
    if actions:
        items.append({"type": "ActionSet", "actions": actions})
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def facts(alert: AlertInfo) -> list[dict[str, str]]:
    """The run's facts, or for an expected run that did not come the schedule it missed."""
    run = alert.run
    if run is None:
        rows = missed_run_facts(alert)
    else:
        rows = [("Run", run.name), ("Project", run.project), ("Status", run.status)]
        if run.error:
            rows.append(("Error", run.error))
        metrics = run.metrics.items()
        rows += [(str(key), format_value(value)) for key, value in metrics][:MAX_METRICS]
    return [
        {"title": cut(title, TEXT_CHARS), "value": cut(value, TEXT_CHARS)} for title, value in rows
    ]


def text_block(text: str, **style: str | bool) -> dict[str, Any]:
    """A wrapping TextBlock; ``style`` holds Adaptive Card properties (size, weight, color...)."""
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def open_url(title: str, url: str) -> dict[str, str]:
    return {"type": "Action.OpenUrl", "title": title, "url": url}


def colour(event: str) -> str:
    return {"alert.resolved": "Good", "test": "Accent"}.get(event, "Attention")


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
