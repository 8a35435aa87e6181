"""Delivering notifications to a real HTTP receiver on loopback: claims, groups, retries, the log.

``delivery.deliver`` is called here as the Celery task calls it; the end-to-end
path through a real worker is in ``test_worker_delivery``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import delivery, services
from alerts.models import Destination, Notification, NotificationStatus
from alerts.transports.base import TransportError
from tests.alerts.receiver import Reply
from tests.conftest import World
from tracking import selectors
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "a-webhook-secret-of-32-characters!"


@pytest.fixture
def hook(world: World, receiver, allow_private) -> Destination:
    team, role = selectors.team_get_for_user(world.owner.user, "acme")
    return services.destination_create(
        user=world.owner.user,
        team=team,
        role=role,
        kind="webhook",
        name="hook",
        config={"url": receiver.url("/hook"), "secret": SECRET},
    )


def _fail_runs(world: World, hook: Destination, count: int = 1, **rule) -> list[Notification]:
    project = selectors.project_get_for_user(world.owner.user, "acme/mnist")
    data = {"name": "failures", "trigger": "run_failed", "destinations": [hook.pk]}
    services.rule_create(user=world.owner.user, project=project, data={**data, **rule})
    for i in range(count):
        run = tracking_services.run_create(
            user=world.owner.user, project=world.project, name=f"run-{i}"
        )
        tracking_services.run_update(run=run, data={"status": "failed", "error": "OOM"})
    return list(Notification.objects.order_by("pk"))


def _due(notification: Notification) -> None:
    Notification.objects.filter(pk=notification.pk).update(next_attempt_at=timezone.now())


def test_a_notification_reaches_the_webhook_signed_and_is_logged(world, hook, receiver):
    (notification,) = _fail_runs(world, hook, group_wait=0)
    assert delivery.deliver(notification.pk) == "sent 1"
    (request,) = receiver.requests
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-labbook-signature"] == f"sha256={expected}"
    assert request.headers["idempotency-key"] == str(notification.pk)
    payload = json.loads(request.body)
    assert payload["event"] == "alert.fired" and payload["project"] == "acme/mnist"
    assert payload["run"]["name"] == "run-0" and payload["run"]["error"] == "OOM"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.response_code) == (
        NotificationStatus.SENT,
        1,
        200,
    )
    assert notification.latency_ms is not None and notification.sent_at is not None
    assert Destination.objects.get().last_success_at is not None


def test_a_sent_notification_is_never_sent_again(world, hook, receiver):
    (notification,) = _fail_runs(world, hook, group_wait=0)
    delivery.deliver(notification.pk)
    assert delivery.deliver(notification.pk) == "not due or not ours"  # a redelivered task
    assert len(receiver.requests) == 1


def test_server_errors_are_retried_with_backoff_then_succeed(world, hook, receiver, settings):
    settings.LABBOOK = {**settings.LABBOOK, "ALERTS_RETRY_BASE_SECONDS": 4}
    receiver.script(Reply(status=500, body="boom"), Reply(status=503), Reply(status=200))
    (notification,) = _fail_runs(world, hook, group_wait=0)
    before = timezone.now()
    assert delivery.deliver(notification.pk).startswith("retry in")
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING
    assert "500" in notification.last_error and notification.response_code == 500
    assert before + timedelta(seconds=2) <= notification.next_attempt_at  # 4 s x [0.5, 1.5)
    assert notification.next_attempt_at <= before + timedelta(seconds=7)
    assert delivery.deliver(notification.pk) == "not due or not ours"  # not yet due
    _due(notification)
    delivery.deliver(notification.pk)
    _due(notification)
    assert delivery.deliver(notification.pk) == "sent 1"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (NotificationStatus.SENT, 3)


def test_a_429_waits_as_long_as_the_receiver_asks(world, hook, receiver):
    receiver.script(Reply(status=429, headers={"Retry-After": "120"}))
    (notification,) = _fail_runs(world, hook, group_wait=0)
    before = timezone.now()
    delivery.deliver(notification.pk)
    notification.refresh_from_db()
    waited = (notification.next_attempt_at - before).total_seconds()
    assert notification.status == NotificationStatus.PENDING and 119 <= waited <= 122


def test_a_client_error_fails_at_once_with_the_reason(world, hook, receiver):
    receiver.script(Reply(status=400, body="bad payload"))
    (notification,) = _fail_runs(world, hook, group_wait=0)
    assert delivery.deliver(notification.pk).startswith("failed")
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.FAILED and notification.response_code == 400
    assert "bad payload" in notification.last_error
    assert "bad payload" in Destination.objects.get().last_error


def test_retries_stop_at_the_attempt_budget(world, hook, receiver, settings):
    settings.LABBOOK = {**settings.LABBOOK, "ALERTS_MAX_ATTEMPTS": 2}
    receiver.script(Reply(status=500), Reply(status=500), Reply(status=200))
    (notification,) = _fail_runs(world, hook, group_wait=0)
    delivery.deliver(notification.pk)
    _due(notification)
    assert delivery.deliver(notification.pk).startswith("failed")
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (NotificationStatus.FAILED, 2)


def test_runs_failing_together_go_out_as_one_message(world, hook, receiver):
    notifications = _fail_runs(world, hook, count=3, group_wait=30)
    assert len(notifications) == 3
    for n in notifications:
        _due(n)  # their group_wait has passed
    assert delivery.deliver(notifications[0].pk) == "sent 3"
    (request,) = receiver.requests
    names = sorted(a["run"]["name"] for a in json.loads(request.body)["alerts"])
    assert names == ["run-0", "run-1", "run-2"]
    assert {n.status for n in Notification.objects.all()} == {NotificationStatus.SENT}
    assert [delivery.deliver(n.pk) for n in notifications[1:]] == ["not due or not ours"] * 2


def test_a_delivery_whose_worker_died_is_taken_again_after_its_lease(world, hook, receiver):
    (notification,) = _fail_runs(world, hook, group_wait=0)
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.SENDING, lease_until=timezone.now() + timedelta(minutes=1)
    )
    assert delivery.deliver(notification.pk) == "not due or not ours"  # still leased
    Notification.objects.filter(pk=notification.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert delivery.deliver(notification.pk) == "sent 1"


def test_a_late_failure_after_the_lease_ran_out_does_not_undo_the_next_attempt(
    world, hook, receiver
):
    (notification,) = _fail_runs(world, hook, group_wait=0)
    stalled = delivery.claim(notification.pk)  # attempt 1, whose worker then stalls
    Notification.objects.filter(pk=notification.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert delivery.deliver(notification.pk) == "sent 1"  # attempt 2, another worker
    late = TransportError("timed out", retryable=True)
    assert delivery._failed(stalled, hook, late).startswith("stale")
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.last_error) == ("sent", 2, "")


def test_the_sweep_finds_what_the_broker_lost(world, hook, receiver):
    (notification,) = _fail_runs(world, hook, group_wait=0)
    assert delivery.sweep() == 0  # just written: its task is on its way
    Notification.objects.filter(pk=notification.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=2)
    )
    assert delivery.sweep() == 1


def test_a_test_message_is_sent_once_and_logged(world, hook, receiver):
    receiver.script(Reply(status=500))
    _team, role = selectors.team_get_for_user(world.owner.user, "acme")
    failed = services.destination_test(destination=hook, role=role)
    assert (failed.status, failed.event, failed.attempts) == ("failed", "test", 1)
    sent = services.destination_test(destination=hook, role=role)
    assert sent.status == "sent"
    assert json.loads(receiver.requests[-1].body)["event"] == "test"
    assert len(receiver.requests) == 2  # no retry of the failed one


def test_a_private_address_is_refused_at_send_time_too(world, hook, receiver, settings):
    (notification,) = _fail_runs(world, hook, group_wait=0)
    settings.LABBOOK = {**settings.LABBOOK, "ALERTS_ALLOW_PRIVATE_WEBHOOKS": False}
    assert delivery.deliver(notification.pk).startswith("failed")
    notification.refresh_from_db()
    assert "loopback" in notification.last_error
    assert receiver.requests == []


# --- First at once, followers batched; in order; each message its own state -----------------


def test_the_first_failure_of_a_rule_goes_at_once_and_later_ones_wait_to_go_together(
    world, hook, receiver
):
    """With the default group_wait (30 s) the first failed run is not held back."""
    (first,) = _fail_runs(world, hook)  # the rule's defaults
    assert first.next_attempt_at <= timezone.now()
    assert delivery.deliver(first.pk) == "sent 1"
    for i in (1, 2):
        run = tracking_services.run_create(user=world.owner.user, project=world.project)
        tracking_services.run_update(run=run, data={"status": "failed", "error": f"OOM {i}"})
    followers = list(Notification.objects.exclude(pk=first.pk).order_by("pk"))
    wait = (followers[0].next_attempt_at - followers[0].created_at).total_seconds()
    assert wait == 30
    assert followers[1].next_attempt_at == followers[0].next_attempt_at  # joins the batch
    assert delivery.deliver(followers[0].pk) == "not due or not ours"
    _due(followers[0])
    assert delivery.deliver(followers[0].pk) == "sent 2"  # the other follower joins
    assert len(receiver.requests) == 2


def _threshold_rule(world: World, hook: Destination) -> None:
    project = selectors.project_get_for_user(world.owner.user, "acme/mnist")
    data = {
        "name": "loss high",
        "trigger": "metric_threshold",
        "params": {"key": "loss", "op": ">", "value": 5},
        "destinations": [hook.pk],
        "group_wait": 0,
    }
    services.rule_create(user=world.owner.user, project=project, data=data)


def _log(run, step: int, value: float) -> None:
    metrics_ingest(run=run, points=[Point("loss", step, value, 1_764_150_000.0 + step)])


def test_a_resolve_never_overtakes_its_fire_and_each_message_tells_its_own_state(
    world, hook, receiver
):
    """The fired message fails once and is retried after the resolve: fired still goes first."""
    _threshold_rule(world, hook)
    receiver.script(Reply(status=503), Reply(status=200), Reply(status=200))
    run = tracking_services.run_create(user=world.owner.user, project=world.project, name="r")
    _log(run, 1, 9.0)
    (fired,) = Notification.objects.all()
    assert delivery.deliver(fired.pk).startswith("retry in")
    _log(run, 2, 1.0)  # back under the threshold: resolved while "fired" is still pending
    resolved = Notification.objects.get(event="resolved")
    assert delivery.deliver(resolved.pk) == "not due or not ours"  # waits in line
    _due(fired)
    assert delivery.deliver(fired.pk) == "sent 1"
    assert delivery.deliver(resolved.pk) == "sent 1"  # released (the task was queued again)
    bodies = [json.loads(r.body) for r in receiver.requests[1:]]
    assert [b["event"] for b in bodies] == ["alert.fired", "alert.resolved"]
    assert [b["alerts"][0]["state"] for b in bodies] == ["firing", "resolved"]
    assert bodies[0]["alerts"][0]["resolved_at"] is None
    assert "resolved_with" not in bodies[0]["alerts"][0]["values"]
    assert bodies[1]["alerts"][0]["resolved_at"] is not None
