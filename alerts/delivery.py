"""Delivering notifications: claim, group, send through the transport, record every attempt.

A task first claims its notification by compare-and-set (``pending`` →
``sending`` with a lease), so a redelivered task never sends a ``sent`` one
again, and a ``sending`` one whose worker died is claimed again once its lease
ran out. The claim takes the notification's whole group: the other pending
notifications of the same rule, destination and event that are due — one
message for a burst of alerts. A destination hears about one alert in order:
a notification waits while an earlier one of its alert to the same
destination is still on its way (a "resolved" never overtakes its "fired"),
and is queued again once that one is done. Each message tells the state its
event had, not the alert's state when it happens to be sent. Retryable
failures go back to ``pending`` with exponential backoff and jitter (or the
server's Retry-After) until ``ALERTS_MAX_ATTEMPTS``; the rest are ``failed``
with the reason kept.
"""

from __future__ import annotations

import functools
import logging
import operator
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from alerts import firing, snapshot
from alerts.actions import links_for
from alerts.models import (
    Alert,
    AlertState,
    Destination,
    Notification,
    NotificationEvent,
    NotificationStatus,
)
from alerts.queue import queue_delivery
from alerts.reach import reach
from alerts.transports import transport_for
from alerts.transports.base import (
    MAX_CHARTS,
    AlertInfo,
    Delivery,
    Message,
    RunInfo,
    TransportError,
)
from kernel.http import absolute_url
from tracking import console
from tracking.models import FAILED_STATUSES, Run
from tracking.validation import float_to_json

if TYPE_CHECKING:
    from django.db.models.expressions import Combinable, NegatedExpression

logger = logging.getLogger(__name__)

EVENTS = {"fired": "alert.fired", "resolved": "alert.resolved", "repeat": "alert.repeat"}
TRACEBACK_LINES = 15


def _claimable(now: datetime) -> Q:
    return Q(status=NotificationStatus.PENDING) | Q(
        status=NotificationStatus.SENDING, lease_until__lt=now
    )


ON_ITS_WAY = (NotificationStatus.PENDING, NotificationStatus.SENDING)


def _next_in_line() -> NegatedExpression[Combinable]:
    """No earlier notification of the same alert to the same destination is still on its way."""
    earlier = Notification.objects.filter(
        alert_id=OuterRef("alert_id"),
        destination_id=OuterRef("destination_id"),
        pk__lt=OuterRef("pk"),
        status__in=ON_ITS_WAY,
    )
    return ~Exists(earlier)


def _take(notification_id: int, now: datetime, *, due_by: datetime) -> bool:
    """Compare-and-set one notification to ``sending``; False if someone else has it.

    Also False while an earlier notification of its alert to its destination
    is on its way: ``_release_followers`` queues it again once that is done.
    """
    rows = Notification.objects.filter(
        _claimable(now), _next_in_line(), pk=notification_id, next_attempt_at__lte=due_by
    )
    taken = rows.update(
        status=NotificationStatus.SENDING,
        lease_until=now + timedelta(seconds=settings.LABBOOK["ALERTS_LEASE_SECONDS"]),
        attempts=F("attempts") + 1,
    )
    return taken == 1


def claim(notification_id: int) -> list[Notification]:
    """The notification and the due siblings of its group, all now ``sending`` and ours.

    Siblings whose own ``group_wait`` has not quite run out join this message.
    """
    now = timezone.now()
    first = (
        Notification.objects.select_related("alert__rule", "destination")
        .filter(pk=notification_id)
        .first()
    )
    if first is None or not _take(first.pk, now, due_by=now):
        return []
    taken = [first.pk]
    if first.alert is not None:
        due_by = now + timedelta(seconds=first.alert.rule.group_wait)
        siblings = Notification.objects.filter(
            _claimable(now),
            destination_id=first.destination_id,
            event=first.event,
            alert__rule_id=first.alert.rule_id,
        ).exclude(pk=first.pk)
        taken += [
            pk for pk in siblings.values_list("pk", flat=True) if _take(pk, now, due_by=due_by)
        ]
    return list(
        Notification.objects.filter(pk__in=taken)
        .select_related(
            "destination__team", "alert__rule__project__team", "alert__run__project__team"
        )
        .prefetch_related("alert__run__tag_rows", "alert__run__metric_series")
        .order_by("pk")
    )


