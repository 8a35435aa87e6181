from __future__ import annotations

import pytest

from tracking import events, services
from tracking.models import SdkAlert


@pytest.fixture
def run(world):
    return services.run_create(user=world.owner.user, project=world.project)


def alert(client, run, **body):
    return client.post(
        f"/api/v1/runs/{run.pk}/alerts", {"title": "loss exploded", **body}, format="json"
    )


def test_it_raises_an_alert_and_mutes_repeats_inside_the_window(
    world, run, django_capture_on_commit_callbacks
):
    raised = []
    events.subscribe(events.SdkAlertRaised, raised.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            first = alert(world.editor.client(), run, text="loss=1e9", level="error")
            second = alert(world.editor.client(), run, text="loss=1e10", level="error")
    finally:
        events.unsubscribe(events.SdkAlertRaised, raised.append)
    assert first.status_code == 201
    assert first.json()["suppressed"] is False
    assert second.status_code == 200
    assert second.json()["suppressed"] is True
    assert second.json()["repeats"] == 1
    assert [e.alert_id for e in raised] == [first.json()["id"]]
    assert SdkAlert.objects.count() == 1


def test_a_zero_window_raises_every_time(world, run):
    client = world.editor.client()
    assert alert(client, run, wait_duration=0).status_code == 201
    assert alert(client, run, wait_duration=0).status_code == 201
    assert SdkAlert.objects.count() == 2


def test_other_titles_are_not_muted(world, run):
    client = world.editor.client()
    alert(client, run)
    other = alert(client, run, title="gpu memory")
    assert other.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"level": "panic"}, "level"),
        ({"wait_duration": -1}, "wait_duration"),
        ({"wait_duration": "soon"}, "wait_duration"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_it_rejects_bad_alerts(world, run, body, field):
    response = alert(world.editor.client(), run, **body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_viewers_and_outsiders_cannot_alert(world, run):
    assert alert(world.viewer.client(), run).status_code == 403
    assert alert(world.outsider.client(), run).status_code == 404
    assert SdkAlert.objects.count() == 0


def test_it_lists_the_runs_alerts(world, run):
    alert(world.editor.client(), run)
    listed = world.viewer.client().get(f"/api/v1/runs/{run.pk}/alerts").json()
    assert [a["title"] for a in listed] == ["loss exploded"]


def test_failure_details_are_stored_on_the_run(world, run):
    response = world.editor.client().patch(
        f"/api/v1/runs/{run.pk}",
        {
            "status": "failed",
            "exit_code": 1,
            "error": "ValueError: boom",
            "traceback": "Traceback (most recent call last):\n  ...\nValueError: boom",
            "metadata": {"python": "3.11.7"},
        },
        format="json",
    )
    body = response.json()
    assert body["error"] == "ValueError: boom"
    assert body["traceback"].endswith("ValueError: boom")
    assert body["metadata"] == {"python": "3.11.7"}
