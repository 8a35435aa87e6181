"""Email through Django's SMTP backend to a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from alerts.transports.base import TransportError
from alerts.transports.email import EmailTransport
from kernel.errors import ApplicationError
from tests.alerts.messages import alert_info, fired, missed_run_alert, ping_message, run_info
from tests.smtp import Inbox
from tests.support import free_port

mail = EmailTransport()
TO = {"addresses": ["ops@example.com", "alice@example.com"]}


def parts(message: Any) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


# --- delivery ---------------------------------------------------------------------------


def test_it_sends_text_and_html_with_the_title_as_subject(smtp: Inbox) -> None:
    message = fired()
    delivery = mail.send(message, TO)
    assert delivery.latency_ms >= 0
    [(recipients, received)] = smtp.messages
    assert recipients == ["ops@example.com", "alice@example.com"]
    assert received["Subject"] == message.title
    assert received["From"] == "Labbook <labbook@localhost>"
    assert received["Auto-Submitted"] == "auto-generated"
    text, html = parts(received)
    assert text.startswith("Firing in acme/mnist: 1 alert.")
    assert html.lstrip().startswith("<!doctype html>")


@pytest.mark.parametrize("part", [0, 1])
def test_each_part_lists_the_alert(smtp: Inbox, part: int) -> None:
    mail.send(fired(), TO)
    body = parts(smtp.messages[0][1])[part]
    for expected in (
        "resnet-3",
        "failed",
        "runs that fail",
        "exit_code",
        "val/loss",
        "0.4213",
        "http://labbook.example/runs/7",
        "RuntimeError: CUDA out of memory",
        "Traceback (most recent call last):",
        "allocating 12.0 GiB on cuda:0",
    ):
        assert expected in body


def test_a_grouped_message_lists_every_run(smtp: Inbox) -> None:
    alerts = [alert_info(n, run=run_info(n, name=f"sweep-{n}")) for n in range(3)]
    message = fired(*alerts)
    mail.send(message, TO)
    received = smtp.messages[0][1]
    assert received["Subject"].endswith("(+2 more)")
    text, _ = parts(received)
    assert all(f"sweep-{n}" in text for n in range(3))
    assert "http://labbook.example/acme/mnist/alerts" in text


def test_a_finished_run_shows_no_traceback(smtp: Inbox) -> None:
    alert = alert_info(run=run_info(status="finished"), summary="resnet-3 finished")
    mail.send(fired(alert), TO)
    assert "Traceback" not in parts(smtp.messages[0][1])[0]
    assert "Console" not in parts(smtp.messages[0][1])[0]


def test_a_run_that_did_not_come_shows_its_schedule_and_the_alert(smtp: Inbox) -> None:
    alert = missed_run_alert()
    mail.send(fired(alert), TO)
    text, html = parts(smtp.messages[0][1])
    for body in (text, html):
        assert "No run of nightly started by 2026-12-06 02:00 UTC" in body
        assert "acme/mnist" in body
        assert "0 2 * * * (UTC)" in body
        assert "Expected by" in body
        assert "2026-12-06 02:30 UTC" in body
        assert "Open run" not in body
    assert not [line for line in text.splitlines() if line.startswith("Run:")]
    assert "Schedule: 0 2 * * * (UTC)" in text
    assert f"Open alert:    {alert.links['alert']}" in text
    assert '<th style="text-align: left; padding-right: 1em;">Run</th>' not in html
    assert f'<a href="{alert.links["alert"]}">Open alert</a>' in html


def test_user_text_is_escaped_in_html_but_not_in_text(smtp: Inbox) -> None:
    mail.send(fired(alert_info(summary="<script>x()</script> & co")), TO)
    text, html = parts(smtp.messages[0][1])
    assert "<script>x()</script> & co" in text
    assert "&lt;script&gt;x()&lt;/script&gt; &amp; co" in html
    assert "<script>" not in html


def test_a_summary_with_a_newline_stays_one_subject_line(smtp: Inbox) -> None:
    mail.send(fired(alert_info(summary="line one\nBcc: victim@example.com")), TO)
    received = smtp.messages[0][1]
    assert "line one Bcc: victim@example.com" in received["Subject"]
    assert received["Bcc"] is None
    assert smtp.messages[0][0] == TO["addresses"]


def test_a_test_notification_says_so(smtp: Inbox) -> None:
    mail.send(ping_message(), TO)
    received = smtp.messages[0][1]
    assert "TEST" in received["Subject"]
    assert "test notification" in parts(received)[0]


def test_team_members_get_the_addresses_resolved_by_the_caller(smtp: Inbox) -> None:
    config = {"team_members": True, "resolved_addresses": ["bob@example.com", "carol@example.com"]}
    mail.send(fired(), config)
    assert smtp.messages[0][0] == ["bob@example.com", "carol@example.com"]


def test_nobody_to_email_is_not_retryable(smtp: Inbox) -> None:
    with pytest.raises(TransportError) as caught:
        mail.send(fired(), {"team_members": True, "resolved_addresses": []})
    assert not caught.value.retryable
    assert smtp.messages == []


# --- SMTP failures --------------------------------------------------------------------------


def test_smtp_server_down_is_retryable(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    with pytest.raises(TransportError) as caught:
        mail.send(fired(), TO)
    assert caught.value.retryable


@pytest.fixture
def silent_smtp(settings: Any) -> Iterator[None]:
    """A port that accepts connections and never says a word (no SMTP banner)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", listener.getsockname()[1]
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        yield


