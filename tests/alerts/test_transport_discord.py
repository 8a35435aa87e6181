"""Discord webhooks against a real HTTP receiver: embeds within Discord's limits, no pings."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from alerts import services
from alerts.models import Destination
from alerts.transports import discord as d
from alerts.transports import transport_for
from alerts.transports.base import TransportError
from alerts.transports.discord import DiscordTransport
from kernel.errors import ApplicationError
from tests.alerts.messages import alert_info, fired, missed_run_alert, ping_message, run_info
from tests.alerts.receiver import Receiver, Reply
from tests.alerts.worker_e2e import deliver_a_failed_run
from tests.conftest import World
from tracking import selectors

HOOK = "https://discord.com/api/webhooks/123456789012345678/T0KEN-t0ken_T0KEN"
LINKS = {
    "acknowledge": "http://labbook.example/alerts/11/acknowledge?sig=" + "a" * 60,
    "silence_1h": "http://labbook.example/alerts/11/silence?hours=1&sig=" + "b" * 60,
    "silence_1d": "http://labbook.example/alerts/11/silence?hours=24&sig=" + "c" * 60,
    "run": "http://labbook.example/runs/7",
}
discord = DiscordTransport()


def sent(receiver: Receiver, message: Any = None) -> dict[str, Any]:
    discord.send(message or fired(), {"url": receiver.url("/api/webhooks/1/tok")})
    return json.loads(receiver.requests[-1].body)


def fails(receiver: Receiver, *replies: Reply) -> TransportError:
    receiver.script(*replies)
    with pytest.raises(TransportError) as caught:
        discord.send(fired(), {"url": receiver.url()})
    return caught.value


def assert_within_discords_limits(payload: dict[str, Any]) -> None:
    """Discord's documented limits for a webhook message."""
    assert isinstance(payload["content"], str) and len(payload["content"]) <= 2000
    embeds = payload["embeds"]
    assert 1 <= len(embeds) <= 10
    total = 0
    for embed in embeds:
        assert 0 < len(embed["title"]) <= 256
        assert len(embed.get("description", "")) <= 4096
        assert len(embed.get("fields", [])) <= 25
        for field in embed.get("fields", []):
            assert 0 < len(field["name"]) <= 256
            assert 0 < len(field["value"]) <= 1024
        assert isinstance(embed["color"], int)
        total += len(embed["title"]) + len(embed.get("description", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    assert total <= 6000


# --- the message ------------------------------------------------------------------------


def test_it_posts_content_embeds_and_no_mentions(receiver: Receiver, allow_private: Any) -> None:
    message = fired()
    payload = sent(receiver, message)
    request = receiver.requests[0]
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/api/webhooks/1/tok"
    assert payload["content"] == message.title
    assert payload["allowed_mentions"] == {"parse": []}
    assert_within_discords_limits(payload)


def test_an_embed_shows_the_alert_and_links_to_the_run(
    receiver: Receiver, allow_private: Any
) -> None:
    [embed] = sent(receiver, fired(alert_info(links=LINKS)))["embeds"]
    assert embed["title"] == "FIRING runs that fail: resnet-3 failed"
    assert embed["url"] == "http://labbook.example/runs/7"
    assert embed["color"] == d.RED
    assert embed["timestamp"] == "2025-06-01T03:00:00+00:00"
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert (fields["Run"], fields["Project"], fields["Status"]) == (
        "resnet-3",
        "acme/mnist",
        "failed",
    )
    assert fields["val/loss"] == "0.4213"
    description = embed["description"]
    assert f"[Acknowledge]({LINKS['acknowledge']})" in description
    assert f"[Silence 1 h]({LINKS['silence_1h']})" in description
    assert f"[Silence 1 day]({LINKS['silence_1d']})" in description
    assert "```\nTraceback (most recent call last):" in description
    assert description.endswith("RuntimeError: CUDA out of memory\n```")


def test_a_run_that_did_not_come_links_to_the_alert_and_shows_its_schedule(
    receiver: Receiver, allow_private: Any
) -> None:
    alert = missed_run_alert()
    payload = sent(receiver, fired(alert))
    assert_within_discords_limits(payload)
    [embed] = payload["embeds"]
    assert embed["title"] == "FIRING nightly: No run of nightly started by 2026-12-06 02:00 UTC"
    assert embed["url"] == alert.links["alert"]
    assert embed["color"] == d.RED
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields == {
        "Project": "acme/mnist",
        "Schedule": "0 2 \\* \\* \\* \\(UTC\\)",
        "Expected by": "2026-12-06 02:30 UTC",
    }
    assert f"[Acknowledge]({alert.links['acknowledge']})" in embed["description"]
    assert d.FENCE not in embed["description"]


def test_a_resolved_alert_is_green(receiver: Receiver, allow_private: Any) -> None:
    alert = alert_info(state="resolved", resolved_at="2025-06-01T04:00:00+00:00")
    [embed] = sent(receiver, fired(alert))["embeds"]
    assert embed["color"] == d.GREEN
    assert embed["title"].startswith("RESOLVED")
    assert embed["timestamp"] == "2025-06-01T04:00:00+00:00"


def test_a_traceback_cannot_close_its_code_block(receiver: Receiver, allow_private: Any) -> None:
    run = replace(run_info(), traceback_tail="print('```')\n````` and ```` too\nValueError: ```")
    [embed] = sent(receiver, fired(alert_info(run=run)))["embeds"]
    description = embed["description"]
    assert description.startswith("```\n") and description.endswith("\n```")
    assert "``" not in description[4:-4]


def test_run_names_cannot_ping_or_format(receiver: Receiver, allow_private: Any) -> None:
    run = run_info(name="@everyone [free](http://evil.example) **now**")
    payload = sent(receiver, fired(alert_info(run=run, summary=f"{run.name} failed")))
    assert payload["allowed_mentions"] == {"parse": []}
    [embed] = payload["embeds"]
    assert r"\[free\]\(http://evil.example\) \*\*now\*\*" in embed["title"]
    run_field = next(field for field in embed["fields"] if field["name"] == "Run")
    assert run_field["value"] == r"@everyone \[free\]\(http://evil.example\) \*\*now\*\*"


def test_forty_alerts_fit_discords_limits(receiver: Receiver, allow_private: Any) -> None:
    long_traceback = "\n".join(f"  frame {n}: " + "y" * 90 for n in range(60))
    runs = [
        replace(run_info(n, name=f"sweep-{n}"), traceback_tail=long_traceback, error="E" * 3000)
        for n in range(40)
    ]
    alerts = [alert_info(n, run=run, links=LINKS, rule="r" * 400) for n, run in enumerate(runs)]
    payload = sent(receiver, fired(*alerts))
    assert len(receiver.requests) == 1
    assert_within_discords_limits(payload)
    embeds = payload["embeds"]
    shown = len(embeds) - 1
    assert embeds[-1]["title"] == f"…and {40 - shown} more alerts not shown here"
    assert all(f"[Acknowledge]({LINKS['acknowledge']})" in e["description"] for e in embeds[:-1])


def test_forty_sweep_runs_show_nine_and_count_the_rest(
    receiver: Receiver, allow_private: Any
) -> None:
    alerts = [alert_info(n, run=run_info(n, name=f"sweep-{n}"), links=LINKS) for n in range(40)]
    payload = sent(receiver, fired(*alerts))
    assert_within_discords_limits(payload)
    embeds = payload["embeds"]
    assert len(embeds) == d.MAX_EMBEDS
    assert [e["url"] for e in embeds[:-1]] == [f"http://labbook.example/runs/{n}" for n in range(9)]
    assert embeds[-1]["title"] == "…and 31 more alerts not shown here"
    assert embeds[-1]["url"] == "http://labbook.example/acme/mnist/alerts"


def test_one_alert_keeps_a_long_traceback_tail(receiver: Receiver, allow_private: Any) -> None:
    tail = "\n".join(f"  frame {n}" for n in range(400)) + "\nKeyError: 'lr'"
    [embed] = sent(receiver, fired(alert_info(run=replace(run_info(), traceback_tail=tail))))[
        "embeds"
    ]
    assert len(embed["description"]) > 1000
    assert embed["description"].endswith("KeyError: 'lr'\n```")


def test_a_test_notification_says_so(receiver: Receiver, allow_private: Any) -> None:
    payload = sent(receiver, ping_message())
    [embed] = payload["embeds"]
    assert "test notification" in embed["description"]
    assert payload["allowed_mentions"] == {"parse": []}


# --- Discord's answers ------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204])
def test_204_or_200_is_a_delivery(status: int, receiver: Receiver, allow_private: Any) -> None:
    receiver.script(Reply(status, b""))
    assert discord.send(fired(), {"url": receiver.url()}).status_code == status


def test_a_deleted_webhook_marks_the_destination_broken(
    receiver: Receiver, allow_private: Any
) -> None:
    error = fails(receiver, Reply(404, '{"message": "Unknown Webhook", "code": 10015}'))
    assert (error.broken, error.retryable, error.status_code) == (True, False, 404)
    assert "Unknown Webhook" in error.message


def test_a_wrong_token_marks_the_destination_broken(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(401, '{"message": "Invalid Webhook Token", "code": 50027}'))
    assert (error.broken, error.retryable) == (True, False)


def test_a_refused_payload_is_not_retried_nor_broken(
    receiver: Receiver, allow_private: Any
) -> None:
    error = fails(receiver, Reply(400, '{"embeds": ["0"]}'))
    assert (error.retryable, error.broken) == (False, False)


def test_rate_limiting_is_retried_after_retry_after(receiver: Receiver, allow_private: Any) -> None:
    error = fails(receiver, Reply(429, '{"retry_after": 2.5}', {"Retry-After": "3"}))
    assert (error.retryable, error.retry_after, error.broken) == (True, 3.0, False)


def test_an_outage_is_retried(receiver: Receiver, allow_private: Any) -> None:
    assert fails(receiver, Reply(503, "down")).retryable


def test_a_deleted_webhook_shows_broken_on_the_destination(
    world: World, receiver: Receiver, allow_private: Any
) -> None:
    team, role = selectors.team_get_for_user(world.owner.user, "acme")
    destination = services.destination_create(
        user=world.owner.user,
        team=team,
        role=role,
        kind="discord",
        name="ml",
        config={"url": receiver.url("/api/webhooks/1/tok")},
    )
    receiver.script(Reply(404, '{"message": "Unknown Webhook", "code": 10015}'))
    notification = services.destination_test(destination=destination, role=role)
    assert (notification.status, notification.response_code) == ("failed", 404)
    destination.refresh_from_db()
    assert destination.broken


# --- SSRF and config ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/x", "http://172.16.0.1/x", "http://169.254.169.254/", "ftp://a.b/"]
)
def test_private_urls_are_refused_at_save_time(url: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        discord.clean_config({"url": url})
    assert caught.value.field == "config.url"


def test_the_receiver_on_loopback_gets_nothing_unless_allowed(receiver: Receiver) -> None:
    with pytest.raises(TransportError, match=r"127\.0\.0\.1 is a loopback address"):
        discord.send(fired(), {"url": receiver.url()})
    assert receiver.requests == []


def test_the_webhook_token_is_masked() -> None:
    stored = {"url": HOOK}
    shown = transport_for("discord").public_config(stored)
    assert shown == {"url": "https://discord.com/api/webhooks/123456789012345678/********"}
    assert discord.with_secrets_kept(shown, stored) == stored
    other = {"url": "https://discord.com/api/webhooks/1/other"}
    assert discord.with_secrets_kept(other, stored) == other


def test_the_api_masks_the_token(world: World) -> None:
    client = world.owner.client()
    body = {"team": "acme", "kind": "discord", "name": "ml", "config": {"url": HOOK}}
    created = client.post("/api/v1/destinations", body, format="json")
    assert created.status_code == 201, created.content
    assert "T0KEN" not in created.content.decode()
    assert "T0KEN" not in client.get("/api/v1/destinations").content.decode()
    patched = client.patch(
        f"/api/v1/destinations/{created.json()['id']}",
        {"config": created.json()["config"], "enabled": False},
        format="json",
    )
    assert patched.status_code == 200
    assert Destination.objects.get().config == {"url": HOOK}


# --- end to end ------------------------------------------------------------------------


@pytest.mark.subprocess
def test_a_failed_run_reaches_discord_through_the_worker(tmp_path: Path) -> None:
    delivered = deliver_a_failed_run(
        tmp_path,
        "discord",
        lambda receiver: {"url": receiver.url("/api/webhooks/1/tok")},
        reply=Reply(204, b""),
    )
    [request] = delivered.requests
    payload = json.loads(request.body)
    assert payload["allowed_mentions"] == {"parse": []}
    [embed] = payload["embeds"]
    assert embed["url"].endswith(f"/runs/{delivered.run_id}")
    assert embed["color"] == d.RED
    [logged] = delivered.notifications
    assert (logged["status"], logged["response_code"]) == ("sent", 204)
