"""The alerting API: destinations, rules, alerts, notifications, silences; who may do what."""

from __future__ import annotations

import pytest
from django.utils import timezone

from alerts.models import AlertRule, Destination, Silence
from tests.conftest import World
from tracking import services as tracking_services

EMAIL = {"kind": "email", "name": "oncall", "config": {"addresses": ["oncall@example.com"]}}


def _destination(world: World, persona: str = "owner", **fields) -> dict:
    body = {"team": "acme", **EMAIL, **fields}
    response = world.persona(persona).client().post("/api/v1/destinations", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _rule(world: World, persona: str = "owner", **fields) -> dict:
    body = {"project": "acme/mnist", "name": "failures", "trigger": "run_failed", **fields}
    response = world.persona(persona).client().post("/api/v1/alert-rules", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_editors_create_destinations_viewers_read_them_outsiders_see_nothing(world):
    created = _destination(world, "editor")
    assert created["kind"] == "email" and created["team"] == "acme"
    assert world.viewer.client().get("/api/v1/destinations").json()[0]["id"] == created["id"]
    refused = world.viewer.client().post(
        "/api/v1/destinations", {"team": "acme", **EMAIL, "name": "x"}, format="json"
    )
    assert refused.status_code == 403
    assert world.outsider.client().get("/api/v1/destinations").json() == []
    assert world.outsider.client().get(f"/api/v1/destinations/{created['id']}").status_code == 404


def test_a_webhook_secret_is_write_only(world):
    secret = "s" * 32
    created = _destination(
        world,
        kind="webhook",
        name="hook",
        config={"url": "https://hooks.example.com/labbook", "secret": secret},
    )
    assert created["config"]["secret"] == "********"
    assert secret not in str(world.owner.client().get("/api/v1/destinations").json())
    assert Destination.objects.get().config["secret"] == secret
    renamed = world.owner.client().patch(
        f"/api/v1/destinations/{created['id']}",
        {"config": {"url": "https://hooks.example.com/other"}},
        format="json",
    )
    assert renamed.status_code == 200
    assert Destination.objects.get().config["secret"] == secret  # kept when left out


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "pigeon"}, "kind"),
        ({"name": ""}, "name"),
        ({"config": {"addresses": ["not an address"]}}, "config.addresses[0]"),
        (
            {"kind": "webhook", "config": {"url": "http://127.0.0.1/x", "secret": "s" * 32}},
            "config.url",
        ),
        ({"kind": "slack", "config": {"url": "ftp://hooks.slack.com/x"}}, "config.url"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_destination_names_the_field(world, body, field):
    response = world.owner.client().post(
        "/api/v1/destinations", {"team": "acme", **EMAIL, **body}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not Destination.objects.exists()


def test_rules_are_created_with_checked_params_and_team_destinations(world):
    hook = _destination(world)
    rule = _rule(
        world,
        trigger="metric_threshold",
        params={"key": "loss", "op": ">", "value": 10},
        destinations=[hook["id"]],
        repeat_interval=3600,
    )
    assert rule["params"] == {"key": "loss", "op": ">", "value": 10, "for_points": 1}
    assert rule["destinations"] == [hook["id"]] and rule["repeat_interval"] == 3600
    patched = world.editor.client().patch(
        f"/api/v1/alert-rules/{rule['id']}", {"enabled": False}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert (
        world.viewer.client()
        .patch(f"/api/v1/alert-rules/{rule['id']}", {"enabled": True}, format="json")
        .status_code
        == 403
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trigger": "sometimes"}, "trigger"),
        ({"trigger": "metric_threshold", "params": {"key": "loss", "op": "=="}}, "params.op"),
        (
            {"trigger": "metric_threshold", "params": {"key": "", "op": ">", "value": 1}},
            "params.key",
        ),
        ({"trigger": "run_stalled", "params": {"after_seconds": 5}}, "params.after_seconds"),
        (
            {"trigger": "metric_stagnant", "params": {"key": "l", "patience_steps": 0}},
            "params.patience_steps",
        ),
        ({"params": {"statuses": ["finished"]}}, "params.statuses"),
        ({"params": {"colour": 1}}, "params.colour"),
        ({"repeat_interval": 5}, "repeat_interval"),
        ({"destinations": [999999]}, "destinations"),
        ({"tags": "x"}, "tags"),
    ],
)
def test_a_bad_rule_names_the_field(world, fields, field):
    body = {"project": "acme/mnist", "name": "r", "trigger": "run_failed", **fields}
    response = world.owner.client().post("/api/v1/alert-rules", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not AlertRule.objects.exists()


def test_another_teams_destination_cannot_be_attached(world):
    theirs = (
        world.outsider.client()
        .post("/api/v1/destinations", {"team": "rival", **EMAIL}, format="json")
        .json()
    )
    body = {
        "project": "acme/mnist",
        "name": "r",
        "trigger": "run_failed",
        "destinations": [theirs["id"]],
    }
    response = world.owner.client().post("/api/v1/alert-rules", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "destinations"


@pytest.mark.django_db(transaction=True)
def test_alerts_and_their_delivery_log_are_listed_for_members_only(world):
    hook = _destination(world)
    _rule(world, destinations=[hook["id"]], group_wait=0)
    run = tracking_services.run_create(user=world.owner.user, project=world.project, name="r")
    tracking_services.run_update(run=run, data={"status": "failed"})
    (alert,) = world.viewer.client().get("/api/v1/alerts", {"project": "acme/mnist"}).json()
    assert (alert["state"], alert["run"], alert["trigger"]) == ("firing", run.pk, "run_failed")
    log = world.viewer.client().get("/api/v1/notifications", {"alert": alert["id"]}).json()
    assert [(n["event"], n["destination_name"]) for n in log] == [("fired", "oncall")]
    assert world.outsider.client().get("/api/v1/alerts").json() == []
    assert (
        world.outsider.client().get("/api/v1/notifications", {"alert": alert["id"]}).status_code
        == 404
    )
    assert world.viewer.client().get("/api/v1/alerts", {"state": "open"}).status_code == 400


def test_silences_are_created_listed_and_ended(world):
    rule = _rule(world)
    client = world.editor.client()
    created = client.post(
        "/api/v1/silences",
        {"rule": rule["id"], "until": "2099-01-01T00:00:00Z", "reason": "noisy"},
        format="json",
    )
    assert created.status_code == 201 and created.json()["active"] is True
    assert [s["id"] for s in world.viewer.client().get("/api/v1/silences").json()] == [
        created.json()["id"]
    ]
    both = client.post(
        "/api/v1/silences",
        {"rule": rule["id"], "project": "acme/mnist", "until": "2099-01-01T00:00:00Z"},
        format="json",
    )
    assert both.status_code == 400
    past = client.post(
        "/api/v1/silences",
        {"project": "acme/mnist", "until": "2001-01-01T00:00:00Z"},
        format="json",
    )
    assert past.status_code == 400 and past.json()["error"]["field"] == "until"
    impossible = client.post(
        "/api/v1/silences",
        {"project": "acme/mnist", "until": "2027-02-30T00:00:00Z"},
        format="json",
    )
    assert impossible.status_code == 400 and impossible.json()["error"]["field"] == "until"
    assert (
        world.viewer.client().delete(f"/api/v1/silences/{created.json()['id']}").status_code == 403
    )
    assert client.delete(f"/api/v1/silences/{created.json()['id']}").status_code == 204
    assert Silence.objects.get().until <= timezone.now()
