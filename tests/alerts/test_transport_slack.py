"""Slack incoming webhooks against a real HTTP receiver: blocks, broken URLs, retries."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from alerts.transports.base import TransportError
from alerts.transports.slack import SlackTransport
from kernel.errors import ApplicationError
from tests.alerts.messages import alert_info, fired, missed_run_alert, ping_message, run_info
from tests.alerts.receiver import Receiver, Reply
from tests.support import free_port

slack = SlackTransport()


def sent_payload(receiver: Receiver, message: Any = None) -> dict[str, Any]:
    slack.send(message or fired(), {"url": receiver.url("/services/T0/B0/xyz")})
    return json.loads(receiver.requests[-1].body)


def fails(receiver: Receiver, *replies: Reply) -> TransportError:
    receiver.script(*replies)
    with pytest.raises(TransportError) as caught:
        slack.send(fired(), {"url": receiver.url()})
    return caught.value


def sections(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [block for block in payload["blocks"] if block["type"] == "section"]


# --- the message ----------------------------------------------------------------------


def test_it_posts_text_and_blocks(receiver: Receiver, allow_private: Any) -> None:
    message = fired()
    payload = sent_payload(receiver, message)
    request = receiver.requests[0]
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/services/T0/B0/xyz"
    assert message.title in payload["text"]
    assert payload["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": message.title, "emoji": True},
    }


def test_each_alert_shows_run_project_status_and_metrics(
    receiver: Receiver, allow_private: Any
) -> None:
    [section] = sections(sent_payload(receiver))
    text = section["text"]["text"]
    assert section["text"]["type"] == "mrkdwn"
    assert "<http://labbook.example/runs/7|resnet-3>" in text
    assert "acme/mnist" in text
    assert "`failed`" in text
    assert "`val/loss` = 0.4213" in text
    assert section["accessory"]["url"] == "http://labbook.example/runs/7"


def test_a_failed_run_shows_its_traceback_and_console_tails_as_code(
    receiver: Receiver, allow_private: Any
) -> None:
    text = sections(sent_payload(receiver))[0]["text"]["text"]
    assert "```\nTraceback (most recent call last):" in text
    assert "RuntimeError: CUDA out of memory\n```" in text
    assert "*Console* (last lines)\n```\nepoch 3/10: loss 0.4213\nallocating 12.0 GiB" in text


def test_a_finished_run_has_no_traceback(receiver: Receiver, allow_private: Any) -> None:
    run = run_info(status="finished")
    message = fired(alert_info(run=run, trigger="run_finished", summary="resnet-3 finished"))
    assert "```" not in sections(sent_payload(receiver, message))[0]["text"]["text"]


def test_it_links_to_the_run_page(receiver: Receiver, allow_private: Any) -> None:
    message = fired()
    actions = sent_payload(receiver, message)["blocks"][-1]
    assert actions["type"] == "actions"
    assert actions["elements"][0]["url"] == message.url


def assert_valid_blocks(blocks: list[dict[str, Any]]) -> None:
    """The Block Kit rules this transport relies on: known block types, sizes, buttons."""
    assert 0 < len(blocks) <= 50
    buttons = [b for block in blocks if block["type"] == "actions" for b in block["elements"]]
    buttons += [block["accessory"] for block in blocks if "accessory" in block]
    for block in blocks:
        assert block["type"] in {"header", "section", "actions", "context", "image"}
        if block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn"
            assert 0 < len(block["text"]["text"]) <= 3000
    for button in buttons:
        assert button["type"] == "button"
        assert button["text"]["type"] == "plain_text" and button["text"]["text"]
        assert button["url"].startswith("http")


def test_a_run_that_did_not_come_shows_its_schedule_and_opens_the_alert(
    receiver: Receiver, allow_private: Any
) -> None:
    alert = missed_run_alert()
    payload = sent_payload(receiver, fired(alert))
    assert_valid_blocks(payload["blocks"])
    [section] = sections(payload)
    text = section["text"]["text"]
    assert "No run of nightly started by 2026-12-06 02:00 UTC" in text
    assert "*Project* acme/mnist" in text
    assert "*Schedule* 0 2 * * * (UTC)" in text
    assert "*Expected by* 2026-12-06 02:30 UTC" in text
    assert "*Run*" not in text and "*Status*" not in text
    assert section["accessory"]["text"]["text"] == "Open alert"
    assert section["accessory"]["url"] == alert.links["alert"]
    [actions] = [block for block in payload["blocks"][:-1] if block["type"] == "actions"]
    labels = [button["text"]["text"] for button in actions["elements"]]
    assert labels == ["Acknowledge", "Silence 1 h", "Silence 1 day"]


def test_user_text_is_escaped_for_mrkdwn(receiver: Receiver, allow_private: Any) -> None:
    alert = alert_info(summary='loss <b>& "friends"</b> <!channel>')
    text = sections(sent_payload(receiver, fired(alert)))[0]["text"]["text"]
    assert 'loss &lt;b&gt;&amp; "friends"&lt;/b&gt; &lt;!channel&gt;' in text


def test_forty_dead_runs_fit_in_one_message(receiver: Receiver, allow_private: Any) -> None:
    alerts = [alert_info(n, run=run_info(n, name=f"sweep-{n}")) for n in range(40)]
    payload = sent_payload(receiver, fired(*alerts))
    assert len(receiver.requests) == 1
    assert len(payload["blocks"]) <= 50
    assert len(sections(payload)) == 20
    assert "…and 20 more alerts" in json.dumps(payload, ensure_ascii=False)
    assert all(len(block["text"]["text"]) <= 3000 for block in sections(payload))


def test_a_test_notification_says_so(receiver: Receiver, allow_private: Any) -> None:
    payload = sent_payload(receiver, ping_message())
    assert "test notification" in sections(payload)[0]["text"]["text"]


# --- Slack's answers ------------------------------------------------------------------


def test_ok_is_a_delivery(receiver: Receiver, allow_private: Any) -> None:
    receiver.script(Reply(200, "ok"))
    assert slack.send(fired(), {"url": receiver.url()}).status_code == 200


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, "no_service"),
        (404, "channel_not_found"),
        (403, "invalid_token"),
        (404, "no_team"),
        (410, "channel_is_archived"),
        (404, ""),
    ],
)
def test_a_gone_webhook_marks_the_destination_broken(
    status: int, body: str, receiver: Receiver, allow_private: Any
) -> None:
    error = fails(receiver, Reply(status, body))
    assert error.broken
    assert not error.retryable
    assert error.status_code == status


def test_an_invalid_payload_is_not_retried_nor_broken(
    receiver: Receiver, allow_private: Any
) -> None:
    error = fails(receiver, Reply(400, "invalid_payload"))
    assert (error.retryable, error.broken) == (False, False)
    assert "invalid_payload" in error.message


def test_a_slack_outage_is_retried(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(500, "internal_error"))
    assert (error.retryable, error.broken) == (True, False)


def test_rate_limiting_is_retried_after_retry_after(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(429, "rate_limited", {"Retry-After": "3"}))
    assert (error.retryable, error.retry_after, error.broken) == (True, 3.0, False)


def test_a_hanging_slack_times_out_retryably(
    receiver: Receiver, allow_private: Any, quick_timeout: float
) -> None:
    started = time.monotonic()
    error = fails(receiver, Reply(delay=10))
    assert error.retryable
    assert time.monotonic() - started < 3


def test_slack_unreachable_is_retryable(allow_private: Any) -> None:
    with pytest.raises(TransportError) as caught:
        slack.send(fired(), {"url": f"http://127.0.0.1:{free_port()}/services/x"})
    assert caught.value.retryable


def test_a_redirect_to_metadata_is_refused(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply.redirect("http://[::ffff:169.254.169.254]/"))
    assert not error.retryable
    assert len(receiver.requests) == 1


# --- SSRF and config ------------------------------------------------------------------

BLOCKED_URLS = [
    "http://127.0.0.1/services/x",
    "http://localhost/services/x",
    "http://10.0.0.8/services/x",
    "http://172.16.0.1/services/x",
    "http://192.168.0.10/services/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/services/x",
    "http://[fd00::1]/services/x",
    "http://0.0.0.0/services/x",
    "https://user:pw@hooks.slack.com/services/x",
]


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_it_refuses_private_urls_at_save_time(url: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        slack.clean_config({"url": url})
    assert caught.value.field == "config.url"


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_it_refuses_private_urls_at_send_time(url: str) -> None:
    with pytest.raises(TransportError) as caught:
        slack.send(fired(), {"url": url})
    assert (caught.value.retryable, caught.value.broken) == (False, False)


def test_the_receiver_on_loopback_gets_nothing_by_default(receiver: Receiver) -> None:
    with pytest.raises(TransportError):
        slack.send(fired(), {"url": receiver.url()})
    assert receiver.requests == []


def test_a_name_that_resolves_to_loopback_is_refused(fake_dns: Any, receiver: Receiver) -> None:
    fake_dns.answer("hooks.example.com", ["127.0.0.1"])
    url = f"http://hooks.example.com:{receiver.port}/services/x"
    with pytest.raises(ApplicationError):
        slack.clean_config({"url": url})
    with pytest.raises(TransportError, match=r"resolves to a loopback address"):
        slack.send(fired(), {"url": url})
    assert receiver.requests == []


def test_clean_config_keeps_only_the_url(fake_dns: Any) -> None:
    fake_dns.answer("hooks.slack.com", ["54.1.2.3"])
    url = "https://hooks.slack.com/services/T0/B0/xyz"
    assert slack.clean_config({"url": url}) == {"url": url}
    with pytest.raises(ApplicationError) as caught:
        slack.clean_config({"url": url, "channel": "#ml"})
    assert caught.value.field == "config.channel"
    with pytest.raises(ApplicationError) as caught:
        slack.clean_config({})
    assert caught.value.field == "config.url"