# --- The message ----------------------------------------------------------------------------


def run_info(run: Run) -> RunInfo:
    lines = run.traceback.rstrip().splitlines()[-TRACEBACK_LINES:] if run.traceback else []
    series = [s for s in run.metric_series.all() if s.count][:20]  # prefetched by ``claim``
    metrics = {s.key: float_to_json(s.last_value) for s in series}
    return RunInfo(
        id=run.pk,
        name=run.name,
        status=run.status,
        url=absolute_url(run.get_absolute_url()),
        project=run.project.full_name,
        tags=[tag.name for tag in run.tag_rows.all()],
        error=run.error,
        traceback_tail="\n".join(lines),
        console_tail="\n".join(console.last_lines(run.pk)) if run.status in FAILED_STATUSES else "",
        metrics=metrics,
    )


def alert_info(alert: Alert, event: str) -> AlertInfo:
    """The alert as ``event`` left it: a late "fired" message still says firing."""
    resolved_at = alert.resolved_at if event == NotificationEvent.RESOLVED else None
    resolved = resolved_at is not None
    values = dict(alert.values)
    if not resolved:
        values.pop("resolved_with", None)
    return AlertInfo(
        id=alert.pk,
        rule=alert.rule.name,
        trigger=alert.rule.trigger,
        state=AlertState.RESOLVED if resolved else AlertState.FIRING,
        summary=alert.summary,
        values=values,
        fired_at=alert.fired_at.isoformat(),
        resolved_at=resolved_at.isoformat() if resolved_at is not None else None,
        url=absolute_url(
            alert.run.get_absolute_url() + "#alerts"
            if alert.run is not None
            else reverse("alert", kwargs={"alert_id": alert.pk})
        ),
        run=run_info(alert.run) if alert.run is not None else None,
        project=alert.rule.project.full_name,
        links=links_for(alert),
        chart_url=snapshot.chart_url(alert),
    )


def message_for(group: list[Notification], *, charts: bool = False) -> Message:
    """``charts``: with the PNGs of its first metric alerts, for a transport that embeds them."""
    first = group[0]
    alerts = [alert_info(n.alert, n.event) for n in group if n.alert is not None]
    drawn = [n.alert for n in group if n.alert is not None] if charts else []
    project = alerts[0].project if alerts else first.destination.team.slug
    single = alerts[0] if len(alerts) == 1 else None
    url = absolute_url("/") if single is None else single.run.url if single.run else single.url
    return Message(
        notification_id=first.pk,
        event=EVENTS.get(first.event, "test"),
        project=project,
        alerts=alerts,
        url=url,
        charts=snapshot.chart_images(drawn, most=MAX_CHARTS),
    )


def destination_config(destination: Destination) -> dict[str, Any]:
    """The config the transport sends with; "all team members" becomes their addresses, a
    personal email destination its owner's address now.

    A personal destination whose owner left the team sends nothing: TransportError, final.
    """
    config = dict(destination.config)
    if destination.owner_id is not None:
        found = reach(destination)
        if found.nobody:
            raise TransportError(f"personal destination: {found.nobody}", retryable=False)
        if config.get("user"):
            config["resolved_addresses"] = list(found.recipients)
    elif config.get("team_members"):
        config["resolved_addresses"] = list(reach(destination).recipients)
    return config


# --- Sending and recording ----------------------------------------------------------------------


def deliver(notification_id: int) -> str:
    """Send one notification (and its group); answers what happened, for the task's log."""
    group = claim(notification_id)
    if not group:
        return "not due or not ours"
    destination = group[0].destination
    try:
        transport = transport_for(destination.kind)
        message = message_for(group, charts=transport.embeds_charts)
        delivery = transport.send(message, destination_config(destination))
    except TransportError as error:
        return _failed(group, destination, error)
    except Exception as error:  # a bug in a transport must not leave rows "sending"
        logger.exception("transport %s crashed", destination.kind)
        return _failed(group, destination, TransportError(repr(error), retryable=True))
    _sent(group, destination, delivery)
    return f"sent {len(group)}"


