"""Microsoft Teams workflows against a real HTTP receiver: the Adaptive Card, answers, config."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from alerts.models import Destination
from alerts.transports import teams as teams_module
from alerts.transports import transport_for
from alerts.transports.base import TransportError
from alerts.transports.teams import TeamsTransport
from kernel.errors import ApplicationError
from tests.alerts.messages import (
    TRACEBACK,
    alert_info,
    fired,
    missed_run_alert,
    ping_message,
    run_info,
)
from tests.alerts.receiver import Receiver, Reply
from tests.alerts.worker_e2e import deliver_a_failed_run
from tests.conftest import World

WORKFLOW = (
    "https://prod-12.westus.logic.azure.com:443/workflows/0a1b2c/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=S1GNATURE"
)
CONNECTOR = "https://acme.webhook.office.com/webhookb2/1234@5678/IncomingWebhook/abcdef/9999"
LINKS = {
    "acknowledge": "http://labbook.example/alerts/11/acknowledge?sig=abc",
    "silence_1h": "http://labbook.example/alerts/11/silence?hours=1&sig=def",
    "silence_1d": "http://labbook.example/alerts/11/silence?hours=24&sig=ghi",
    "run": "http://labbook.example/runs/7",
}
teams = TeamsTransport()


def sent(receiver: Receiver, message: Any = None) -> dict[str, Any]:
    teams.send(message or fired(), {"url": receiver.url("/workflows/x/invoke?sig=abc")})
    return json.loads(receiver.requests[-1].body)


def card_of(payload: dict[str, Any]) -> dict[str, Any]:
    [attachment] = payload["attachments"]
    return attachment["content"]


def containers(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in card["body"] if item["type"] == "Container"]


def items_of(container: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item for item in container["items"] if item["type"] == kind]


def fails(receiver: Receiver, *replies: Reply) -> TransportError:
    receiver.script(*replies)
    with pytest.raises(TransportError) as caught:
        teams.send(fired(), {"url": receiver.url()})
    return caught.value


# --- the card ---------------------------------------------------------------------------


def test_it_posts_a_message_with_one_adaptive_card(receiver: Receiver, allow_private: Any) -> None:
    message = fired()
    payload = sent(receiver, message)
    request = receiver.requests[0]
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/workflows/x/invoke?sig=abc"
    assert payload["type"] == "message"
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert isinstance(card["body"], list)
    assert card["body"][0]["type"] == "TextBlock"
    assert card["body"][0]["text"] == message.title
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "View in Labbook", "url": message.url}
    ]


def test_each_alert_has_its_summary_facts_and_traceback(
    receiver: Receiver, allow_private: Any
) -> None:
    [container] = containers(card_of(sent(receiver)))
    title = items_of(container, "TextBlock")[0]
    assert title["text"] == "FIRING · runs that fail: resnet-3 failed"
    assert title["color"] == "Attention"
    [facts] = items_of(container, "FactSet")
    shown = {fact["title"]: fact["value"] for fact in facts["facts"]}
    assert shown["Run"] == "resnet-3"
    assert shown["Project"] == "acme/mnist"
    assert shown["Status"] == "failed"
    assert (shown["val/loss"], shown["epoch"]) == ("0.4213", "3")
    assert all(isinstance(value, str) for value in shown.values())
    [traceback] = [block for block in items_of(container, "TextBlock") if "fontType" in block]
    assert traceback["fontType"] == "Monospace"
    assert traceback["text"] == TRACEBACK


def test_a_finished_run_has_no_traceback(receiver: Receiver, allow_private: Any) -> None:
    run = run_info(status="finished")
    message = fired(alert_info(run=run, trigger="run_finished", summary="resnet-3 finished"))
    [container] = containers(card_of(sent(receiver, message)))
    assert not [block for block in items_of(container, "TextBlock") if "fontType" in block]


def test_a_resolved_alert_is_green(receiver: Receiver, allow_private: Any) -> None:
    alert = alert_info(state="resolved", resolved_at="2025-06-01T04:00:00+00:00")
    [container] = containers(card_of(sent(receiver, fired(alert))))
    assert items_of(container, "TextBlock")[0]["color"] == "Good"


def test_the_buttons_open_the_run_acknowledge_and_silence(
    receiver: Receiver, allow_private: Any
) -> None:
    [container] = containers(card_of(sent(receiver, fired(alert_info(links=LINKS)))))
    [actions] = items_of(container, "ActionSet")
    assert [(a["type"], a["title"], a["url"]) for a in actions["actions"]] == [
        ("Action.OpenUrl", "Open run", "http://labbook.example/runs/7"),
        ("Action.OpenUrl", "Acknowledge", LINKS["acknowledge"]),
        ("Action.OpenUrl", "Silence 1 h", LINKS["silence_1h"]),
    ]


def test_without_one_click_links_only_the_run_opens(receiver: Receiver, allow_private: Any) -> None:
    [container] = containers(card_of(sent(receiver)))
    [actions] = items_of(container, "ActionSet")
    assert [action["title"] for action in actions["actions"]] == ["Open run"]


def test_a_run_that_did_not_come_shows_its_schedule_and_opens_the_alert(
    receiver: Receiver, allow_private: Any
) -> None:
    alert = missed_run_alert()
    card = card_of(sent(receiver, fired(alert)))
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    [container] = containers(card)
    title = items_of(container, "TextBlock")[0]
    assert title["text"] == "FIRING · nightly: No run of nightly started by 2026-12-06 02:00 UTC"
    [facts] = items_of(container, "FactSet")
    assert [(fact["title"], fact["value"]) for fact in facts["facts"]] == [
        ("Project", "acme/mnist"),
        ("Schedule", "0 2 * * * (UTC)"),
        ("Expected by", "2026-12-06 02:30 UTC"),
    ]
    assert not [block for block in items_of(container, "TextBlock") if "fontType" in block]
    [actions] = items_of(container, "ActionSet")
    assert [(a["type"], a["title"], a["url"]) for a in actions["actions"]] == [
        ("Action.OpenUrl", "Open alert", alert.links["alert"]),
        ("Action.OpenUrl", "Acknowledge", alert.links["acknowledge"]),
        ("Action.OpenUrl", "Silence 1 h", alert.links["silence_1h"]),
    ]


def test_forty_dead_runs_fit_in_one_message(receiver: Receiver, allow_private: Any) -> None:
    long_traceback = "\n".join(f"  line {n}: " + "x" * 80 for n in range(40))
    runs = [
        replace(run_info(n, name=f"sweep-{n}"), traceback_tail=long_traceback, error="E" * 5000)
        for n in range(40)
    ]
    alerts = [alert_info(n, run=run, links=LINKS) for n, run in enumerate(runs)]
    payload = sent(receiver, fired(*alerts))
    assert len(receiver.requests) == 1
    assert len(receiver.requests[0].body) <= teams_module.MAX_BODY_BYTES
    card = card_of(payload)
    shown = containers(card)
    assert 1 <= len(shown) <= teams_module.MAX_ALERTS
    assert f"…and {40 - len(shown)} more alerts not shown here." in card["body"][-1]["text"]


def test_a_test_notification_says_so(receiver: Receiver, allow_private: Any) -> None:
    card = card_of(sent(receiver, ping_message()))
    assert "test notification" in card["body"][1]["text"]
    assert containers(card) == []


# --- Teams' answers ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 202])
def test_a_2xx_is_a_delivery(status: int, receiver: Receiver, allow_private: Any) -> None:
    receiver.script(Reply(status, b""))
    assert teams.send(fired(), {"url": receiver.url()}).status_code == status


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_workflow_marks_the_destination_broken(
    status: int, receiver: Receiver, allow_private: Any
) -> None:
    error = fails(receiver, Reply(status, '{"error":{"code":"WorkflowNotFound"}}'))
    assert (error.broken, error.retryable, error.status_code) == (True, False, status)


def test_a_bad_request_is_not_retried_nor_broken(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(400, "InvalidRequestContent"))
    assert (error.retryable, error.broken) == (False, False)


def test_throttling_is_retried_after_retry_after(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(429, "slow down", {"Retry-After": "5"}))
    assert (error.retryable, error.retry_after) == (True, 5.0)


def test_an_outage_is_retried(receiver: Receiver, allow_private: Any) -> None:
    assert fails(receiver, Reply(502, "bad gateway")).retryable


# --- SSRF and config ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/x", "http://192.168.0.10/x", "http://[::1]/x", "ftp://a.b/"]
)
def test_private_urls_are_refused_at_save_time(url: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        teams.clean_config({"url": url})
    assert caught.value.field == "config.url"


def test_the_receiver_on_loopback_gets_nothing_unless_allowed(receiver: Receiver) -> None:
    with pytest.raises(TransportError, match=r"127\.0\.0\.1 is a loopback address"):
        teams.send(fired(), {"url": receiver.url()})
    assert receiver.requests == []


def test_a_workflow_url_shows_without_its_signature() -> None:
    stored = {"url": WORKFLOW}
    shown = transport_for("teams").public_config(stored)
    assert shown["url"].endswith("/paths/invoke?********")
    assert "S1GNATURE" not in shown["url"]
    assert teams.with_secrets_kept(shown, stored) == stored
    assert teams.with_secrets_kept({}, stored) == stored
    assert teams.with_secrets_kept({"url": CONNECTOR}, stored) == {"url": CONNECTOR}


def test_a_connector_url_shows_without_its_key() -> None:
    shown = teams.public_config({"url": CONNECTOR})
    assert shown == {"url": CONNECTOR.rsplit("/", 1)[0] + "/********"}


def test_the_api_masks_the_url(world: World) -> None:
    client = world.owner.client()
    body = {"team": "acme", "kind": "teams", "name": "ml channel", "config": {"url": WORKFLOW}}
    created = client.post("/api/v1/destinations", body, format="json")
    assert created.status_code == 201, created.content
    assert "S1GNATURE" not in created.content.decode()
    assert "S1GNATURE" not in client.get("/api/v1/destinations").content.decode()
    patched = client.patch(
        f"/api/v1/destinations/{created.json()['id']}",
        {"name": "renamed", "config": created.json()["config"]},
        format="json",
    )
    assert patched.status_code == 200
    assert Destination.objects.get().config == {"url": WORKFLOW}


# --- end to end ------------------------------------------------------------------------


@pytest.mark.subprocess
def test_a_failed_run_reaches_teams_through_the_worker(tmp_path: Path) -> None:
    delivered = deliver_a_failed_run(
        tmp_path,
        "teams",
        lambda receiver: {"url": receiver.url("/workflows/x/invoke?sig=abc")},
        reply=Reply(202, b""),
    )
    [request] = delivered.requests
    card = card_of(json.loads(request.body))
    [container] = containers(card)
    facts = {fact["title"]: fact["value"] for fact in items_of(container, "FactSet")[0]["facts"]}
    assert facts["Status"] == "failed"
    [action] = [
        a for a in items_of(container, "ActionSet")[0]["actions"] if a["title"] == "Open run"
    ]
    assert action["url"].endswith(f"/runs/{delivered.run_id}")
    [logged] = delivered.notifications
    assert (logged["status"], logged["response_code"]) == ("sent", 202)
