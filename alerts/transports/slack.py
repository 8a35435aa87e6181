"""Slack (and Slack-compatible) incoming webhooks: a text fallback plus Block Kit blocks.

One header, one section per alert (run, project, status, key metrics, the
traceback tail of a failed run as a code block, a button to the run page; for
an expected run that did not come, the project, schedule and deadline and a
button to the alert's page), below the first metric alerts' sections their
chart (an image Slack fetches from its signed link, ``alerts.snapshot``), and
a link to look at everything.
Wording lives in ``templates/alerts/slack``; this module only escapes values
for Slack's mrkdwn and sizes the blocks to Slack's limits. Slack answering
404/410 or naming a gone webhook (``invalid_token``, ``no_service``, ...) marks
the destination broken: retrying cannot help until someone pastes a new URL.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import orjson
from django.template.loader import render_to_string

from alerts.transports import http
from alerts.transports.base import (
    MAX_CHARTS,
    SECRET_MASK,
    AlertInfo,
    Delivery,
    Message,
    Transport,
    TransportError,
    alert_page_url,
    missed_run_facts,
    readable,
)

CONFIG_KEYS = frozenset({"url"})
BROKEN_STATUSES = frozenset({404, 410})
BROKEN_ERRORS = frozenset(
    {
        "invalid_token",
        "no_service",
        "no_team",
        "channel_not_found",
        "channel_is_archived",
        "team_disabled",
    }
)
# Slack allows 50 blocks a message: 20 alerts, each a section and a row of buttons, with
# MAX_CHARTS images, the header, the footer and "View in Labbook" make 48. A sweep of 40
# dead runs still fits, summarized.
MAX_ALERTS = 20
MAX_BLOCKS = 50
HEADER_CHARS = 150  # Slack's limit for a header block
SECTION_CHARS = 3000  # Slack's limit for a section's text
TRACEBACK_CHARS = 1500
CONSOLE_CHARS = 800  # with the traceback, within a section's 3,000 characters
MAX_METRICS = 6
ALT_CHARS = 2000  # Slack's limit for an image's alt_text


class SlackTransport(Transport):
    kind = "slack"

    def clean_config(self, config: Any) -> dict[str, Any]:
        config = http.require_keys(config, allowed=CONFIG_KEYS)
        return {"url": http.clean_url(config.get("url"))}

    def public_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """An incoming-webhook URL is a secret (anyone holding it can post to the channel):
        its last path segment, the key, is shown masked."""
        return {**config, "url": masked_url(config.get("url", ""))}

    def with_secrets_kept(self, new: Any, stored: dict[str, Any]) -> Any:
        stored_url = stored.get("url", "")
        if isinstance(new, dict) and new.get("url") in (None, masked_url(stored_url)):
            return {**new, "url": stored_url}
        return new

    def send(self, message: Message, config: dict[str, Any]) -> Delivery:
        payload = slack_payload(message)
        response = post(config["url"], payload)
        if images_refused(response, payload):  # the alert matters more than its picture
            response = post(config["url"], slack_payload(message, images=False))
        check_broken(response)
        return http.delivery_for(response)


def post(url: str, payload: dict[str, Any]) -> http.HttpResponse:
    headers = {"Content-Type": "application/json", "User-Agent": http.user_agent()}
    return http.post(url, body=orjson.dumps(payload), headers=headers)


def images_refused(response: http.HttpResponse, payload: dict[str, Any]) -> bool:
    """Slack refuses a whole message whose image it could not download (``invalid_blocks``):
    such a message goes again without its charts."""
    has_images = any(block["type"] == "image" for block in payload["blocks"])
    return has_images and response.status_code == 400 and "invalid_blocks" in response.text


def fetchable(url: str) -> bool:
    """Whether Slack's servers could fetch an image at ``url``: not from localhost, a
    one-label name or a private address (a BASE_URL only this network reaches)."""
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:  # a name: only Slack can tell, unless it is plainly local
        return "." in host and host != "localhost" and not host.endswith(".localhost")


def masked_url(url: str) -> str:
    """``https://hooks.slack.com/services/T01/B02/SECRET`` → ``.../T01/B02/********``."""
    head, slash, key = url.rpartition("/")
    return f"{head}{slash}{SECRET_MASK}" if slash and key and "://" in head else SECRET_MASK


def check_broken(response: http.HttpResponse) -> None:
    """Slack saying "this webhook is gone": no retry, and the destination is marked broken."""
    error = response.text.strip()
    if response.status_code in BROKEN_STATUSES or error in BROKEN_ERRORS:
        raise TransportError(
            f"Slack says the webhook is gone (HTTP {response.status_code}: {response.excerpt()})",
            retryable=False,
            status_code=response.status_code,
            broken=True,
        )