def _sent(group: list[Notification], destination: Destination, delivery: Delivery) -> None:
    now = timezone.now()
    ids = [n.pk for n in group]
    with transaction.atomic():
        Notification.objects.filter(pk__in=ids).update(
            status=NotificationStatus.SENT,
            sent_at=now,
            response_code=delivery.status_code,
            latency_ms=delivery.latency_ms,
            last_error="",
            lease_until=None,
        )
        Destination.objects.filter(pk=destination.pk).update(last_success_at=now, broken=False)
        _release_followers(group, destination)


def backoff(attempts: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return max(0.0, retry_after)
    base: float = settings.LABBOOK["ALERTS_RETRY_BASE_SECONDS"]
    doubling: int = 2 ** (attempts - 1)  # attempts >= 1; typeshed's int ** int is Any
    return base * doubling * random.uniform(0.5, 1.5)  # noqa: S311 - jitter


def still_ours(group: list[Notification]) -> Q:
    """Rows this attempt still holds: ``sending`` at the attempt count it claimed them with.

    A worker that stalls past its lease may find its rows taken over (and
    perhaps delivered) by another; its late failure must not undo that.
    """
    claimed = functools.reduce(operator.or_, (Q(pk=n.pk, attempts=n.attempts) for n in group))
    return claimed & Q(status=NotificationStatus.SENDING)


def _failed(group: list[Notification], destination: Destination, error: TransportError) -> str:
    now = timezone.now()
    attempts = max(n.attempts for n in group)
    final = not error.retryable or attempts >= settings.LABBOOK["ALERTS_MAX_ATTEMPTS"]
    delay = backoff(attempts, error.retry_after)
    fields = {"last_error": error.message[:2000], "response_code": error.status_code}
    with transaction.atomic():
        held = Notification.objects.select_for_update().filter(still_ours(group))
        ids = list(held.values_list("pk", flat=True))
        if not ids:
            return f"stale: another attempt took over after the lease ran out ({error.message})"
        rows = Notification.objects.filter(pk__in=ids)
        if final:
            rows.update(status=NotificationStatus.FAILED, lease_until=None, **fields)
            _release_followers(group, destination)
        else:
            rows.update(
                status=NotificationStatus.PENDING,
                next_attempt_at=now + timedelta(seconds=delay),
                lease_until=None,
                **fields,
            )
            for notification_id in ids:
                firing.enqueue(notification_id, countdown=delay)
        Destination.objects.filter(pk=destination.pk).update(
            last_error=error.message[:2000], last_error_at=now, broken=error.broken
        )
    verdict = "failed" if final else f"retry in {delay:.1f}s"
    return f"{verdict}: {error.message}"


def _release_followers(group: list[Notification], destination: Destination) -> None:
    """Queue the notifications that waited in line behind this group's (see ``_take``)."""
    alert_ids = {n.alert_id for n in group if n.alert_id is not None}
    if not alert_ids:
        return
    now = timezone.now()
    waiting = Notification.objects.filter(
        alert_id__in=alert_ids,
        destination_id=destination.pk,
        status=NotificationStatus.PENDING,
        pk__gt=min(n.pk for n in group),
    ).values_list("pk", "next_attempt_at")
    for notification_id, due in waiting:
        firing.enqueue(notification_id, countdown=max((due - now).total_seconds(), 0))


def sweep() -> int:
    """Re-queue what the outbox still holds: pending a sweep interval past due, expired leases."""
    now = timezone.now()
    stuck_since = now - timedelta(seconds=settings.LABBOOK["ALERTS_SWEEP_SECONDS"])
    stuck = Notification.objects.filter(
        Q(status=NotificationStatus.PENDING, next_attempt_at__lt=stuck_since)
        | Q(status=NotificationStatus.SENDING, lease_until__lt=now)
    ).values_list("pk", flat=True)[:1000]
    ids = list(stuck)
    for notification_id in ids:
        queue_delivery(notification_id)
    return len(ids)
