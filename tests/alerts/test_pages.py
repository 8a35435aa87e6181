"""The alerting pages: destinations, alerts, one alert, rules, silences.

Every page is checked for every persona; every POST is also sent by a viewer,
which must be refused and change nothing. Data is made through the services.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import delivery, services
from alerts.actions import action_path
from alerts.models import (
    Alert,
    AlertRule,
    Destination,
    Notification,
    NotificationStatus,
    Silence,
)
from tests.alerts.receiver import Reply
from tests.conftest import World
from tracking import selectors
from tracking import services as tracking_services
from tracking.models import Run

DESTINATIONS = "/settings/teams/acme/destinations/"
ALERTS = "/acme/mnist/alerts/"
RULES = "/acme/mnist/alerts/rules/"
SILENCES = "/acme/mnist/alerts/silences/"
SECRET = "a-webhook-secret-of-32-characters!"


def _login(client, world: World, persona: str):
    client.force_login(world.persona(persona).user)
    return client


def _page(response, status: int = 200) -> str:
    assert response.status_code == status
    return response.content.decode()


def _field_error(page: str, error_id: str) -> str:
    return page.split(f'id="{error_id}"')[1].split("</p>")[0]


def _only_the_logout_form(page: str) -> bool:
    # The email banner's Dismiss (the personas have no address) is the user's own, like Log out.
    forms = page.count("<form") - page.count('data-form="email-banner"')
    return forms == 1 and 'action="/logout/"' in page


def _destination(world: World, **config) -> Destination:
    team, role = selectors.team_get_for_user(world.owner.user, "acme")
    kind = "webhook" if "url" in config else "email"
    return services.destination_create(
        user=world.owner.user,
        team=team,
        role=role,
        kind=kind,
        name=kind,
        config=config or {"addresses": ["oncall@example.com"]},
    )


def _rule(world: World, destinations=(), **data) -> AlertRule:
    project = selectors.project_get_for_user(world.owner.user, "acme/mnist")
    fields = {"name": "failures", "trigger": "run_failed", "group_wait": 0, **data}
    fields["destinations"] = [d.pk for d in destinations]
    return services.rule_create(user=world.owner.user, project=project, data=fields)


def _fail_run(world: World, name: str = "r") -> Run:
    run = tracking_services.run_create(user=world.owner.user, project=world.project, name=name)
    return tracking_services.run_update(run=run, data={"status": "failed", "error": "OOM"})


@pytest.fixture
def fired(world: World, django_capture_on_commit_callbacks) -> Alert:
    """A firing alert of a run_failed rule sending to an email destination."""
    rule = _rule(world, [_destination(world)])
    with django_capture_on_commit_callbacks(execute=True):
        _fail_run(world)
    return Alert.objects.get(rule=rule)


def _urls(alert: Alert) -> list[str]:
    return [
        DESTINATIONS,
        ALERTS,
        f"/alerts/{alert.pk}/",
        RULES,
        f"{RULES}{alert.rule_id}/",
        SILENCES,
    ]


# --- Access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["owner", "editor", "viewer"])
def test_it_shows_every_page_to_members(client, world, fired, persona):
    _login(client, world, persona)
    for url in _urls(fired):
        assert client.get(url).status_code == 200, url


def test_it_hides_every_page_from_outsiders(client, world, fired):
    _login(client, world, "outsider")
    for url in [*_urls(fired), f"{RULES}new"]:
        assert client.get(url).status_code == 404, url


def test_it_sends_anonymous_visitors_to_login(client, world, fired):
    for url in _urls(fired):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_viewers_see_no_forms(client, world, fired):
    _login(client, world, "viewer")
    for url in _urls(fired):
        page = _page(client.get(url))
        assert _only_the_logout_form(page), url
    assert "Send test" not in _page(client.get(DESTINATIONS))
    assert client.get(f"{RULES}new").status_code == 403


def test_viewers_posts_are_refused_and_write_nothing(client, world, fired):
    destination = Destination.objects.get()
    silence = services.silence_create(
        user=world.owner.user,
        role="owner",
        until=timezone.now() + timedelta(hours=1),
        project=world.project,
    )
    posts = {
        DESTINATIONS: {"kind": "email", "name": "x", "addresses": "x@example.com"},
        f"{DESTINATIONS}{destination.pk}/test": {},
        f"{DESTINATIONS}{destination.pk}/enabled": {"enabled": "0"},
        f"{DESTINATIONS}{destination.pk}/delete": {},
        f"{DESTINATIONS}{destination.pk}/": {"name": "renamed", "addresses": "z@example.com"},
        f"{RULES}new": {"name": "x", "trigger": "run_finished", "group_wait": "0"},
        f"{RULES}{fired.rule_id}/": {"name": "renamed", "trigger": "run_finished"},
        f"{RULES}{fired.rule_id}/delete": {},
        SILENCES: {"scope": "project", "until": "2099-01-01T00:00"},
        f"{SILENCES}{silence.pk}/end": {},
    }
    _login(client, world, "viewer")
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url
    assert client.get(f"{DESTINATIONS}{destination.pk}/").status_code == 403  # the edit form
    assert Destination.objects.get().enabled
    assert Destination.objects.get().name == "email"
    assert list(AlertRule.objects.values_list("name", flat=True)) == ["failures"]
    assert Notification.objects.filter(event="test").count() == 0
    assert Silence.objects.get().until > timezone.now()


def test_the_pages_are_linked_from_the_project_and_the_team_settings(client, world):
    _login(client, world, "viewer")
    assert f'href="{ALERTS}"' in _page(client.get("/acme/mnist/"))
    assert f'href="{DESTINATIONS}"' in _page(client.get("/settings/teams/acme/"))


# --- Destinations -----------------------------------------------------------------------------


def test_it_creates_an_email_destination(client, world):
    _login(client, world, "editor")
    data = {"kind": "email", "name": "oncall", "addresses": "a@example.com, b@example.com"}
    response = client.post(DESTINATIONS, data, follow=True)
    assert response.redirect_chain == [(DESTINATIONS, 302)]
    page = _page(response)
    assert "Added the destination oncall." in page
    assert "a@example.com, b@example.com" in page
    destination = Destination.objects.get()
    assert destination.config == {"addresses": ["a@example.com", "b@example.com"]}


def test_it_sends_email_to_all_members(client, world):
    _login(client, world, "owner")
    client.post(DESTINATIONS, {"kind": "email", "name": "team", "team_members": "1"})
    assert Destination.objects.get().config == {"team_members": True}
    assert "all team members" in _page(client.get(DESTINATIONS))


def test_it_refuses_a_private_webhook_url_next_to_the_field(client, world):
    _login(client, world, "owner")
    data = {"kind": "webhook", "name": "hook", "url": "http://127.0.0.1:9/x", "secret": SECRET}
    page = _page(client.post(DESTINATIONS, data), 400)
    assert "127.0.0.1" in _field_error(page, "destination-url-error")
    assert 'aria-invalid="true"' in page
    assert SECRET not in page  # the secret is never echoed back
    assert Destination.objects.count() == 0


def test_it_never_shows_a_webhook_secret_or_path(client, world, allow_private, receiver):
    _destination(world, url=receiver.url("/private/path"), secret=SECRET)
    page = _page(_login(client, world, "owner").get(DESTINATIONS))
    assert "127.0.0.1" in page
    assert SECRET not in page and "/private/path" not in page


def test_send_test_reaches_the_webhook_and_is_logged(client, world, allow_private, receiver):
    destination = _destination(world, url=receiver.url("/hook"), secret=SECRET)
    _login(client, world, "editor")
    response = client.post(f"{DESTINATIONS}{destination.pk}/test", follow=True)
    page = _page(response)
    assert "Sent a test to webhook (HTTP 200," in page
    (request,) = receiver.requests
    assert request.path == "/hook"
    (notification,) = Notification.objects.all()
    assert (notification.event, notification.status) == ("test", NotificationStatus.SENT)
    destination.refresh_from_db()
    assert destination.last_success_at is not None


def test_send_test_flashes_the_error(client, world, allow_private, receiver):
    destination = _destination(world, url=receiver.url("/hook"), secret=SECRET)
    receiver.script(Reply(status=404, body="no such hook"))
    _login(client, world, "owner")
    page = _page(client.post(f"{DESTINATIONS}{destination.pk}/test", follow=True))
    assert "The test to webhook failed:" in page
    assert 'class="flash flash-error"' in page
    notification = Notification.objects.get()
    assert (notification.status, notification.response_code) == (NotificationStatus.FAILED, 404)
    destination.refresh_from_db()
    assert destination.last_error in page  # the destinations list shows the last error


def test_it_disables_enables_and_deletes_a_destination(client, world):
    destination = _destination(world)
    _login(client, world, "owner")
    client.post(f"{DESTINATIONS}{destination.pk}/enabled", {"enabled": "0"})
    destination.refresh_from_db()
    assert not destination.enabled
    assert "Delete the destination email?" in _page(
        client.get(f"{DESTINATIONS}{destination.pk}/delete")
    )
    response = client.post(f"{DESTINATIONS}{destination.pk}/delete")
    assert (response.status_code, response["Location"]) == (302, DESTINATIONS)
    assert Destination.objects.count() == 0


def test_it_hides_other_teams_destinations(client, world):
    destination = _destination(world)
    _login(client, world, "outsider")
    for url in [f"{DESTINATIONS}{destination.pk}/", f"{DESTINATIONS}{destination.pk}/test"]:
        assert client.post(url).status_code == 404, url
    rival = f"/settings/teams/rival/destinations/{destination.pk}/"
    assert client.post(f"{rival}test").status_code == 404
    assert client.get(rival).status_code == 404


def test_it_edits_a_destinations_name_and_addresses(client, world):
    destination = _destination(world)
    _login(client, world, "editor")
    form = _page(client.get(DESTINATIONS))
    assert f'href="{DESTINATIONS}{destination.pk}/"' in form  # "Edit" from the list
    page = _page(client.get(f"{DESTINATIONS}{destination.pk}/"))
    assert 'value="oncall@example.com"' in page and 'name="kind" value="email"' in page
    data = {"kind": "webhook", "name": "pager", "addresses": "a@example.com, b@example.com"}
    response = client.post(f"{DESTINATIONS}{destination.pk}/", data, follow=True)
    assert response.redirect_chain == [(DESTINATIONS, 302)]
    assert "Saved the destination pager." in _page(response)
    destination.refresh_from_db()
    assert (destination.kind, destination.name) == ("email", "pager")  # the kind stays
    assert destination.config == {"addresses": ["a@example.com", "b@example.com"]}


def test_editing_a_webhook_keeps_its_secret_unless_a_new_one_is_given(
    client, world, allow_private, receiver
):
    destination = _destination(world, url=receiver.url("/old"), secret=SECRET)
    url = f"{DESTINATIONS}{destination.pk}/"
    _login(client, world, "owner")
    page = _page(client.get(url))
    assert SECRET not in page and "Leave it blank to keep the current one." in page
    client.post(url, {"name": "webhook", "url": receiver.url("/new"), "secret": ""})
    destination.refresh_from_db()
    assert destination.config == {"url": receiver.url("/new"), "secret": SECRET}
    other = "another-secret-of-32-characters-long"
    client.post(url, {"name": "webhook", "url": receiver.url("/new"), "secret": other})
    destination.refresh_from_db()
    assert destination.config["secret"] == other


def test_a_bad_edit_shows_the_error_next_to_its_field_and_changes_nothing(client, world):
    destination = _destination(world, url="https://hooks.example.com/a", secret=SECRET)
    _destination(world)  # "email"
    url = f"{DESTINATIONS}{destination.pk}/"
    _login(client, world, "owner")
    page = _page(client.post(url, {"name": "webhook", "url": "http://127.0.0.1:9/x"}), 400)
    assert "127.0.0.1" in _field_error(page, "destination-url-error")
    page = _page(client.post(url, {"name": "email", "url": "https://hooks.example.com/b"}), 400)
    assert "already exists" in _field_error(page, "destination-name-error")
    destination.refresh_from_db()
    assert (destination.name, destination.config["url"]) == (
        "webhook",
        "https://hooks.example.com/a",
    )


def test_a_new_url_clears_a_broken_destination(client, world):
    destination = _destination(world, url="https://hooks.slack.com/services/gone", secret=SECRET)
    Destination.objects.filter(pk=destination.pk).update(
        broken=True, last_error="HTTP 404: no_service"
    )
    url = f"{DESTINATIONS}{destination.pk}/"
    _login(client, world, "owner")
    assert "The service said this URL is gone" in _page(client.get(url))
    client.post(url, {"name": "webhook", "url": "https://hooks.slack.com/services/gone"})
    destination.refresh_from_db()
    assert destination.broken  # same URL: still gone
    client.post(url, {"name": "webhook", "url": "https://hooks.slack.com/services/new"})
    destination.refresh_from_db()
    assert not destination.broken


# --- Rules ------------------------------------------------------------------------------------


def _rule_post(**extra) -> dict:
    data = {
        "name": "loss exploded",
        "trigger": "metric_threshold",
        "metric_threshold.key": "train/loss",
        "metric_threshold.op": ">=",
        "metric_threshold.value": "10.5",
        "metric_threshold.for_points": "3",
        "metric_nan.key": "ignored because not chosen",
        "run_stalled.after_seconds": "not a number, ignored",
        "tags": "nightly, big",
        "group": "sweep",
        "group_wait": "60",
        "repeat_interval": "",
        "notify_on_resolve": "1",
        "enabled": "1",
    }
    return {**data, **extra}


def test_it_creates_a_metric_threshold_rule(client, world):
    destination = _destination(world)
    _login(client, world, "editor")
    response = client.post(f"{RULES}new", _rule_post(destinations=[str(destination.pk)]))
    assert (response.status_code, response["Location"]) == (302, RULES)
    rule = AlertRule.objects.get()
    assert rule.params == {"key": "train/loss", "op": ">=", "value": 10.5, "for_points": 3}
    assert (rule.tags, rule.group, rule.group_wait, rule.repeat_interval) == (
        ["nightly", "big"],
        "sweep",
        60,
        None,
    )
    assert list(rule.destinations.all()) == [destination]
    page = _page(client.get(RULES))
    assert "Fires when train/loss &gt;= 10.5 for 3 points in a row." in page


def test_a_bad_param_shows_next_to_its_field(client, world):
    _login(client, world, "owner")
    page = _page(
        client.post(f"{RULES}new", _rule_post(**{"metric_threshold.for_points": "x"})), 400
    )
    assert "A whole number." in _field_error(page, "p-metric_threshold-for_points-error")
    assert 'value="train/loss"' in page  # the posted values come back
    assert 'aria-describedby="p-metric_threshold-for_points-error"' in page
    # The other triggers' fieldsets were not sent (disabled): they show their defaults.
    assert 'name="run_failed.statuses" value="failed" checked' in page
    assert 'name="run_stalled.after_seconds" value="600"' in page
    assert AlertRule.objects.count() == 0


@pytest.mark.parametrize(
    ("trigger", "param", "low", "high"),
    [
        ("run_stalled", "after_seconds", 60, 604_800),
        ("metric_threshold", "for_points", 1, 10_000),
        ("metric_stagnant", "patience_steps", 1, 10**12),
    ],
)
def test_the_rule_form_bounds_are_the_ones_the_service_enforces(
    client, world, trigger, param, low, high
):
    """The fieldset's min and max come from the trigger's definition, which saving checks."""
    _login(client, world, "owner")
    form = _page(client.get(f"{RULES}new"))
    assert f'name="{trigger}.{param}"' in form
    field = form.split(f'name="{trigger}.{param}"')[1].split(">")[0]
    assert f'min="{low}" max="{high}"' in field
    posted = {"name": "bounds", "trigger": trigger, "group_wait": "0", "metric_stagnant.key": "k"}
    posted |= {"metric_stagnant.mode": "min"}
    posted |= {
        "metric_threshold.key": "k",
        "metric_threshold.op": ">",
        "metric_threshold.value": "1",
    }
    page = _page(client.post(f"{RULES}new", {**posted, f"{trigger}.{param}": str(high + 1)}), 400)
    message = f"A whole number from {low} to {high}."
    assert message in _field_error(page, f"p-{trigger}-{param}-error")
    assert AlertRule.objects.count() == 0


def test_it_edits_and_deletes_a_rule(client, world):
    rule = _rule(world)
    _login(client, world, "editor")
    edit = f"{RULES}{rule.pk}/"
    page = _page(client.get(edit))
    assert 'value="failures"' in page and "labbook/alerts.js" in page
    data = {"name": "renamed", "trigger": "run_stalled", "run_stalled.after_seconds": "900"}
    response = client.post(edit, {**data, "group_wait": "30"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.trigger, rule.params, rule.enabled) == (
        "renamed",
        "run_stalled",
        {"after_seconds": 900},
        False,  # the box was not ticked
    )
    client.post(f"{edit}delete")
    assert AlertRule.objects.count() == 0


# --- Alerts -----------------------------------------------------------------------------------


def test_it_lists_firing_alerts_first(client, world, django_capture_on_commit_callbacks):
    _rule(world, params={"statuses": ["crashed"]})
    with django_capture_on_commit_callbacks(execute=True):
        older = tracking_services.run_create(user=world.owner.user, project=world.project, name="a")
        tracking_services.run_update(run=older, data={"status": "crashed"})
        newer = tracking_services.run_create(user=world.owner.user, project=world.project, name="b")
        tracking_services.run_update(run=newer, data={"status": "crashed"})
        tracking_services.run_heartbeat(run=Run.objects.get(pk=newer.pk))  # b resolves
    page = _page(_login(client, world, "viewer").get(ALERTS))
    assert page.index("a crashed") < page.index("b crashed")  # firing first, then newest
    assert f'href="/acme/mnist/runs/{older.pk}"' in page
    resolved = _page(client.get(f"{ALERTS}?state=resolved"))
    assert "b crashed" in resolved and "a crashed" not in resolved


def _missed_run(world: World) -> Alert:
    """A run_expected alert: no run came, so it has none (as alerts.scan fires it)."""
    params = {"cron": "0 2 * * *", "timezone": "UTC", "grace_seconds": 1800}
    rule = _rule(world, name="nightly", trigger="run_expected", tags=["nightly"], params=params)
    return Alert.objects.create(
        rule=rule,
        run=None,
        fingerprint=f"{rule.pk}::expected:2026-12-06T02:00:00+00:00",
        summary="No run of nightly started by 2026-12-06 02:00 UTC",
        values={
            "scheduled_at": "2026-12-06T02:00:00+00:00",
            "expected_by": "2026-12-06T02:30:00+00:00",
            "cron": "0 2 * * *",
            "timezone": "UTC",
        },
    )


@pytest.mark.parametrize("persona", ["owner", "viewer"])
def test_an_alert_without_a_run_shows_on_every_alerts_page(client, world, fired, persona):
    alert = _missed_run(world)
    _login(client, world, persona)
    no_run = "no run: an expected run did not start"
    page = _page(client.get(f"/alerts/{alert.pk}/"))
    assert alert.summary in page and no_run in page
    assert "2026-12-06T02:30:00+00:00" in page  # its values: when the run was expected
    assert 'href=""' not in page
    for url in (ALERTS, "/alerts/"):
        listed = _page(client.get(url))
        row = listed.split(f'data-alert-id="{alert.pk}"')[1].split("</tr>")[0]
        assert alert.summary in row and no_run in row and 'href=""' not in row
        assert "r failed: OOM" in listed  # the alert with a run is still listed with its run
        assert f'href="/acme/mnist/runs/{fired.run_id}"' in listed
    response = client.get(action_path(alert.pk, "silence_1h"))  # viewers are told they may not
    act = _page(response, 200 if persona == "owner" else 403)
    assert alert.summary in act and no_run in act and 'href=""' not in act


@pytest.mark.django_db(transaction=True)  # the evaluation runs after commit, as in production
def test_the_alert_page_shows_its_delivery_log(client, world, allow_private, receiver):
    hook = _destination(world, url=receiver.url("/hook"), secret=SECRET)
    _rule(world, [hook])
    run = _fail_run(world)
    (notification,) = Notification.objects.all()
    assert delivery.deliver(notification.pk) == "sent 1"
    alert = Alert.objects.get()
    page = _page(_login(client, world, "viewer").get(f"/alerts/{alert.pk}/"))
    assert "r failed: OOM" in page
    assert f'href="/acme/mnist/runs/{run.pk}"' in page
    log = page.split('class="table delivery-log"')[1]
    assert "webhook" in log and "badge-notification-sent" in log
    assert ">200<" in log and " ms<" in log


@pytest.mark.parametrize("url", [ALERTS, "/alerts/"])
def test_the_alerts_page_queries_stay_constant(
    client, world, django_assert_max_num_queries, django_capture_on_commit_callbacks, url
):
    _rule(world)
    _login(client, world, "owner")

    def fail_runs_up_to(total: int) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(Run.objects.count(), total):
                _fail_run(world, f"run-{i}")
        assert Alert.objects.count() == total

    fail_runs_up_to(3)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    fail_runs_up_to(30)
    with django_assert_max_num_queries(len(few)):
        assert "run-29 failed: OOM" in _page(client.get(url))


def test_every_teams_alerts_are_on_one_page_filtered_by_project_and_state(
    client, world, fired, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        outsiders_rule_fires(world)
    theirs = Alert.objects.get(rule__project__slug="theirs").summary
    assert theirs.startswith("theirs failed")
    assert theirs in _page(_login(client, world, "outsider").get("/alerts/"))
    _login(client, world, "viewer")
    assert 'href="/alerts/"' in _page(client.get("/"))  # the top bar
    page = _page(client.get("/alerts/"))
    assert "r failed: OOM" in page and theirs not in page
    assert 'href="/acme/mnist/alerts/"' in page  # the project column
    assert '<option value="rival/' not in page  # only the viewer's projects to filter by
    chosen = _page(client.get("/alerts/", {"project": "acme/mnist", "state": "firing"}))
    assert "r failed: OOM" in chosen and '<option value="acme/mnist" selected>' in chosen
    none = _page(client.get("/alerts/", {"project": "acme/mnist", "state": "resolved"}))
    assert "No resolved alerts in acme/mnist." in none
    foreign = _page(client.get("/alerts/", {"project": "rival/theirs"}))
    assert theirs not in foreign and "r failed: OOM" in foreign  # not theirs: filter ignored
    monkeypatch.setattr("alerts.pages.PAGE_SIZE", 1)
    with django_capture_on_commit_callbacks(execute=True):
        _fail_run(world, "second")
    paged = _page(client.get("/alerts/", {"project": "acme/mnist", "state": "firing"}))
    assert 'href="?project=acme%2Fmnist&amp;state=firing&amp;page=2" rel="next"' in paged


def outsiders_rule_fires(world: World) -> None:
    """An alert in the outsider's team, which nobody else may see."""
    project = tracking_services.project_create(
        user=world.outsider.user, team_slug="rival", slug="theirs"
    )
    services.rule_create(
        user=world.outsider.user,
        project=project,
        data={"name": "x", "trigger": "run_failed", "group_wait": 0},
    )
    run = tracking_services.run_create(user=world.outsider.user, project=project, name="theirs")
    tracking_services.run_update(run=run, data={"status": "failed"})