def slack_payload(message: Message, *, images: bool = True) -> dict[str, Any]:
    context = {
        "message": message,
        "title": escape(message.title),
        "project": escape(message.project),
        "count": len(message.alerts),
    }
    return {
        "text": render_to_string("alerts/slack/text.txt", context).strip(),
        "blocks": blocks(message, context, images=images),
    }


def blocks(message: Message, context: dict[str, Any], *, images: bool) -> list[dict[str, Any]]:
    result = [header(message.title)]
    if not message.alerts:
        result.append(section(render_to_string("alerts/slack/test.txt", context)))
    shown = message.alerts[:MAX_ALERTS]
    charted = [alert.id for alert in shown if alert.chart_url and fetchable(alert.chart_url)]
    for alert in shown:
        result.append(alert_section(alert))
        if images and alert.id in charted[:MAX_CHARTS]:
            result.append(image(alert))
        if alert.links:
            result.append(action_buttons(alert))
    more = len(message.alerts) - MAX_ALERTS
    footer = render_to_string("alerts/slack/footer.txt", {**context, "more": max(more, 0)})
    result.append({"type": "context", "elements": [mrkdwn(footer, limit=SECTION_CHARS)]})
    result.append(link_button(message.url, "View in Labbook"))
    return result


def header(title: str) -> dict[str, Any]:
    text = title if len(title) <= HEADER_CHARS else title[: HEADER_CHARS - 1] + "…"
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def alert_section(alert: AlertInfo) -> dict[str, Any]:
    """The alert's text, with a button to its run page (to its own page when it has no run)."""
    block = section(render_to_string("alerts/slack/alert.txt", alert_context(alert)))
    if alert.run is None:
        block["accessory"] = button(alert_page_url(alert), "Open alert")
    elif alert.run.url:
        block["accessory"] = button(alert.run.url, "Open run")
    return block


def action_buttons(alert: AlertInfo) -> dict[str, Any]:
    """The alert's one-click links, each opening a confirmation page in Labbook (a resolved
    alert has nothing to acknowledge): a row of buttons under its section."""
    links = alert.links
    labels = [("silence_1h", "Silence 1 h"), ("silence_1d", "Silence 1 day")]
    if alert.state != "resolved":
        labels.insert(0, ("acknowledge", "Acknowledge"))
    return {
        "type": "actions",
        "elements": [button(links[name], label) for name, label in labels if links.get(name)],
    }


def alert_context(alert: AlertInfo) -> dict[str, Any]:
    """Values pre-escaped for mrkdwn; the template renders with autoescape off. An alert
    without a run shows the project and the schedule it missed instead of the run."""
    run = alert.run
    context = {
        "alert": alert,
        "state": "RESOLVED" if alert.state == "resolved" else "FIRING",
        "rule": escape(alert.rule),
        "summary": escape(alert.summary),
    }
    if run is None:
        missed = [(escape(label), escape(value)) for label, value in missed_run_facts(alert)]
        return {**context, "missed": missed}
    tail = run.traceback_tail[-TRACEBACK_CHARS:] if run.failed else ""
    console = run.console_tail[-CONSOLE_CHARS:] if run.failed else ""
    metrics = list(run.metrics.items())[:MAX_METRICS]
    return {
        **context,
        "run_name": escape(run.name),
        "run_url": run.url,
        "project": escape(run.project),
        "status": escape(run.status),
        "error": escape(run.error[:300]),
        "metrics": [(escape(str(key)), escape(format_value(value))) for key, value in metrics],
        "traceback": escape(tail).replace("```", "'''"),
        "console": escape(console).replace("```", "'''"),
    }


def image(alert: AlertInfo) -> dict[str, Any]:
    """The alert's chart below its section (Slack fetches it from the signed link)."""
    return {"type": "image", "image_url": alert.chart_url, "alt_text": alert.chart_alt[:ALT_CHARS]}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text, limit=SECTION_CHARS)}


def mrkdwn(text: str, *, limit: int) -> dict[str, str]:
    text = text.strip()
    return {"type": "mrkdwn", "text": text if len(text) <= limit else text[: limit - 1] + "…"}


def button(url: str, label: str) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}


def link_button(url: str, label: str) -> dict[str, Any]:
    return {"type": "actions", "elements": [button(url, label)]}


def escape(text: str) -> str:
    """Slack mrkdwn wants exactly &, < and > escaped (it would show &quot; literally)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_value(value: Any) -> str:
    return readable(value)
