"""Acting on an alert: signed one-click links, their confirmation page, acknowledgement.

A link's GET only asks; its POST acknowledges the alert or silences its rule,
as the logged-in member, with an audit event. Editors and owners may act,
viewers are told they may not, anyone outside the team finds nothing.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import signing
from django.shortcuts import resolve_url
from django.utils import timezone

from alerts import actions, firing, scan, selectors, services
from alerts.models import Alert, AlertState, Notification, Silence
from alerts.transports import slack
from alerts.transports.base import readable
from alerts.triggers import describe
from audit.models import AuditEvent
from tests.alerts.conftest import make_rule
from tests.alerts.messages import alert_info, fired
from tests.conftest import World
from tracking import services as tracking_services

ALERT_PAGE = "/alerts/{}/"


def _fire(world: World, hook, **rule_fields) -> Alert:
    rule = make_rule(world, hook, "run_failed", **rule_fields)
    run = tracking_services.run_create(user=world.owner.user, project=world.project, name="r")
    alert = firing.fire(
        rule=rule,
        run=run,
        summary="r failed",
        values={"status": "failed", "resolved_with": {"status": "failed", "loss": 0.123456789}},
    )
    assert alert is not None
    return alert


def _path(alert: Alert, action: str) -> str:
    return actions.action_path(alert.pk, action)


def _as(client, world: World, persona: str):
    client.force_login(world.persona(persona).user)
    return client


def _unchanged(alert: Alert) -> bool:
    alert.refresh_from_db()
    return (
        alert.acknowledged_at is None
        and not Silence.objects.exists()
        and not AuditEvent.objects.filter(action__startswith="alert.").exists()
    )


# --- The tokens -------------------------------------------------------------------------------


def test_a_token_names_the_alert_and_the_action():
    link = actions.read_token(actions.token_for(42, "silence_1d"))
    assert (link.alert_id, link.action.name, link.action.silence) == (
        42,
        "silence_1d",
        timedelta(1),
    )


def test_a_tampered_token_is_invalid():
    token = actions.token_for(42, "acknowledge")
    for bad in (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), token[:20], "nonsense"):
        with pytest.raises(actions.LinkInvalid):
            actions.read_token(bad)


def test_a_token_with_another_alert_id_swapped_in_is_invalid():
    token = actions.token_for(42, "acknowledge")
    other = actions.token_for(43, "acknowledge")
    forged = other.split(":")[0] + ":" + ":".join(token.split(":")[1:])
    with pytest.raises(actions.LinkInvalid):
        actions.read_token(forged)


def test_a_token_for_an_unknown_action_or_signed_for_something_else_is_invalid():
    unknown = signing.dumps({"alert": 42, "action": "delete_rule"}, salt=actions.SALT)
    elsewhere = signing.dumps({"alert": 42, "action": "acknowledge"}, salt="another.salt")
    not_an_id = signing.dumps({"alert": "42", "action": "acknowledge"}, salt=actions.SALT)
    for token in (unknown, elsewhere, not_an_id):
        with pytest.raises(actions.LinkInvalid):
            actions.read_token(token)
    with pytest.raises(ValueError, match="delete_rule"):
        actions.token_for(42, "delete_rule")


class SignedLongAgo(signing.TimestampSigner):
    """A signer whose clock is a link's lifetime and a minute behind: its tokens have expired."""

    def timestamp(self) -> str:
        age = actions.LINK_MAX_AGE.total_seconds() + 60
        return signing.b62_encode(int(time.time() - age))


def test_a_token_older_than_its_lifetime_has_expired():
    payload = {"alert": 42, "action": "acknowledge"}
    old = SignedLongAgo(salt=actions.SALT).sign_object(payload)
    with pytest.raises(actions.LinkExpired):
        actions.read_token(old)