def test_the_alerts_page_asks_for_a_login(client):
    response = client.get("/alerts/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- Silences ---------------------------------------------------------------------------------


def test_it_creates_and_ends_a_silence(client, world):
    rule = _rule(world)
    _login(client, world, "editor")
    page = _page(client.get(SILENCES))
    assert "read as UTC" in page
    data = {"scope": "rule", "rule": str(rule.pk), "until": "2099-01-31T12:00", "reason": "maint"}
    response = client.post(SILENCES, data)
    assert (response.status_code, response["Location"]) == (302, SILENCES)
    silence = Silence.objects.get()
    assert (silence.rule, silence.project, silence.reason) == (rule, None, "maint")
    assert silence.until.isoformat() == "2099-01-31T12:00:00+00:00"
    active = _page(client.get(SILENCES)).split("<h2>Past")[0]
    assert "2099-01-31 12:00" in active
    client.post(f"{SILENCES}{silence.pk}/end")
    silence.refresh_from_db()
    assert silence.until <= timezone.now()
    past = _page(client.get(SILENCES)).split("<h2>Past")[1]
    assert f'data-silence-id="{silence.pk}"' in past


def test_a_silence_in_the_past_is_refused_next_to_until(client, world):
    _login(client, world, "owner")
    page = _page(client.post(SILENCES, {"scope": "project", "until": "2001-01-01T00:00"}), 400)
    assert "future" in _field_error(page, "silence-until-error")
    assert Silence.objects.count() == 0


def test_a_run_of_another_project_cannot_be_silenced(client, world):
    other = tracking_services.project_create(user=world.owner.user, team_slug="acme", slug="other")
    run = tracking_services.run_create(user=world.owner.user, project=other, name="x")
    _login(client, world, "owner")
    data = {"scope": "run", "run": str(run.pk), "until": "2099-01-01T00:00"}
    page = _page(client.post(SILENCES, data), 400)
    assert "No run" in _field_error(page, "silence-run-error")
