"""Personal alerts: a user is told about their own failed or hung runs, without a team rule.

The settings become hidden rules and destinations (``owner`` set) in the
run's project and team; these tests run the real evaluation, scan and
delivery (to a real SMTP server on loopback, and one through a real server,
broker, worker and receiver), and check that teammates' runs, a team the user
left, or settings turned off tell them nothing, and that the team's lists
never show these rows.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from alerts import delivery, personal, scan
from alerts.models import (
    Alert,
    AlertRule,
    Destination,
    Notification,
    NotificationStatus,
    PersonalAlerts,
)
from kernel.errors import ApplicationError
from tests.alerts.receiver import Receiver
from tests.conftest import World
from tests.sdk.server import LabbookServer
from tests.support import wait_until
from tests.workers import celery_worker
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import MetricSeries, Run, TokenScope

pytestmark = pytest.mark.django_db(transaction=True)  # events are dispatched after commit

SLACK = "https://hooks.slack.com/services/T000/B000/abcdefSECRETkey"


def _address(user, address: str) -> None:
    user.email = address
    user.save(update_fields=["email"])


def _run(world: World, persona: str = "owner", name: str = "r") -> Run:
    return tracking_services.run_create(
        user=world.persona(persona).user, project=world.project, name=name
    )


def _fail(run: Run) -> None:
    tracking_services.run_update(run=run, data={"status": "failed", "error": "OOM"})


def _personal_alerts() -> list[tuple[str, str]]:
    found = Alert.objects.filter(rule__owner__isnull=False).order_by("pk")
    return [(a.rule.owner.username, a.summary) for a in found]


# --- Failures -----------------------------------------------------------------------------------


def test_my_failed_run_emails_me_and_a_teammates_does_not(world, smtp):
    _address(world.owner.user, "alice@example.com")
    personal.save_settings(world.owner.user, {"on_failure": True, "email": True})
    _fail(_run(world, "editor", "bobs"))
    assert _personal_alerts() == []  # bob's run: not alice's to hear about
    _fail(_run(world, "owner", "mine"))
    assert _personal_alerts() == [("alice", "mine failed: OOM")]
    (notification,) = Notification.objects.all()
    assert notification.destination.owner == world.owner.user
    assert delivery.deliver(notification.pk) == "sent 1"
    ((recipients, message),) = smtp.messages
    assert recipients == ["alice@example.com"]
    assert "mine failed: OOM" in message["Subject"]


def test_the_address_is_the_users_own_when_the_message_goes(world, smtp):
    _address(world.owner.user, "old@example.com")
    personal.save_settings(world.owner.user, {"on_failure": True, "email": True})
    _fail(_run(world))
    _address(world.owner.user, "new@example.com")
    delivery.deliver(Notification.objects.get().pk)
    assert [recipients for recipients, _ in smtp.messages] == [["new@example.com"]]


def test_the_personal_path_costs_one_query_for_a_user_who_asked_nothing(
    world, django_assert_max_num_queries
):
    run = _run(world)
    with django_assert_max_num_queries(1):
        personal.ensure_failure_rules(run.pk, "failed")
    with django_assert_max_num_queries(0):
        personal.ensure_failure_rules(run.pk, "finished")


def test_someone_who_left_the_team_hears_nothing(world):
    _address(world.editor.user, "bob@example.com")
    personal.save_settings(world.editor.user, {"on_failure": True, "email": True})
    first = _run(world, "editor", "before")
    _fail(first)  # while a member: the rule is made, its notification is on its way
    (on_its_way,) = Notification.objects.all()
    second = _run(world, "editor", "after")
    tracking_services.membership_remove(team=world.team, user=world.editor.user)
    assert not AlertRule.objects.get(owner=world.editor.user).enabled
    _fail(second)
    assert _personal_alerts() == [("bob", "before failed: OOM")]
    assert delivery.deliver(on_its_way.pk).startswith("failed: personal destination")
    on_its_way.refresh_from_db()
    assert on_its_way.status == NotificationStatus.FAILED


def test_turning_it_off_stops_the_alerts(world):
    personal.save_settings(world.owner.user, {"on_failure": True, "email": True})
    _fail(_run(world, name="one"))
    personal.save_settings(world.owner.user, {"on_failure": False})
    _fail(_run(world, name="two"))
    assert _personal_alerts() == [("alice", "one failed: OOM")]
    assert not AlertRule.objects.get(owner=world.owner.user).enabled
    personal.save_settings(world.owner.user, {"on_failure": True, "email": False})
    _fail(_run(world, name="three"))
    assert [s for _, s in _personal_alerts()] == ["one failed: OOM", "three failed: OOM"]
    assert Notification.objects.count() == 1  # email off: recorded, sent to nobody


def test_each_channel_is_one_destination_of_the_rule(world):
    personal.save_settings(
        world.owner.user, {"on_failure": True, "email": True, "slack_url": SLACK}
    )
    _fail(_run(world, name="one"))
    assert sorted(n.destination.kind for n in Notification.objects.all()) == ["email", "slack"]
    personal.save_settings(world.owner.user, {"slack_url": ""})  # Slack removed
    assert not Destination.objects.get(owner=world.owner.user, kind="slack").enabled
    _fail(_run(world, name="two"))
    assert sorted(n.destination.kind for n in Notification.objects.all()) == [
        "email",
        "email",
        "slack",
    ]


def test_rules_are_made_for_the_triggers_asked_once_per_project(world):
    run = _run(world)
    wanted = ("run_failed", "run_no_progress")
    assert personal.personal_rules_for(run, wanted) == []  # nothing asked
    personal.save_settings(world.owner.user, {"on_failure": True, "hang_after_seconds": 600})
    made = personal.personal_rules_for(run, wanted)
    assert sorted(rule.trigger for rule in made) == sorted(wanted)
    assert personal.personal_rules_for(run, wanted) == made  # the same rows again
    assert personal.personal_rules_for(_run(world, "editor"), wanted) == []  # bob asked nothing


# --- Hangs through the scan ----------------------------------------------------------------------


def _hung(world: World, persona: str, name: str) -> Run:
    run = _run(world, persona, name)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=1))
    metrics_ingest(run=run, points=[Point("loss", s, float(s), 1.0 + s) for s in (0, 1, 2)])
    tracking_services.run_heartbeat(run=Run.objects.get(pk=run.pk))
    MetricSeries.objects.filter(run=run).update(received_at=timezone.now() - timedelta(seconds=700))
    return run


def test_my_hung_run_is_found_by_the_scan_and_a_teammates_is_not(world):
    personal.save_settings(world.owner.user, {"hang_after_seconds": 600, "email": True})
    _hung(world, "editor", "bobs")
    _hung(world, "owner", "mine")
    assert scan.scan().hung == 1
    ((owner, summary),) = _personal_alerts()
    assert owner == "alice" and summary.startswith("mine has logged no metric for 11 min")
    assert scan.scan().hung == 0  # the same incident
    (rule,) = AlertRule.objects.filter(owner=world.owner.user)
    assert (rule.trigger, rule.params) == ("run_no_progress", {"after_seconds": 600, "key": ""})


def test_a_hang_longer_than_asked_is_not_yet_one(world):
    personal.save_settings(world.owner.user, {"hang_after_seconds": 3600})
    _hung(world, "owner", "mine")
    assert scan.scan().hung == 0
    personal.save_settings(world.owner.user, {"hang_after_seconds": 600})  # sync: the params
    assert scan.scan().hung == 1


def test_hang_bounds_are_run_no_progress_bounds(world):
    for wrong in (59, 7 * 86400 + 1, 600.0, "600", True):
        with pytest.raises(ApplicationError) as error:
            personal.save_settings(world.owner.user, {"hang_after_seconds": wrong})
        assert error.value.field == "hang_after_seconds"
    assert personal.save_settings(world.owner.user, {"hang_after_seconds": 60})


# --- The API --------------------------------------------------------------------------------------


def test_the_api_reads_and_writes_my_settings_with_the_slack_key_masked(world):
    client = world.owner.client()
    assert client.get("/api/v1/me/alerts").json() == {
        "on_failure": False,
        "hang_after_seconds": None,
        "email": False,
        "slack_url": "",
    }
    body = {"on_failure": True, "hang_after_seconds": 900, "email": True, "slack_url": SLACK}
    saved = client.put("/api/v1/me/alerts", body, format="json")
    assert saved.status_code == 200, saved.content
    masked = "https://hooks.slack.com/services/T000/B000/********"
    assert saved.json() == {**body, "slack_url": masked}
    assert "SECRET" not in client.get("/api/v1/me/alerts").content.decode()
    again = client.put("/api/v1/me/alerts", {"slack_url": masked}, format="json")
    assert again.status_code == 200
    assert PersonalAlerts.objects.get(user=world.owner.user).slack_url == SLACK  # kept


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"slack_url": "http://127.0.0.1:9/services/x"}, "slack_url"),
        ({"slack_url": "http://10.0.0.7/services/x"}, "slack_url"),
        ({"slack_url": "not a url"}, "slack_url"),
        ({"hang_after_seconds": 30}, "hang_after_seconds"),
        ({"on_failure": "yes"}, "on_failure"),
        ({"email": None}, "email"),
        ({"team": "acme"}, "team"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(world, body, field):
    response = world.owner.client().put("/api/v1/me/alerts", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not PersonalAlerts.objects.exists()


def test_each_user_reaches_only_their_own_settings(world, anonymous):
    world.owner.client().put("/api/v1/me/alerts", {"slack_url": SLACK}, format="json")
    assert world.editor.client().get("/api/v1/me/alerts").json()["slack_url"] == ""
    assert anonymous.get("/api/v1/me/alerts").status_code == 401
    assert anonymous.put("/api/v1/me/alerts", {}, format="json").status_code == 401


def test_a_read_token_reads_but_does_not_write(world):
    from rest_framework.test import APIClient

    _, raw = tracking_services.token_create(user=world.owner.user, name="ro", scope=TokenScope.READ)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/me/alerts").status_code == 200
    refused = client.put("/api/v1/me/alerts", {"on_failure": True}, format="json")
    assert refused.status_code == 403


# --- The team never sees the personal rows -------------------------------------------------------


def test_the_teams_lists_and_api_leave_personal_rows_out(world, client, hook):
    personal.save_settings(
        world.owner.user, {"on_failure": True, "email": True, "slack_url": SLACK}
    )
    _fail(_run(world))
    assert AlertRule.objects.filter(owner__isnull=False).count() == 1
    api = world.editor.client()
    assert [d["name"] for d in api.get("/api/v1/destinations").json()] == ["oncall"]
    assert api.get("/api/v1/alert-rules").json() == []
    assert api.get("/api/v1/alerts").json() == []  # a teammate's personal alert
    assert len(world.owner.client().get("/api/v1/alerts").json()) == 1  # one's own
    personal_ids = list(
        Destination.objects.filter(owner__isnull=False).values_list("pk", flat=True)
    )
    assert api.get(f"/api/v1/destinations/{personal_ids[0]}").status_code == 404
    rule = {"project": "acme/mnist", "name": "x", "trigger": "run_failed"}
    taken = api.post("/api/v1/alert-rules", {**rule, "destinations": personal_ids}, format="json")
    assert (taken.status_code, taken.json()["error"]["field"]) == (400, "destinations")
    body = {"team": "acme", "kind": "email", "name": "me", "config": {"user": world.owner.user.pk}}
    refused = api.post("/api/v1/destinations", body, format="json")
    assert (refused.status_code, refused.json()["error"]["field"]) == (400, "config.user")
    client.force_login(world.editor.user)
    assert "Personal" not in client.get("/settings/teams/acme/destinations/").content.decode()
    assert "Personal" not in client.get("/acme/mnist/alerts/rules/").content.decode()
    assert "r failed" not in client.get("/acme/mnist/alerts/").content.decode()
    alert = Alert.objects.get()
    assert client.get(f"/alerts/{alert.pk}/").status_code == 200  # its page: every member's


# --- The settings page ------------------------------------------------------------------------


def test_the_page_saves_shows_and_lists_my_alerts(world, client):
    client.force_login(world.owner.user)
    page = client.get("/settings/alerts/")
    assert page.status_code == 200
    assert 'href="/settings/alerts/" aria-current="page"' in page.content.decode()
    posted = client.post(
        "/settings/alerts/",
        {"on_failure": "1", "hang_minutes": "15", "email": "1", "slack_url": SLACK},
    )
    assert posted.status_code == 302
    saved = PersonalAlerts.objects.get(user=world.owner.user)
    assert (saved.on_failure, saved.hang_after_seconds, saved.email) == (True, 900, True)
    _fail(_run(world, name="mine"))
    html = client.get("/settings/alerts/").content.decode()
    assert "SECRET" not in html and "/T000/B000/********" in html
    assert 'value="15"' in html
    alert = Alert.objects.get()
    assert f'href="/alerts/{alert.pk}/"' in html and "mine failed: OOM" in html


def test_the_page_puts_errors_next_to_their_field(world, client):
    client.force_login(world.owner.user)
    short = client.post("/settings/alerts/", {"hang_minutes": "0"})
    assert short.status_code == 400
    assert 'id="my-alerts-hang-error"' in short.content.decode()
    private = client.post("/settings/alerts/", {"slack_url": "http://127.0.0.1/x"})
    assert private.status_code == 400
    assert 'id="my-alerts-slack-error"' in private.content.decode()
    assert not PersonalAlerts.objects.exists()


def test_the_page_is_for_logged_in_users_each_their_own(world, client):
    assert client.get("/settings/alerts/").status_code == 302
    assert client.post("/settings/alerts/test").status_code == 302
    personal.save_settings(world.owner.user, {"on_failure": True, "slack_url": SLACK})
    _fail(_run(world, name="alices"))
    client.force_login(world.editor.user)
    html = client.get("/settings/alerts/").content.decode()
    assert "alices failed" not in html and "T000/B000" not in html


def test_send_test_reaches_my_email_through_the_test_path(world, client, smtp):
    _address(world.owner.user, "alice@example.com")
    client.force_login(world.owner.user)
    nothing = client.post("/settings/alerts/test", follow=True)
    assert "Turn on email" in nothing.content.decode()
    personal.save_settings(world.owner.user, {"email": True})
    sent = client.post("/settings/alerts/test", follow=True)
    assert "Sent a test to Personal email (alice)" in sent.content.decode()
    ((recipients, message),) = smtp.messages
    assert recipients == ["alice@example.com"] and "TEST" in message["Subject"]
    (logged,) = Notification.objects.all()
    assert (logged.event, logged.status) == ("test", "sent")


# --- End to end: a real server, broker, worker and receiver ---------------------------------------


@pytest.mark.subprocess
def test_my_failed_run_reaches_my_slack_through_the_worker(tmp_path: Path):
    env = {"ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1", "ALERTS_RETRY_BASE_SECONDS": "1"}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    with (
        LabbookServer(tmp_path / "home", env=env) as server,
        Receiver() as receiver,
        celery_worker(server) as worker,
        server.client() as client,
    ):
        hook = receiver.url("/services/T1/B1/personal-key")
        mine = {"on_failure": True, "slack_url": hook}
        client.put("/api/v1/me/alerts", json=mine).raise_for_status()
        run_id = server.create_run("lab/alerts")
        client.patch(f"/api/v1/runs/{run_id}", json={"status": "failed"}).raise_for_status()
        arrived = wait_until(lambda: receiver.requests, timeout=60)
        assert arrived, f"nothing arrived; the worker's log:\n{worker.output()}"
        time.sleep(3.0)  # long enough to see an unwanted second request
        (request,) = receiver.requests
        assert request.path == "/services/T1/B1/personal-key"
        assert "failed" in json.loads(request.body)["text"]
        assert client.get("/api/v1/alert-rules").json() == []  # the team sees no rule
        (logged,) = client.get("/api/v1/notifications").json()
        assert (logged["status"], logged["attempts"]) == ("sent", 1)
