"""Email through Django's email backend (SMTP from ``EMAIL_URL``): text + HTML from templates.

Config is ``{"addresses": [...]}`` or ``{"team_members": true}``. Team members
are looked up by the delivery code at send time (membership changes), which
passes them in as ``config["resolved_addresses"]``; this module never queries.
A personal destination's ``{"user": id}`` (``alerts.personal``) is made by
Labbook, never typed: ``clean_config`` refuses it like any unknown key, so the
team API and pages cannot point an email at an account.

SMTP failures map to retries the way SMTP itself means them: a 5xx reply to
the sender, a recipient or the data is permanent; 4xx replies, refused or
dropped connections and timeouts are temporary.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Sequence
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import SafeMIMEMultipart
from django.core.validators import validate_email
from django.template.loader import render_to_string

from alerts.transports.base import (
    AlertInfo,
    Delivery,
    Message,
    Transport,
    TransportError,
    alert_page_url,
    missed_run_facts,
    readable,
)
from kernel.errors import invalid

TIMEOUT_SECONDS = 10.0  # tests monkeypatch this to make "the server hangs" quick
MAX_ADDRESSES = 50
MAX_ALERTS = 50  # a grouped message lists this many; the rest are counted
SUBJECT_CHARS = 200
TRACEBACK_CHARS = 3000


class EmailTransport(Transport):
    kind = "email"
    embeds_charts = True  # metric alerts' charts travel inline (multipart/related)

    def clean_config(self, config: Any) -> dict[str, Any]:
        """Exactly one of ``addresses`` (1..50 valid, deduplicated) or ``team_members: true``."""
        if not isinstance(config, dict):
            raise invalid("config", "Must be an object.")
        unknown = sorted(set(config) - {"addresses", "team_members"})
        if unknown:
            raise invalid(
                f"config.{unknown[0]}", "Unknown key; expected addresses or team_members."
            )
        if config.get("team_members") is True and "addresses" not in config:
            return {"team_members": True}
        if "team_members" in config:
            raise invalid("config.team_members", "Use true alone, or a list of addresses instead.")
        return {"addresses": clean_addresses(config.get("addresses"))}

    def send(self, message: Message, config: dict[str, Any]) -> Delivery:
        recipients = recipients_of(config)
        email = build_email(message, recipients)
        started = time.monotonic()
        try:
            email.send(fail_silently=False)
        except (smtplib.SMTPException, OSError) as error:
            raise smtp_error(error) from error
        return Delivery(status_code=None, latency_ms=round((time.monotonic() - started) * 1000))


def clean_addresses(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise invalid("config.addresses", "Give a non-empty list of email addresses.")
    if len(value) > MAX_ADDRESSES:
        raise invalid("config.addresses", f"At most {MAX_ADDRESSES} addresses.")
    cleaned: list[str] = []
    for index, address in enumerate(value):
        field = f"config.addresses[{index}]"
        if not isinstance(address, str):
            raise invalid(field, "Must be an email address.")
        try:
            validate_email(address.strip())
        except ValidationError:
            raise invalid(field, f"{address!r} is not a valid email address.") from None
        if address.strip().lower() not in {seen.lower() for seen in cleaned}:
            cleaned.append(address.strip())
    return cleaned


def recipients_of(config: dict[str, Any]) -> list[str]:
    # Team members, or a personal destination's owner (``{"user": id}``): looked up by delivery.
    resolved = config.get("team_members") or config.get("user")
    key = "resolved_addresses" if resolved else "addresses"
    recipients = [address for address in config.get(key) or [] if address]
    if not recipients:
        raise TransportError("no recipients: nobody to email", retryable=False)
    return recipients


class ChartEmail(EmailMultiAlternatives):
    """Text and HTML alternatives, the HTML in multipart/related with the charts it shows by
    Content-ID: mail clients show them in place, and a text-only reader sees no attachment."""

    def __init__(self, *args: Any, images: Sequence[MIMEBase] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.images = list(images)

    def _create_mime_attachment(self, content: Any, mimetype: str) -> Any:
        """Django's hook turning an alternative into a MIME part: the HTML one takes its images."""
        part = super()._create_mime_attachment(content, mimetype)  # type: ignore[misc]
        if mimetype != "text/html" or not self.images:
            return part
        encoding = self.encoding or settings.DEFAULT_CHARSET
        related = SafeMIMEMultipart(_subtype="related", encoding=encoding)
        related.attach(part)
        for image in self.images:
            related.attach(image)
        return related


