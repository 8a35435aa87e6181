"""Signed webhooks against a real HTTP receiver on loopback: payload, signature, failures."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import pytest

from alerts.models import DestinationKind
from alerts.transports import TRANSPORTS, http, transport_for
from alerts.transports.base import Delivery, TransportError
from alerts.transports.webhook import WebhookTransport
from kernel.errors import ApplicationError
from tests.alerts.messages import alert_info, fired, missed_run_alert, ping_message, run_info
from tests.alerts.receiver import Receiver, Reply
from tests.support import free_port

SECRET = "s3cret-s3cret-s3cret"
webhook = WebhookTransport()


def config(url: str) -> dict[str, str]:
    return {"url": url, "secret": SECRET}


def fails(receiver: Receiver, *replies: Reply, url: str | None = None) -> TransportError:
    receiver.script(*replies)
    with pytest.raises(TransportError) as caught:
        webhook.send(fired(), config(url or receiver.url()))
    return caught.value


# --- delivery -------------------------------------------------------------------------


def test_it_posts_the_payload_of_design_md(receiver: Receiver, allow_private: Any) -> None:
    message = fired(alert_info(11), alert_info(12, run=run_info(8, name="vit-1")))
    delivery = webhook.send(message, config(receiver.url()))
    assert delivery.status_code == 200
    assert delivery.latency_ms >= 0
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    payload = json.loads(request.body)
    assert payload["event"] == "alert.fired"
    assert payload["project"] == "acme/mnist"
    assert payload["url"] == message.url
    assert payload["alert"]["id"] == 11
    assert "run" not in payload["alert"]
    assert payload["run"]["name"] == "resnet-3"
    assert payload["run"]["traceback_tail"].endswith("CUDA out of memory")
    assert [alert["run"]["name"] for alert in payload["alerts"]] == ["resnet-3", "vit-1"]


def test_a_run_that_did_not_come_has_a_null_run(receiver: Receiver, allow_private: Any) -> None:
    alert = missed_run_alert()
    webhook.send(fired(alert), config(receiver.url()))
    payload = json.loads(receiver.requests[0].body)
    assert payload["run"] is None
    assert payload["alert"]["project"] == "acme/mnist"
    assert payload["alert"]["trigger"] == "run_expected"
    assert payload["alert"]["values"]["expected_by"] == "2026-12-06T02:30:00+00:00"
    assert payload["alert"]["values"]["cron"] == "0 2 * * *"
    assert payload["alert"]["links"]["alert"] == alert.url
    assert "run" not in payload["alert"]["links"]
    [listed] = payload["alerts"]
    assert (listed["run"], listed["project"]) == (None, "acme/mnist")
    assert payload["url"] == alert.url


def test_the_receiver_can_verify_the_signature(receiver: Receiver, allow_private: Any) -> None:
    webhook.send(fired(), config(receiver.url()))
    [request] = receiver.requests
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-labbook-signature"] == f"sha256={expected}"
    wrong = hmac.new(b"another-secret-entirely", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-labbook-signature"] != f"sha256={wrong}"


def test_it_sends_the_headers_receivers_rely_on(receiver: Receiver, allow_private: Any) -> None:
    webhook.send(fired(notification_id=4242), config(receiver.url()))
    headers = receiver.requests[0].headers
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == "4242"
    assert headers["user-agent"].startswith("Labbook/")
    assert headers["x-labbook-event"] == "alert.fired"
    assert headers["host"] == f"127.0.0.1:{receiver.port}"


def test_the_body_is_compact_json_with_sorted_keys(receiver: Receiver, allow_private: Any) -> None:
    webhook.send(fired(), config(receiver.url()))
    body = receiver.requests[0].body
    assert body == orjson.dumps(json.loads(body), option=orjson.OPT_SORT_KEYS)


def test_nan_metric_values_arrive_as_null(receiver: Receiver, allow_private: Any) -> None:
    alert = alert_info(values={"key": "val/loss", "value": math.nan, "step": 1179})
    webhook.send(fired(alert), config(receiver.url()))
    assert json.loads(receiver.requests[0].body)["alert"]["values"]["value"] is None


def test_a_test_notification_has_no_alert(receiver: Receiver, allow_private: Any) -> None:
    webhook.send(ping_message(), config(receiver.url()))
    payload = json.loads(receiver.requests[0].body)
    assert payload["event"] == "test"
    assert payload["alert"] is None
    assert payload["run"] is None
    assert payload["alerts"] == []


# --- status mapping -----------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_a_delivery(status: int, receiver: Receiver, allow_private: Any) -> None:
    receiver.script(Reply(status=status, body=b""))
    assert webhook.send(fired(), config(receiver.url())).status_code == status


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable(status: int, receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(status=status, body="upstream is down"))
    assert error.retryable
    assert error.status_code == status
    assert not error.broken
    assert f"HTTP {status} from 127.0.0.1: upstream is down" == error.message


def test_429_is_retried_after_retry_after_seconds(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(status=429, body="slow down", headers={"Retry-After": "7"}))
    assert error.retryable
    assert error.status_code == 429
    assert error.retry_after == 7.0


def test_429_understands_an_http_date(receiver: Receiver, allow_private: Any) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    error = fails(receiver, Reply(status=429, headers={"Retry-After": when}))
    assert error.retryable
    assert error.retry_after is not None
    assert 110 <= error.retry_after <= 121


def test_429_without_retry_after_is_still_retryable(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(status=429, headers={"Retry-After": "soon-ish"}))
    assert error.retryable
    assert error.retry_after is None


def test_503_with_retry_after_passes_it_on(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(status=503, headers={"Retry-After": "30"}))
    assert (error.retryable, error.retry_after) == (True, 30.0)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_4xx_fail_at_once(status: int, receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(status=status, body="nope"))
    assert not error.retryable
    assert not error.broken  # only Slack knows when its URL is gone
    assert error.status_code == status


def test_the_error_quotes_at_most_300_chars_of_the_body(
    receiver: Receiver, allow_private: Any
) -> None:
    error = fails(receiver, Reply(status=400, body="x" * 5000))
    quoted = error.message.split(": ", 1)[1]
    assert quoted == "x" * 300


def test_a_receiver_that_hangs_times_out_retryably(
    receiver: Receiver, allow_private: Any, quick_timeout: float
) -> None:
    started = time.monotonic()
    error = fails(receiver, Reply(delay=10))
    assert time.monotonic() - started < 3
    assert error.retryable
    assert "did not answer within 0.5 s" in error.message


def test_a_slow_redirect_chain_gives_up_within_the_overall_deadline(
    receiver: Receiver, allow_private: Any, quick_timeout: float
) -> None:
    """Each answer comes within the 0.5 s timeout, but all of them take longer than 3 x 0.5 s."""
    started = time.monotonic()
    hops = [Reply(302, b"", {"Location": f"/hop{n}"}, delay=0.4) for n in range(3)]
    error = fails(receiver, *hops, Reply(delay=0.4))
    assert error.retryable
    assert time.monotonic() - started < 2.5


def test_a_huge_answer_is_read_only_in_part(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(status=400, body=b"y" * 5_000_000))
    assert error.message.endswith("y" * 300)


def test_a_retry_after_date_in_the_past_means_now() -> None:
    assert http.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert http.parse_retry_after("120") == 120.0
    assert http.parse_retry_after("-5") is None
    assert http.parse_retry_after(None) is None


def test_connection_refused_is_retryable(allow_private: Any) -> None:
    with pytest.raises(TransportError) as caught:
        webhook.send(fired(), config(f"http://127.0.0.1:{free_port()}/hook"))
    assert caught.value.retryable
    assert "cannot reach 127.0.0.1" in caught.value.message


def test_a_name_that_does_not_resolve_is_retryable(allow_private: Any, fake_dns: Any) -> None:
    fake_dns.answer("gone.example.com", None)
    with pytest.raises(TransportError) as caught:
        webhook.send(fired(), config("https://gone.example.com/hook"))
    assert caught.value.retryable


# --- redirects --------------------------------------------------------------------


def test_it_follows_a_redirect_with_the_same_signed_body(
    receiver: Receiver, allow_private: Any
) -> None:
    receiver.script(Reply.redirect(receiver.url("/moved"), status=307))
    webhook.send(fired(), config(receiver.url()))
    first, second = receiver.requests
    assert (second.method, second.path) == ("POST", "/moved")
    assert second.body == first.body
    assert second.headers["x-labbook-signature"] == first.headers["x-labbook-signature"]


def test_a_301_keeps_the_post(receiver: Receiver, allow_private: Any) -> None:
    receiver.script(Reply.redirect(receiver.url("/moved"), status=301))
    webhook.send(fired(), config(receiver.url()))
    assert receiver.requests[1].method == "POST"
    assert receiver.requests[1].body == receiver.requests[0].body


def test_a_303_is_fetched_with_get(receiver: Receiver, allow_private: Any) -> None:
    receiver.script(Reply.redirect("/done", status=303))
    webhook.send(fired(), config(receiver.url()))
    assert (receiver.requests[1].method, receiver.requests[1].body) == ("GET", b"")


def test_it_follows_three_redirects(receiver: Receiver, allow_private: Any) -> None:
    receiver.script(*(Reply.redirect(f"/hop{n}") for n in range(3)))
    assert isinstance(webhook.send(fired(), config(receiver.url())), Delivery)
    assert [request.path for request in receiver.requests] == ["/hook", "/hop0", "/hop1", "/hop2"]


def test_a_fourth_redirect_is_refused(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, *(Reply.redirect(f"/hop{n}") for n in range(4)))
    assert not error.retryable
    assert "more than 3 redirects" in error.message
    assert len(receiver.requests) == 4


def test_a_redirect_to_cloud_metadata_is_refused(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply.redirect("http://169.254.169.254/latest/meta-data/"))
    assert not error.retryable
    assert "169.254.169.254" in error.message
    assert len(receiver.requests) == 1


def test_a_redirect_to_loopback_is_refused_when_private_is_not_allowed(
    receiver: Receiver, allow_private: dict[str, Any]
) -> None:
    """The first hop is let through, then the guard is back on: the redirect is re-checked."""

    def deny() -> None:
        allow_private["ALERTS_ALLOW_PRIVATE_WEBHOOKS"] = False

    error = fails(receiver, Reply(302, b"", {"Location": receiver.url("/inside")}, on_request=deny))
    assert not error.retryable
    assert "127.0.0.1 is a loopback address" in error.message
    assert [request.path for request in receiver.requests] == ["/hook"]


def test_a_redirect_to_another_scheme_is_refused(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply.redirect("file:///etc/passwd"))
    assert not error.retryable
    assert len(receiver.requests) == 1


# --- SSRF at send time ------------------------------------------------------------------

BLOCKED_URLS = [
    "http://127.0.0.1/hook",
    "http://localhost/hook",
    "http://10.0.0.8/hook",
    "http://172.16.0.1/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[fd00::1]/hook",
    "http://0.0.0.0/hook",
    "http://user:pw@hooks.example.com/hook",
]


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_it_refuses_to_send_to_private_addresses(url: str) -> None:
    with pytest.raises(TransportError) as caught:
        webhook.send(fired(), config(url))
    assert not caught.value.retryable
    assert caught.value.message.startswith("refused:")


def test_the_receiver_on_loopback_gets_nothing_by_default(receiver: Receiver) -> None:
    with pytest.raises(TransportError, match=r"127\.0\.0\.1 is a loopback address"):
        webhook.send(fired(), config(receiver.url()))
    assert receiver.requests == []


def test_a_name_rebound_to_loopback_after_saving_is_refused(
    receiver: Receiver, fake_dns: Any
) -> None:
    fake_dns.answer("rebind.example.com", ["93.184.216.34"], ["127.0.0.1"])
    saved = webhook.clean_config(config(f"http://rebind.example.com:{receiver.port}/hook"))
    with pytest.raises(TransportError, match=r"resolves to a loopback address"):
        webhook.send(fired(), saved)
    assert receiver.requests == []


def test_it_connects_to_the_address_it_checked(
    receiver: Receiver, allow_private: Any, fake_dns: Any, quick_timeout: float
) -> None:
    """A second, different DNS answer would be a black hole: it is never asked for."""
    fake_dns.answer("pinned.example.com", ["127.0.0.1"], ["10.255.255.1"])
    webhook.send(fired(), config(f"http://pinned.example.com:{receiver.port}/hook"))
    [request] = receiver.requests
    assert request.headers["host"] == f"pinned.example.com:{receiver.port}"
    assert fake_dns.lookups == ["pinned.example.com"]


def test_it_tries_the_next_checked_address_when_one_refuses(
    receiver: Receiver, allow_private: Any, fake_dns: Any
) -> None:
    fake_dns.answer("twice.example.com", ["::1", "127.0.0.1"])
    webhook.send(fired(), config(f"http://twice.example.com:{receiver.port}/hook"))
    assert len(receiver.requests) == 1


# --- config -----------------------------------------------------------------------------


def test_clean_config_keeps_url_and_secret(fake_dns: Any) -> None:
    fake_dns.answer("hooks.example.com", ["93.184.216.34"])
    cleaned = webhook.clean_config({"url": " https://hooks.example.com/x ", "secret": SECRET})
    assert cleaned == {"url": "https://hooks.example.com/x", "secret": SECRET}


@pytest.mark.parametrize("url", [*BLOCKED_URLS, "ftp://hooks.example.com/", "", None, 42])
def test_clean_config_refuses_bad_urls(url: Any) -> None:
    with pytest.raises(ApplicationError) as caught:
        webhook.clean_config({"url": url, "secret": SECRET})
    assert caught.value.field == "config.url"


@pytest.mark.parametrize("secret", [None, "", "short", "x" * 201, 1234567890123456789])
def test_clean_config_requires_a_reasonable_secret(secret: Any) -> None:
    with pytest.raises(ApplicationError) as caught:
        webhook.clean_config({"url": "http://93.184.216.34/hook", "secret": secret})
    assert caught.value.field == "config.secret"


def test_clean_config_refuses_unknown_keys_and_non_objects() -> None:
    with pytest.raises(ApplicationError) as caught:
        webhook.clean_config({"url": "http://93.184.216.34/", "secret": SECRET, "scret": "x"})
    assert caught.value.field == "config.scret"
    with pytest.raises(ApplicationError) as caught:
        webhook.clean_config(["http://93.184.216.34/"])
    assert caught.value.field == "config"


def test_the_api_never_sees_the_secret() -> None:
    stored = {"url": "https://hooks.example.com/x", "secret": SECRET}
    shown = transport_for("webhook").public_config(stored)
    assert shown == {"url": "https://hooks.example.com/x", "secret": "********"}
    kept = transport_for("webhook").with_secrets_kept(shown, stored)
    assert kept == stored
    changed = transport_for("webhook").with_secrets_kept({**shown, "secret": "n" * 20}, stored)
    assert changed["secret"] == "n" * 20


def test_a_slack_urls_key_is_a_secret_too() -> None:
    stored = {"url": "https://hooks.slack.com/services/T01/B02/abcdefSECRET"}
    shown = transport_for("slack").public_config(stored)
    assert shown == {"url": "https://hooks.slack.com/services/T01/B02/********"}
    assert transport_for("slack").with_secrets_kept(shown, stored) == stored
    other = {"url": "https://hooks.slack.com/services/T01/B02/another"}
    assert transport_for("slack").with_secrets_kept(other, stored) == other
    assert transport_for("email").public_config({"addresses": ["a@b.c"]}) == {
        "addresses": ["a@b.c"]
    }


def test_the_registry_knows_every_kind() -> None:
    assert set(TRANSPORTS) == set(DestinationKind.values)
    assert {"pagerduty", "teams", "discord"} <= set(TRANSPORTS)
    assert transport_for("webhook") is TRANSPORTS["webhook"]
    with pytest.raises(ApplicationError) as caught:
        transport_for("pager")
    assert caught.value.field == "kind"
