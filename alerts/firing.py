"""Opening and resolving alerts, and writing their notifications (the outbox).

An alert and its pending notifications are written in one transaction, and
each notification's delivery task is queued only when that transaction
commits: a crash in between loses nothing (the sweep re-queues pending rows)
and never sends about an alert that was rolled back. The open-fingerprint
unique constraint makes two evaluations racing on one condition open one alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    Notification,
    NotificationEvent,
    NotificationStatus,
    Silence,
    Trigger,
)
from alerts.queue import queue_delivery
from tracking.models import Run

logger = logging.getLogger(__name__)

# Alerts a failed run makes moot: its stall and metric alerts resolve quietly.
INHIBITED_BY_FAILURE = (
    Trigger.RUN_STALLED,
    Trigger.RUN_NO_PROGRESS,
    Trigger.METRIC_THRESHOLD,
    Trigger.METRIC_NAN,
    Trigger.METRIC_STAGNANT,
    Trigger.METRIC_WINDOW,
    Trigger.METRIC_CHANGE,
    Trigger.METRIC_ZSCORE,
)


def fingerprint(rule: AlertRule, run: Run | None, condition: str = "") -> str:
    """``rule:run:condition``; ``rule::condition`` for an alert about no run (an expected one)."""
    return f"{rule.pk}:{run.pk if run is not None else ''}:{condition}"


def open_alert(rule: AlertRule, run: Run | None, condition: str = "") -> Alert | None:
    return Alert.objects.filter(
        fingerprint=fingerprint(rule, run, condition), state=AlertState.FIRING
    ).first()


def open_fingerprints(run: Run) -> set[str]:
    """The fingerprints of the run's firing alerts, in one query.

    A batch of points checks all its rules against this set: almost never is
    one open, so resolving (a locking read) is skipped for the rest.
    """
    firing = Alert.objects.filter(run_id=run.pk, state=AlertState.FIRING)
    return set(firing.values_list("fingerprint", flat=True))


def fire(
    *, rule: AlertRule, run: Run | None, summary: str, values: dict[str, Any], condition: str = ""
) -> Alert | None:
    """Open the alert of (rule, run, condition) and notify, unless it is already open."""
    with transaction.atomic():
        if open_alert(rule, run, condition) is not None:
            return None
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    rule=rule,
                    run=run,
                    fingerprint=fingerprint(rule, run, condition),
                    summary=summary[:300],
                    values=values,
                )
        except IntegrityError:  # a concurrent evaluation opened it first
            return None
        notify(alert, NotificationEvent.FIRED)
        if rule.trigger == Trigger.RUN_FAILED and run is not None:
            _inhibit(run, by=alert)
    return alert


def resolve(
    *,
    rule: AlertRule,
    run: Run | None,
    condition: str = "",
    values: dict[str, Any] | None = None,
) -> Alert | None:
    """Resolve the open alert of (rule, run, condition), telling its destinations if asked."""
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update()
            .filter(fingerprint=fingerprint(rule, run, condition), state=AlertState.FIRING)
            .first()
        )
        if alert is None:
            return None
        _close(alert, values)
        if rule.notify_on_resolve:
            notify(alert, NotificationEvent.RESOLVED)
    return alert


def _close(alert: Alert, values: dict[str, Any] | None) -> None:
    alert.state = AlertState.RESOLVED
    alert.resolved_at = timezone.now()
    if values:
        alert.values = {**alert.values, "resolved_with": values}
    alert.save(update_fields=["state", "resolved_at", "values"])


def _inhibit(run: Run, *, by: Alert) -> None:
    """A failed run's stall and metric alerts resolve quietly: the failure says it all."""
    moot = Alert.objects.select_for_update().filter(
        run=run, state=AlertState.FIRING, rule__trigger__in=INHIBITED_BY_FAILURE
    )
    for alert in moot:
        _close(alert, {"inhibited_by": by.pk})


def active_silence(alert: Alert) -> Silence | None:
    rule = alert.rule
    scope = Q(project_id=rule.project_id) | Q(rule_id=rule.pk)
    if alert.run_id is not None:  # never Q(run_id=None): that is every project's silences
        scope |= Q(run_id=alert.run_id)
    return Silence.objects.filter(scope, until__gt=timezone.now()).first()


def notify(alert: Alert, event: str) -> list[Notification]:
    """One notification per enabled destination of the rule; queued when the transaction commits.

    A silenced notification is written as such: the log shows what was muted.
    """
    rule = alert.rule
    destinations = list(rule.destinations.filter(enabled=True))
    if not destinations:
        return []
    now = timezone.now()
    status = NotificationStatus.SILENCED if active_silence(alert) else NotificationStatus.PENDING
    slots = {d.pk: _slot(alert, event, d.pk, now) for d in destinations}
    rows = Notification.objects.bulk_create(
        Notification(
            alert=alert,
            destination=destination,
            event=event,
            status=status,
            created_at=now,
            next_attempt_at=slots[destination.pk].due,
        )
        for destination in destinations
    )
    Alert.objects.filter(pk=alert.pk).update(last_notified_at=now)
    if status == NotificationStatus.PENDING:
        for row in rows:
            slot = slots[row.destination_id]
            if slot.queue:
                enqueue(row.pk, countdown=(slot.due - now).total_seconds())
    return rows


@dataclass(frozen=True)
class Slot:
    """When a notification is due, and whether it needs a delivery task of its own."""

    due: datetime
    queue: bool = True  # False: a batch already queued for ``due`` takes it along


def _slot(alert: Alert, event: str, destination_id: int, now: datetime) -> Slot:
    """Fired alerts: the first of a burst goes at once, the rest wait ``group_wait`` together.

    The first failed run of a quiet rule reaches the team at once. An alert
    of the same rule firing within ``group_wait`` of another waits that long;
    one firing while such a batch is waiting joins it. The batch's task takes
    every notification of its group due by then (``delivery.claim``): the 39
    runs that die with the first one arrive as one message, not 39.
    """
    window = timedelta(seconds=alert.rule.group_wait)
    if event != NotificationEvent.FIRED or not window:
        return Slot(now)
    waiting = (
        Notification.objects.filter(
            alert__rule_id=alert.rule_id,
            destination_id=destination_id,
            event=NotificationEvent.FIRED,
            status=NotificationStatus.PENDING,
            attempts=0,  # a batch waiting out its group_wait, not a retry's backoff
            next_attempt_at__gt=now,
        )
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if waiting is not None:
        return Slot(waiting, queue=False)
    recent = Alert.objects.filter(rule_id=alert.rule_id, fired_at__gt=now - window)
    return Slot(now + window) if recent.exclude(pk=alert.pk).exists() else Slot(now)


def enqueue(notification_id: int, *, countdown: float = 0) -> None:
    """Queue the delivery after commit; a broker that is down only delays it (the sweep)."""

    def send() -> None:
        try:
            queue_delivery(notification_id, countdown=countdown)
        except Exception:  # the broker is down: the sweep re-queues pending rows
            logger.warning("could not queue notification %s", notification_id, exc_info=True)

    transaction.on_commit(send)