def chart_cid(message: Message, alert_id: int) -> str:
    """The Content-ID of an alert's chart in this message (without its angle brackets)."""
    return f"chart-{alert_id}.{message.notification_id}@labbook"


def chart_images(message: Message) -> list[MIMEImage]:
    """The PNGs delivery drew (``Message.charts``) of the alerts the message lists."""
    images = []
    for alert in message.alerts[:MAX_ALERTS]:
        png = message.charts.get(alert.id)
        if png:
            image = MIMEImage(png, "png")
            image.add_header("Content-ID", f"<{chart_cid(message, alert.id)}>")
            image.add_header("Content-Disposition", "inline", filename=f"chart-{alert.id}.png")
            images.append(image)
    return images


def build_email(message: Message, recipients: list[str]) -> EmailMultiAlternatives:
    context = email_context(message)
    email = ChartEmail(
        subject=subject(message),
        body=render_to_string("alerts/email/message.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        headers={"Auto-Submitted": "auto-generated", "X-Labbook-Event": message.event},
        connection=get_connection(timeout=TIMEOUT_SECONDS),
        images=chart_images(message),
    )
    email.attach_alternative(render_to_string("alerts/email/message.html", context), "text/html")
    return email


def subject(message: Message) -> str:
    """The title on one line: a newline in a header is refused by Django (header injection)."""
    title = " ".join(message.title.split())
    return title if len(title) <= SUBJECT_CHARS else title[: SUBJECT_CHARS - 1] + "…"


def email_context(message: Message) -> dict[str, Any]:
    return {
        "message": message,
        "count": len(message.alerts),
        "items": [alert_item(alert, message) for alert in message.alerts[:MAX_ALERTS]],
        "more": max(len(message.alerts) - MAX_ALERTS, 0),
    }


def alert_item(alert: AlertInfo, message: Message) -> dict[str, Any]:
    """The alert for the templates; one without a run shows its schedule where a run would be."""
    run = alert.run
    drawn = alert.id in message.charts
    failed = run if run is not None and run.failed else None
    metrics = run.metrics.items() if run is not None else []
    return {
        "alert": alert,
        "run": run,
        "missed": [] if run is not None else missed_run_facts(alert),
        "alert_url": alert_page_url(alert),
        "state": "RESOLVED" if alert.state == "resolved" else "FIRING",
        "values": [(key, format_value(value)) for key, value in alert.values.items()],
        "metrics": [(key, format_value(value)) for key, value in metrics],
        "traceback": failed.traceback_tail[-TRACEBACK_CHARS:] if failed else "",
        "console": failed.console_tail[-TRACEBACK_CHARS:] if failed else "",
        "chart_cid": chart_cid(message, alert.id) if drawn else "",
    }


def format_value(value: Any) -> str:
    return readable(value)


def smtp_error(error: Exception) -> TransportError:
    """Permanent (5xx from the server) or worth retrying (4xx, connection trouble)."""
    code = smtp_code(error)
    permanent = code is not None and code >= 500 and not isinstance(error, smtplib.SMTPConnectError)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        permanent = True  # e.g. STARTTLS asked of a server without it: a config problem
    return TransportError(f"SMTP: {smtp_detail(error)}", retryable=not permanent, status_code=code)


def smtp_code(error: Exception) -> int | None:
    """The SMTP reply code; for refused recipients the lowest (a 4xx among them may pass later)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [reply[0] for reply in error.recipients.values()]
        return min(codes) if codes else None
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code
    return None


def smtp_detail(error: Exception) -> str:
    """What the server said, readable in the delivery log (smtplib keeps it as bytes)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = (
            f"{rcpt} ({code} {reply_text(text)})" for rcpt, (code, text) in error.recipients.items()
        )
        return "recipients refused: " + ", ".join(refused)
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {reply_text(error.smtp_error)}"
    return str(error) or type(error).__name__


def reply_text(text: bytes | str) -> str:
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
