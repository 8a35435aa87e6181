"""Signed JSON webhooks: the payload and headers of docs/alerts.md, POSTed through ``http``.

The body is serialized once (orjson, sorted keys) and those exact bytes are
both signed and sent, so a receiver verifies by recomputing
``HMAC-SHA256(secret, raw body)`` before parsing anything. The secret is
write-only: ``public_config`` shows it masked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
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
)
from kernel.errors import invalid

SECRET_MIN = 16
SECRET_MAX = 200
CONFIG_KEYS = frozenset({"url", "secret"})


class WebhookTransport(Transport):
    kind = "webhook"

    def clean_config(self, config: Any) -> dict[str, Any]:
        """``{"url", "secret"}``; the secret is required (the receiver must be able to verify)."""
        config = http.require_keys(config, allowed=CONFIG_KEYS)
        url = http.clean_url(config.get("url"))
        return {"url": url, "secret": clean_secret(config.get("secret"))}

    def send(self, message: Message, config: dict[str, Any]) -> Delivery:
        secret = config.get("secret")
        if not isinstance(secret, str) or not secret:
            raise TransportError("the webhook has no secret to sign with", retryable=False)
        body = payload_bytes(message)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": http.user_agent(),
            "X-Labbook-Event": message.event,
            "X-Labbook-Signature": signature(body, secret),
            "Idempotency-Key": str(message.notification_id),
        }
        return http.post_json(config["url"], body=body, headers=headers)

    def public_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The secret is write-only: shown masked (or empty when none is set)."""
        return {**config, "secret": SECRET_MASK if config.get("secret") else ""}

    def with_secrets_kept(self, new: Any, stored: dict[str, Any]) -> Any:
        if isinstance(new, dict) and new.get("secret") in (None, SECRET_MASK):
            return {**new, "secret": stored.get("secret")}
        return new


def clean_secret(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise invalid("config.secret", "This field is required: the receiver verifies with it.")
    if not SECRET_MIN <= len(value) <= SECRET_MAX:
        raise invalid("config.secret", f"Use {SECRET_MIN} to {SECRET_MAX} characters.")
    return value


def signature(body: bytes, secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def payload_bytes(message: Message) -> bytes:
    """Sorted-key JSON; NaN/inf metric values become null (JSON has no NaN)."""
    return orjson.dumps(payload(message), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def payload(message: Message) -> dict[str, Any]:
    first = message.alerts[0] if message.alerts else None
    return {
        "event": message.event,
        "alert": alert_fields(first) if first else None,
        # null for an alert about a run that did not come (run_expected)
        "run": dataclasses.asdict(first.run) if first and first.run else None,
        "alerts": [dataclasses.asdict(alert) for alert in message.alerts],
        "project": message.project,
        "url": message.url,
    }


def alert_fields(alert: AlertInfo) -> dict[str, Any]:
    fields = dataclasses.asdict(alert)
    del fields["run"]
    return fields
