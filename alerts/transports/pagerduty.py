"""PagerDuty Events API v2: one event per alert, keyed so retries and resolutions line up.

Every alert is one PagerDuty incident: its events carry the ``dedup_key``
``labbook-alert-<alert id>``, the same for its trigger, its reminders and its
resolution. A fired or repeat message sends ``event_action: "trigger"``, a
resolved one ``"resolve"``. PagerDuty has no batch, so a grouped message
sends one event per alert in the same ``send()``; when one fails the whole
message is retried, and the events that already went are deduplicated by
PagerDuty on their key. A test message triggers and then resolves an event of
its own key. PagerDuty answers 202; 400 (a malformed event, an unknown
routing key) is not retried, 429 and 5xx are (``http.delivery_for``).

The routing key (the integration key of a PagerDuty service) is write-only
like a webhook's secret. The events URL defaults to PagerDuty's and may
point elsewhere (EU region, a proxy); it goes through the same guard as
every other URL.
"""

from __future__ import annotations

import re
import time
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
)
from kernel.errors import invalid

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
CONFIG_KEYS = frozenset({"routing_key", "url"})
ROUTING_KEY_RE = re.compile(r"[A-Za-z0-9]{32}")
SUMMARY_CHARS = 1024  # PagerDuty's limit for payload.summary
FIELD_CHARS = 255  # source, component, group, class: short identifiers
TRACEBACK_CHARS = 2000
CLIENT = "Labbook"
# payload.severity: a failed run pages as critical, an SDK alert at its own level,
# a finished run is news; anything else is an error.
SEVERITY_BY_TRIGGER = {"run_failed": "critical", "run_finished": "info"}
SEVERITY_BY_SDK_LEVEL = {"info": "info", "warn": "warning", "error": "error"}
DEFAULT_SEVERITY = "error"
# AlertInfo.links -> the text PagerDuty shows for it, in this order.
LINK_TEXTS = {
    "acknowledge": "Acknowledge in Labbook",
    "silence_1h": "Silence for 1 hour",
    "silence_1d": "Silence for 1 day",
}