def test_a_notifications_links_are_absolute(world, hook):
    alert = _fire(world, hook)
    links = actions.links_for(alert)
    assert set(links) == {"acknowledge", "silence_1h", "silence_1d", "alert", "run"}
    assert all(url.startswith(settings.BASE_URL + "/") for url in links.values())
    assert links["run"] == settings.BASE_URL + alert.run.get_absolute_url()
    path = links["silence_1h"].removeprefix(settings.BASE_URL)
    assert actions.read_token(path.split("/")[-2]).action.name == "silence_1h"


# --- The confirmation page --------------------------------------------------------------------


def test_get_asks_and_changes_nothing(client, world, hook):
    alert = _fire(world, hook)
    page = _as(client, world, "editor").get(_path(alert, "silence_1h"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Silence run_failed for 1 hour" in text
    assert "r failed" in text and "Fires when a run ends failed, crashed or killed." in text
    assert 'data-form="alert-action"' in text
    ack = client.get(_path(alert, "acknowledge")).content.decode()
    assert ">Acknowledge</button>" in ack
    assert _unchanged(alert)


def test_post_acknowledges_once_with_an_audit_event(client, world, hook):
    alert = _fire(world, hook)
    _as(client, world, "editor")
    done = client.post(_path(alert, "acknowledge"), follow=True)
    assert done.redirect_chain == [(ALERT_PAGE.format(alert.pk), 302)]
    text = done.content.decode()
    assert "Acknowledged: this alert sends no more reminders." in text
    assert "Acknowledged by bob at" in text
    alert.refresh_from_db()
    assert alert.acknowledged_by == world.editor.user and alert.acknowledged_at is not None
    again = client.post(_path(alert, "acknowledge"), follow=True).content.decode()
    assert "Already acknowledged by bob." in again
    (event,) = AuditEvent.objects.filter(action="alert.acknowledged")
    assert (event.actor_name, event.team_slug, event.target_type) == ("bob", "acme", "alert")
    assert event.target_id == str(alert.pk) and "r failed" in event.target_repr
    assert event.data == {"rule": "run_failed", "run": "r"}


def test_post_silences_the_rule_for_an_hour_or_a_day(client, world, hook):
    alert = _fire(world, hook)
    _as(client, world, "owner")
    before = timezone.now()
    assert client.post(_path(alert, "silence_1h")).status_code == 302
    assert client.post(_path(alert, "silence_1d")).status_code == 302
    hour, day = Silence.objects.order_by("until")
    assert (hour.rule, hour.project, hour.run, hour.created_by) == (
        alert.rule,
        None,
        None,
        world.owner.user,
    )
    assert hour.reason == day.reason == "from a notification link"
    assert timedelta(minutes=59) < hour.until - before < timedelta(minutes=61)
    assert timedelta(hours=23, minutes=59) < day.until - before < timedelta(hours=24, minutes=1)
    events = AuditEvent.objects.filter(action="alert.silenced").order_by("id")
    assert [e.data["silence"] for e in events] == [hour.pk, day.pk]
    assert all(e.actor_name == "alice" and e.target_id == str(alert.pk) for e in events)
    alert.refresh_from_db()
    assert alert.acknowledged_at is None  # a silence is not an acknowledgement


def test_a_resolved_alert_has_nothing_to_acknowledge(client, world, hook):
    alert = _fire(world, hook)
    firing.resolve(rule=alert.rule, run=alert.run)
    _as(client, world, "owner")
    page = client.get(_path(alert, "acknowledge")).content.decode()
    assert "nothing to acknowledge" in page and 'data-form="alert-action"' not in page
    done = client.post(_path(alert, "acknowledge"), follow=True).content.decode()
    assert "Nothing to acknowledge: the alert has resolved." in done
    assert _unchanged(alert)


def test_an_outsider_finds_nothing(client, world, hook):
    alert = _fire(world, hook)
    _as(client, world, "outsider")
    for action in actions.ACTIONS:
        assert client.get(_path(alert, action)).status_code == 404
        assert client.post(_path(alert, action)).status_code == 404
    assert _unchanged(alert)


def test_a_viewer_is_told_only_editors_and_owners_may_act(client, world, hook):
    alert = _fire(world, hook)
    _as(client, world, "viewer")
    page = client.get(_path(alert, "acknowledge"))
    assert page.status_code == 403
    text = page.content.decode()
    assert "only editors and owners can acknowledge alerts or silence rules" in text
    assert 'data-form="alert-action"' not in text
    for action in actions.ACTIONS:
        assert client.post(_path(alert, action)).status_code == 403
    assert _unchanged(alert)


def test_anonymous_goes_to_the_login_and_back(client, world, hook):
    alert = _fire(world, hook)
    path = _path(alert, "acknowledge")
    for response in (client.get(path), client.post(path)):
        assert response.status_code == 302
        assert response["Location"].startswith(resolve_url(settings.LOGIN_URL))
        assert response["Location"].endswith("?next=" + path.replace(":", "%3A"))
    assert _unchanged(alert)


def test_an_expired_or_broken_link_is_a_page_saying_so(client, world, hook):
    alert = _fire(world, hook)
    _as(client, world, "owner")
    old = SignedLongAgo(salt=actions.SALT).sign_object({"alert": alert.pk, "action": "acknowledge"})
    expired = client.get(f"/alerts/act/{old}/")
    assert expired.status_code == 410
    assert "This link has expired" in expired.content.decode()
    assert f"work for {actions.LINK_MAX_AGE.days} days" in expired.content.decode()
    assert client.post(f"/alerts/act/{old}/").status_code == 410
    broken = client.get(_path(alert, "acknowledge").replace(":", ":x", 1))
    assert broken.status_code == 400
    assert "This link does not work" in broken.content.decode()
    assert _unchanged(alert)


# --- The alert page ---------------------------------------------------------------------------


def test_the_alert_page_offers_the_actions_to_editors_only(client, world, hook):
    alert = _fire(world, hook)
    page = _as(client, world, "editor").get(ALERT_PAGE.format(alert.pk)).content.decode()
    assert page.count("data-alert-actions") == 1
    for label in ("Acknowledge", "Silence 1 hour", "Silence 1 day"):
        assert f">{label}</button>" in page
    viewer = _as(client, world, "viewer").get(ALERT_PAGE.format(alert.pk)).content.decode()
    assert "data-alert-actions" not in viewer
    services.alert_acknowledge(_with_role(world, alert, "owner"), actor=world.owner.user)
    acked = _as(client, world, "editor").get(ALERT_PAGE.format(alert.pk)).content.decode()
    assert ">Acknowledge</button>" not in acked and ">Silence 1 hour</button>" in acked
    assert "Acknowledged by alice at" in acked


def _with_role(world: World, alert: Alert, persona: str) -> Alert:
    """The alert as the persona acts on it (with their role in its team)."""
    return selectors.alert_get_with_role(world.persona(persona).user, alert.pk)


def test_the_alert_page_says_when_the_rule_fires_and_shows_no_python_dict(client, world, hook):
    alert = _fire(world, hook)
    page = _as(client, world, "viewer").get(ALERT_PAGE.format(alert.pk)).content.decode()
    assert "Fires when a run ends failed, crashed or killed." in page
    assert "loss: 0.123457, status: failed" in page
    assert "{&#x27;" not in page and "{'" not in page


def test_lists_show_who_acknowledged(client, world, hook):
    alert = _fire(world, hook)
    services.alert_acknowledge(_with_role(world, alert, "editor"), actor=world.editor.user)
    _as(client, world, "viewer")
    for path in ("/alerts/", "/acme/mnist/alerts/", alert.run.get_absolute_url()):
        assert "Acknowledged by bob at" in client.get(path).content.decode(), path


# --- Reminders, resolution and the API --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_acknowledged_alert_sends_no_more_reminders_but_still_resolves(world, hook):
    alert = _fire(world, hook, repeat_interval=3600)
    Alert.objects.update(last_notified_at=timezone.now() - timedelta(hours=2))
    assert scan.scan().reminded == 1
    services.alert_acknowledge(_with_role(world, alert, "owner"), actor=world.owner.user)
    Alert.objects.update(last_notified_at=timezone.now() - timedelta(hours=2))
    assert scan.scan().reminded == 0
    assert firing.resolve(rule=alert.rule, run=alert.run) is not None
    events = list(Notification.objects.order_by("pk").values_list("event", flat=True))
    assert events == ["fired", "repeat", "resolved"]
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED and alert.acknowledged_by == world.owner.user


def test_the_api_acknowledges_for_editors(world, hook):
    alert = _fire(world, hook)
    url = f"/api/v1/alerts/{alert.pk}/acknowledge"
    assert world.outsider.client().post(url).status_code == 404
    assert world.viewer.client().post(url).status_code == 403
    assert Alert.objects.get(pk=alert.pk).acknowledged_at is None
    done = world.editor.client().post(url)
    assert done.status_code == 200, done.content
    body = done.json()
    assert (body["id"], body["acknowledged_by"], body["state"]) == (alert.pk, "bob", "firing")
    assert body["acknowledged_at"] is not None
    again = world.owner.client().post(url).json()
    assert (again["acknowledged_by"], again["acknowledged_at"]) == ("bob", body["acknowledged_at"])
    (listed,) = world.viewer.client().get("/api/v1/alerts").json()
    assert listed["acknowledged_by"] == "bob"
    assert AuditEvent.objects.filter(action="alert.acknowledged").count() == 1


# --- Wording and the messages -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "params", "sentence"),
    [
        ("metric_threshold", {"key": "val/loss", "op": ">", "value": 0.5, "for_points": 3},
         "Fires when val/loss > 0.5 for 3 points in a row."),
        ("metric_threshold", {"key": "acc", "op": "<", "value": 0.9, "for_points": 1},
         "Fires when acc < 0.9."),
        ("run_stalled", {"after_seconds": 600},
         "Fires when a running run has sent nothing, not even a heartbeat, for 10 min."),
        ("metric_stagnant", {"key": "acc", "mode": "max", "patience_steps": 1000},
         "Fires when acc has not improved (higher is better) for 1,000 steps."),
        ("sdk_alert", {"levels": ["warn", "error"]},
         "Fires when the training code raises an alert (run.alert) of level warn or error."),
        ("metric_threshold", {}, "Fires on: Metric crosses a threshold."),
    ],
)  # fmt: skip
def test_each_trigger_says_when_it_fires(trigger, params, sentence):
    assert describe(trigger, params) == sentence


def test_values_read_as_words_not_python():
    assert (
        readable({"status": "failed", "x": [1, 2.5], "y": None})
        == "status: failed, x: 1, 2.5, y: —"
    )
    assert (readable(float("nan")), readable(float("-inf")), readable(True)) == (
        "NaN",
        "-Infinity",
        "yes",
    )


def test_slack_gives_each_alert_its_buttons_within_slacks_limits():
    links = {name: f"http://labbook.example/alerts/act/{name}/" for name in actions.ACTIONS}
    links["run"] = "http://labbook.example/runs/7"
    alerts = [alert_info(i, links=links) for i in range(25)]
    blocks = slack.slack_payload(fired(*alerts))["blocks"]
    assert len(blocks) <= slack.MAX_BLOCKS
    rows = [b for b in blocks if b["type"] == "actions" and len(b["elements"]) == 3]
    assert len(rows) == slack.MAX_ALERTS
    labels = [e["text"]["text"] for e in rows[0]["elements"]]
    assert labels == ["Acknowledge", "Silence 1 h", "Silence 1 day"]
    assert rows[0]["elements"][0]["url"] == links["acknowledge"]
    resolved = slack.slack_payload(fired(alert_info(links=links, state="resolved")))["blocks"]
    (row,) = [b for b in resolved if b["type"] == "actions" and len(b["elements"]) == 2]
    assert [e["text"]["text"] for e in row["elements"]] == ["Silence 1 h", "Silence 1 day"]