def test_a_hanging_smtp_server_times_out_retryably(silent_smtp: None, quick_timeout: float) -> None:
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        mail.send(fired(), TO)
    assert caught.value.retryable
    assert time.monotonic() - started < 3


def test_a_permanently_refused_recipient_is_not_retried(smtp: Inbox) -> None:
    smtp.rcpt_reply = "550 5.1.1 no such user"
    with pytest.raises(TransportError) as caught:
        mail.send(fired(), TO)
    assert not caught.value.retryable
    assert caught.value.status_code == 550
    assert "ops@example.com (550 5.1.1 no such user)" in caught.value.message


def test_a_temporarily_refused_recipient_is_retried(smtp: Inbox) -> None:
    smtp.rcpt_reply = "451 4.7.1 greylisted, try again later"
    with pytest.raises(TransportError) as caught:
        mail.send(fired(), TO)
    assert caught.value.retryable
    assert caught.value.status_code == 451


def test_rejected_data_is_not_retried(smtp: Inbox) -> None:
    smtp.data_reply = "554 5.7.1 message rejected as spam"
    with pytest.raises(TransportError) as caught:
        mail.send(fired(), TO)
    assert not caught.value.retryable
    assert "554 5.7.1 message rejected as spam" in caught.value.message


def test_data_deferred_with_4xx_is_retried(smtp: Inbox) -> None:
    smtp.data_reply = "452 4.3.1 insufficient system storage"
    with pytest.raises(TransportError) as caught:
        mail.send(fired(), TO)
    assert caught.value.retryable


# --- config -----------------------------------------------------------------------------


def test_clean_config_keeps_valid_addresses_once() -> None:
    cleaned = mail.clean_config({"addresses": [" ops@example.com", "OPS@example.com", "a@b.io"]})
    assert cleaned == {"addresses": ["ops@example.com", "a@b.io"]}


def test_clean_config_accepts_team_members() -> None:
    assert mail.clean_config({"team_members": True}) == {"team_members": True}


def test_clean_config_names_the_bad_address() -> None:
    with pytest.raises(ApplicationError) as caught:
        mail.clean_config({"addresses": ["ops@example.com", "not an address"]})
    assert caught.value.field == "config.addresses[1]"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.addresses"),
        ({"addresses": []}, "config.addresses"),
        ({"addresses": "ops@example.com"}, "config.addresses"),
        ({"addresses": [f"u{n}@example.com" for n in range(51)]}, "config.addresses"),
        ({"addresses": [42]}, "config.addresses[0]"),
        ({"team_members": False}, "config.team_members"),
        ({"team_members": "yes"}, "config.team_members"),
        ({"team_members": True, "addresses": ["a@b.io"]}, "config.team_members"),
        ({"addresses": ["a@b.io"], "cc": ["c@d.io"]}, "config.cc"),
        (["a@b.io"], "config"),
    ],
)
def test_clean_config_refuses(config: Any, field: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        mail.clean_config(config)
    assert caught.value.field == field
