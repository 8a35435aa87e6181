"""PagerDuty Events API v2 against a real HTTP receiver: events, dedup keys, answers, config."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from alerts.models import Destination
from alerts.transports import pagerduty, transport_for
from alerts.transports.base import Message, TransportError
from alerts.transports.pagerduty import PagerDutyTransport
from kernel.errors import ApplicationError
from tests.alerts.messages import alert_info, fired, missed_run_alert, ping_message, run_info
from tests.alerts.receiver import Receiver, Reply
from tests.alerts.worker_e2e import deliver_a_failed_run
from tests.conftest import World
from tests.support import free_port

KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12"  # 32 letters and digits
SEVERITIES = {"critical", "error", "warning", "info"}
LINKS = {
    "acknowledge": "http://labbook.example/alerts/11/acknowledge?sig=abc",
    "silence_1h": "http://labbook.example/alerts/11/silence?hours=1&sig=def",
    "silence_1d": "http://labbook.example/alerts/11/silence?hours=24&sig=ghi",
    "run": "http://labbook.example/runs/7",
}
ACCEPTED = Reply(202, '{"status":"success","message":"Event processed"}')
pd = PagerDutyTransport()


def config(receiver: Receiver) -> dict[str, str]:
    return {"routing_key": KEY, "url": receiver.url("/v2/enqueue")}


def events(receiver: Receiver, message: Any = None) -> list[dict[str, Any]]:
    pd.send(message or fired(), config(receiver))
    return [json.loads(request.body) for request in receiver.requests]


def fails(receiver: Receiver, *replies: Reply, message: Any = None) -> TransportError:
    receiver.script(*replies)
    with pytest.raises(TransportError) as caught:
        pd.send(message or fired(), config(receiver))
    return caught.value


def resolved(alert_id: int = 11) -> Message:
    alert = alert_info(alert_id, state="resolved", resolved_at="2025-06-01T04:00:00+00:00")
    return dataclasses.replace(fired(alert), event="alert.resolved")


# --- the events -------------------------------------------------------------------------


def test_a_fired_alert_is_one_trigger_event_of_the_documented_shape(
    receiver: Receiver, allow_private: Any
) -> None:
    receiver.script(ACCEPTED)
    delivery = pd.send(fired(alert_info(links=LINKS)), config(receiver))
    assert delivery.status_code == 202
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/v2/enqueue")
    assert request.headers["content-type"] == "application/json"
    event = json.loads(request.body)
    assert event["routing_key"] == KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "labbook-alert-11"
    payload = event["payload"]
    for name in ("summary", "source", "severity", "timestamp", "component", "group", "class"):
        assert isinstance(payload[name], str) and payload[name], name
    assert payload["summary"] == "[acme/mnist] runs that fail: resnet-3 failed"
    assert (payload["source"], payload["component"]) == ("acme/mnist", "resnet-3")
    assert (payload["group"], payload["class"]) == ("runs that fail", "run_failed")
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "2025-06-01T03:00:00+00:00"
    details = payload["custom_details"]
    assert details["values"] == {"status": "failed", "exit_code": 1}
    assert details["metrics"] == {"val/loss": 0.4213, "epoch": 3}
    assert details["error"] == "RuntimeError: CUDA out of memory"
    assert details["traceback_tail"].endswith("CUDA out of memory")
    assert details["run"]["url"] == "http://labbook.example/runs/7"
    assert (event["client"], event["client_url"]) == ("Labbook", "http://labbook.example/alerts/11")
    assert all(set(link) == {"href", "text"} for link in event["links"])


def test_the_links_are_the_run_and_the_one_click_links(
    receiver: Receiver, allow_private: Any
) -> None:
    [event] = events(receiver, fired(alert_info(links=LINKS)))
    hrefs = [link["href"] for link in event["links"]]
    assert hrefs == [
        "http://labbook.example/runs/7",
        LINKS["acknowledge"],
        LINKS["silence_1h"],
        LINKS["silence_1d"],
    ]


def test_without_one_click_links_only_the_run_is_linked(
    receiver: Receiver, allow_private: Any
) -> None:
    [event] = events(receiver)
    assert event["links"] == [{"href": "http://labbook.example/runs/7", "text": "Run resnet-3"}]


def test_a_run_that_did_not_come_pages_about_the_project(
    receiver: Receiver, allow_private: Any
) -> None:
    alert = missed_run_alert()
    [event] = events(receiver, fired(alert))
    payload = event["payload"]
    assert payload["source"] == "acme/mnist"
    assert payload["summary"] == (
        "[acme/mnist] nightly: No run of nightly started by 2026-12-06 02:00 UTC"
    )
    assert "component" not in payload
    assert (payload["group"], payload["class"]) == ("nightly", "run_expected")
    assert payload["severity"] in SEVERITIES
    details = payload["custom_details"]
    assert details["values"] == alert.values
    assert details["project"] == "acme/mnist"
    assert "run" not in details and "metrics" not in details
    assert [link["href"] for link in event["links"]] == [
        alert.links["alert"],
        alert.links["acknowledge"],
        alert.links["silence_1h"],
        alert.links["silence_1d"],
    ]
    assert event["client_url"] == alert.url


def test_trigger_repeat_and_resolve_of_one_alert_share_the_dedup_key(
    receiver: Receiver, allow_private: Any
) -> None:
    fired_message = fired()
    repeat = dataclasses.replace(fired_message, notification_id=102, event="alert.repeat")
    sent = [events(receiver, fired_message)[-1]]
    sent.append(events(receiver, repeat)[-1])
    sent.append(events(receiver, resolved())[-1])
    assert [event["event_action"] for event in sent] == ["trigger", "trigger", "resolve"]
    assert {event["dedup_key"] for event in sent} == {"labbook-alert-11"}
    assert sent[2] == {
        "routing_key": KEY,
        "event_action": "resolve",
        "dedup_key": "labbook-alert-11",
    }


@pytest.mark.parametrize(
    ("trigger", "values", "severity"),
    [
        ("run_failed", {}, "critical"),
        ("metric_threshold", {"value": 11.0}, "error"),
        ("run_stalled", {}, "error"),
        ("run_finished", {}, "info"),
        ("sdk_alert", {"level": "info"}, "info"),
        ("sdk_alert", {"level": "warn"}, "warning"),
        ("sdk_alert", {"level": "error"}, "error"),
    ],
)
def test_the_severity_follows_the_trigger(
    trigger: str, values: dict[str, Any], severity: str, receiver: Receiver, allow_private: Any
) -> None:
    [event] = events(receiver, fired(alert_info(trigger=trigger, values=values)))
    assert event["payload"]["severity"] == severity
    assert severity in SEVERITIES


def test_a_group_of_forty_sends_forty_events_within_the_limits(
    receiver: Receiver, allow_private: Any
) -> None:
    alerts = [
        alert_info(n, run=run_info(n, name=f"sweep-{n}"), summary="x" * 5000) for n in range(40)
    ]
    sent = events(receiver, fired(*alerts))
    assert len(sent) == 40
    assert [event["dedup_key"] for event in sent] == [f"labbook-alert-{n}" for n in range(40)]
    assert all(len(event["payload"]["summary"]) <= pagerduty.SUMMARY_CHARS for event in sent)
    assert all(event["payload"]["component"] == f"sweep-{n}" for n, event in enumerate(sent))


def test_a_failure_midway_is_retried_whole_with_the_same_keys(
    receiver: Receiver, allow_private: Any
) -> None:
    """PagerDuty deduplicates by key, so sending the first events again opens nothing new."""
    message = fired(alert_info(1), alert_info(2), alert_info(3))
    error = fails(receiver, ACCEPTED, Reply(503, "busy"), message=message)
    assert error.retryable and error.status_code == 503
    first = [json.loads(request.body) for request in receiver.requests]
    assert len(first) == 2  # stopped at the failure
    pd.send(message, config(receiver))
    again = [json.loads(request.body) for request in receiver.requests[2:]]
    assert [event["dedup_key"] for event in again] == [f"labbook-alert-{n}" for n in (1, 2, 3)]
    assert again[:2] == first


def test_a_test_message_triggers_then_resolves_its_own_key(
    receiver: Receiver, allow_private: Any
) -> None:
    trigger, resolve = events(receiver, ping_message(notification_id=77))
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "labbook-test-77"
    assert trigger["payload"]["severity"] == "info"
    assert "test notification" in trigger["payload"]["summary"]


def test_nan_values_arrive_as_null(receiver: Receiver, allow_private: Any) -> None:
    [event] = events(receiver, fired(alert_info(values={"value": math.nan})))
    assert event["payload"]["custom_details"]["values"] == {"value": None}


# --- PagerDuty's answers ---------------------------------------------------------------


def test_202_is_a_delivery(receiver: Receiver, allow_private: Any) -> None:
    receiver.script(ACCEPTED)
    assert pd.send(fired(), config(receiver)).status_code == 202


def test_400_is_not_retried(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(400, '{"status":"invalid event","errors":["bad key"]}'))
    assert (error.retryable, error.broken, error.status_code) == (False, False, 400)
    assert "invalid event" in error.message
    assert len(receiver.requests) == 1


def test_429_is_retried_after_retry_after(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(429, "throttled", {"Retry-After": "12"}))
    assert (error.retryable, error.retry_after, error.status_code) == (True, 12.0, 429)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried(status: int, receiver: Receiver, allow_private: Any) -> None:
    assert fails(receiver, Reply(status, "oops")).retryable


def test_unreachable_is_retryable(allow_private: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}/v2/enqueue"
    with pytest.raises(TransportError) as caught:
        pd.send(fired(), {"routing_key": KEY, "url": url})
    assert caught.value.retryable


def test_a_slow_pagerduty_cannot_hold_a_group_past_one_exchanges_bound(
    receiver: Receiver, allow_private: Any, quick_timeout: float
) -> None:
    """Each answer comes in time, but ten of them take longer than 3 x 0.5 s in all."""
    alerts = [alert_info(n) for n in range(10)]
    started = time.monotonic()
    error = fails(receiver, *[Reply(202, delay=0.4) for _ in alerts], message=fired(*alerts))
    assert error.retryable
    assert time.monotonic() - started < 2.5
    assert len(receiver.requests) < 10


# --- SSRF and config ------------------------------------------------------------------


def test_the_events_url_defaults_to_pagerdutys() -> None:
    assert pd.clean_config({"routing_key": KEY}) == {
        "routing_key": KEY,
        "url": pagerduty.DEFAULT_URL,
    }
    assert pd.clean_config({"routing_key": f" {KEY} ", "url": ""})["url"] == pagerduty.DEFAULT_URL
    eu = "https://events.eu.pagerduty.com/v2/enqueue"
    assert pd.clean_config({"routing_key": KEY, "url": eu}) == {"routing_key": KEY, "url": eu}


@pytest.mark.parametrize("key", [None, "", "short", KEY + "3", KEY[:-1] + "!", 12345])
def test_the_routing_key_is_32_letters_and_digits(key: Any) -> None:
    with pytest.raises(ApplicationError) as caught:
        pd.clean_config({"routing_key": key})
    assert caught.value.field == "config.routing_key"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/v2/enqueue", "http://10.0.0.8/", "http://169.254.169.254/", "ftp://x.y/"],
)
def test_a_private_events_url_is_refused_at_save_time(url: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        pd.clean_config({"routing_key": KEY, "url": url})
    assert caught.value.field == "config.url"


def test_the_receiver_on_loopback_gets_nothing_unless_allowed(receiver: Receiver) -> None:
    with pytest.raises(TransportError, match=r"127\.0\.0\.1 is a loopback address"):
        pd.send(fired(), config(receiver))
    assert receiver.requests == []


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ApplicationError) as caught:
        pd.clean_config({"routing_key": KEY, "service": "x"})
    assert caught.value.field == "config.service"


def test_the_routing_key_is_write_only() -> None:
    stored = {"routing_key": KEY, "url": pagerduty.DEFAULT_URL}
    shown = transport_for("pagerduty").public_config(stored)
    assert shown == {"routing_key": "********", "url": pagerduty.DEFAULT_URL}
    assert pd.with_secrets_kept(shown, stored) == stored
    assert pd.with_secrets_kept({"url": pagerduty.DEFAULT_URL}, stored) == stored
    other = {"routing_key": "B" * 32, "url": pagerduty.DEFAULT_URL}
    assert pd.with_secrets_kept(other, stored) == other


def test_the_api_masks_the_routing_key_and_keeps_it(world: World) -> None:
    client = world.owner.client()
    body = {"team": "acme", "kind": "pagerduty", "name": "pager", "config": {"routing_key": KEY}}
    created = client.post("/api/v1/destinations", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["config"] == {"routing_key": "********", "url": pagerduty.DEFAULT_URL}
    assert KEY not in created.content.decode()
    assert KEY not in client.get("/api/v1/destinations").content.decode()
    shown = created.json()["config"]
    patched = client.patch(
        f"/api/v1/destinations/{created.json()['id']}", {"config": shown}, format="json"
    )
    assert patched.status_code == 200
    assert Destination.objects.get().config == {"routing_key": KEY, "url": pagerduty.DEFAULT_URL}


def test_the_api_names_a_bad_routing_key(world: World) -> None:
    body = {"team": "acme", "kind": "pagerduty", "name": "pager", "config": {"routing_key": "x"}}
    response = world.owner.client().post("/api/v1/destinations", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "config.routing_key"


# --- the pages ------------------------------------------------------------------------

DESTINATIONS = "/settings/teams/acme/destinations/"


def test_the_form_saves_a_pagerduty_destination_and_keeps_its_key(client: Any, world: World):
    client.force_login(world.owner.user)
    data = {"kind": "pagerduty", "name": "pager", "routing_key": KEY, "events_url": ""}
    assert client.post(DESTINATIONS, data).status_code == 302
    destination = Destination.objects.get()
    assert destination.config == {"routing_key": KEY, "url": pagerduty.DEFAULT_URL}
    page = client.get(DESTINATIONS).content.decode()
    assert "events.pagerduty.com" in page and KEY not in page
    edit = f"{DESTINATIONS}{destination.pk}/"
    assert KEY not in client.get(edit).content.decode()
    eu = "https://events.eu.pagerduty.com/v2/enqueue"
    response = client.post(edit, {"name": "pager", "routing_key": "", "events_url": eu})
    assert response.status_code == 302
    destination.refresh_from_db()
    assert destination.config == {"routing_key": KEY, "url": eu}


def test_the_form_puts_a_bad_key_next_to_its_field(client: Any, world: World):
    client.force_login(world.owner.user)
    data = {"kind": "pagerduty", "name": "pager", "routing_key": "nope", "events_url": ""}
    response = client.post(DESTINATIONS, data)
    assert response.status_code == 400
    page = response.content.decode()
    error = page.split('id="destination-routing-key-error"')[1].split("</p>")[0]
    assert "32 letters and digits" in error
    assert Destination.objects.count() == 0


# --- end to end ------------------------------------------------------------------------


@pytest.mark.subprocess
def test_a_failed_run_triggers_a_pagerduty_event_through_the_worker(tmp_path: Path) -> None:
    delivered = deliver_a_failed_run(
        tmp_path,
        "pagerduty",
        lambda receiver: {"routing_key": KEY, "url": receiver.url("/v2/enqueue")},
        reply=ACCEPTED,
    )
    [request] = delivered.requests
    event = json.loads(request.body)
    [alert] = delivered.alerts
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == f"labbook-alert-{alert['id']}"
    assert event["payload"]["custom_details"]["run"]["id"] == delivered.run_id
    [logged] = delivered.notifications
    assert (logged["status"], logged["response_code"]) == ("sent", 202)