class PagerDutyTransport(Transport):
    kind = "pagerduty"

    def clean_config(self, config: Any) -> dict[str, Any]:
        """``{"routing_key", "url"}``; a missing or empty url is PagerDuty's own."""
        config = http.require_keys(config, allowed=CONFIG_KEYS)
        url = config.get("url")
        return {
            "routing_key": clean_routing_key(config.get("routing_key")),
            "url": http.clean_url(url) if url not in (None, "") else DEFAULT_URL,
        }

    def public_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The routing key is write-only: anyone holding it can open incidents."""
        return {**config, "routing_key": SECRET_MASK if config.get("routing_key") else ""}

    def with_secrets_kept(self, new: Any, stored: dict[str, Any]) -> Any:
        if isinstance(new, dict) and new.get("routing_key") in (None, SECRET_MASK):
            return {**new, "routing_key": stored.get("routing_key")}
        return new

    def send(self, message: Message, config: dict[str, Any]) -> Delivery:
        key = config.get("routing_key")
        if not isinstance(key, str) or not key:
            raise TransportError("the PagerDuty destination has no routing key", retryable=False)
        return post_events(config.get("url") or DEFAULT_URL, events_for(message, key))


def clean_routing_key(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid("config.routing_key", "This field is required: the integration key.")
    if not ROUTING_KEY_RE.fullmatch(value.strip()):
        raise invalid(
            "config.routing_key", "An integration key is 32 letters and digits (Events API v2)."
        )
    return value.strip()


def post_events(url: str, events: list[dict[str, Any]]) -> Delivery:
    """POST each event in order; the first failure stops and fails the whole message.

    All events together keep to one exchange's bound (``TIMEOUT_SECONDS`` x
    ``TOTAL_TIMEOUTS``), so a slow PagerDuty cannot hold a grouped message
    past the delivery lease; what is left goes again with the retry.
    """
    headers = {"Content-Type": "application/json", "User-Agent": http.user_agent()}
    started = time.monotonic()
    deadline = started + http.TIMEOUT_SECONDS * http.TOTAL_TIMEOUTS
    delivery = Delivery(status_code=None, latency_ms=0)
    for sent, event in enumerate(events):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransportError(
                f"PagerDuty took too long: {sent} of {len(events)} events sent", retryable=True
            )
        timeout = min(http.TIMEOUT_SECONDS, remaining / http.TOTAL_TIMEOUTS)
        delivery = http.post_json(url, body=orjson.dumps(event), headers=headers, timeout=timeout)
    return Delivery(delivery.status_code, round((time.monotonic() - started) * 1000))


def events_for(message: Message, routing_key: str) -> list[dict[str, Any]]:
    if not message.alerts:
        return test_events(message, routing_key)
    if message.event == "alert.resolved":
        return [resolve_event(routing_key, dedup_key(alert)) for alert in message.alerts]
    return [trigger_event(message, alert, routing_key) for alert in message.alerts]


def dedup_key(alert: AlertInfo) -> str:
    """One incident per Labbook alert: the same key triggers, reminds and resolves it."""
    return f"labbook-alert-{alert.id}"


def trigger_event(message: Message, alert: AlertInfo, routing_key: str) -> dict[str, Any]:
    """The incident: its source is the project, its component the run (when there is one)."""
    run = alert.run
    project = run.project if run is not None else alert.project
    payload: dict[str, Any] = {
        "summary": cut(f"[{project}] {alert.rule}: {alert.summary}", SUMMARY_CHARS),
        "source": cut(project, FIELD_CHARS),
        "severity": severity(alert),
        "timestamp": alert.fired_at,
    }
    if run is not None:  # an expected run that did not come leaves no component to name
        payload["component"] = cut(run.name, FIELD_CHARS)
    payload["group"] = cut(alert.rule, FIELD_CHARS)
    payload["class"] = alert.trigger
    payload["custom_details"] = custom_details(alert)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(alert),
        "payload": payload,
        "links": links(alert),
        "client": CLIENT,
        "client_url": alert.url or message.url,
    }
    if alert.chart_url:
        href = run.url if run is not None else alert_page_url(alert)
        event["images"] = [{"src": alert.chart_url, "href": href, "alt": alert.summary}]
    return event


def resolve_event(routing_key: str, key: str) -> dict[str, Any]:
    """What PagerDuty needs to resolve: the key of the incident, nothing else."""
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}


def test_events(message: Message, routing_key: str) -> list[dict[str, Any]]:
    """A trigger and its resolution: the service shows the test, then closes it."""
    key = f"labbook-test-{message.notification_id}"
    trigger = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": cut(message.title, SUMMARY_CHARS),
            "source": cut(message.project, FIELD_CHARS),
            "severity": "info",
            "class": "test",
        },
        "links": [{"href": message.url, "text": "Open in Labbook"}],
        "client": CLIENT,
        "client_url": message.url,
    }
    return [trigger, resolve_event(routing_key, key)]


def severity(alert: AlertInfo) -> str:
    if alert.trigger == "sdk_alert":
        return SEVERITY_BY_SDK_LEVEL.get(str(alert.values.get("level")), DEFAULT_SEVERITY)
    return SEVERITY_BY_TRIGGER.get(alert.trigger, DEFAULT_SEVERITY)


def custom_details(alert: AlertInfo) -> dict[str, Any]:
    """What a responder wants in the incident: the alert's values, the run, its last metrics.
    Without a run (an expected run that did not come) the values name the schedule missed."""
    run = alert.run
    details: dict[str, Any] = {
        "rule": alert.rule,
        "summary": alert.summary,
        "values": alert.values,
    }
    if run is None:
        return {**details, "project": alert.project, "alert": alert_page_url(alert)}
    details |= {
        "run": {"id": run.id, "name": run.name, "status": run.status, "url": run.url},
        "tags": run.tags,
        "metrics": run.metrics,
    }
    if run.error:
        details["error"] = run.error
    if run.failed and run.traceback_tail:
        details["traceback_tail"] = run.traceback_tail[-TRACEBACK_CHARS:]
    return details


def links(alert: AlertInfo) -> list[dict[str, str]]:
    """The run page (the alert's page when it has no run), then the one-click links of the
    alert (when it has them)."""
    run = alert.run
    if run is None:
        found = [{"href": alert_page_url(alert), "text": "Alert in Labbook"}]
    else:
        found = [{"href": run.url, "text": f"Run {run.name}"}] if run.url else []
    found += [
        {"href": alert.links[name], "text": text}
        for name, text in LINK_TEXTS.items()
        if alert.links.get(name)
    ]
    return found


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
