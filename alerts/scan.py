"""The periodic scan (Celery beat, every ``ALERTS_SCAN_SECONDS``): stalls, hangs, crashes,
reminders.

A stall is a run that stopped talking (no heartbeat, no write); a hang is a
run that still talks but stopped logging metrics (``run_no_progress``): a
deadlocked training loop whose SDK thread keeps sending heartbeats, or one
whose only points are the SDK's machine readings (``system/*``).

A run's deadline is its ``last_seen_at`` plus a rule's ``after_seconds``, so
"which runs are past due" is a range scan of the (status, last_seen_at)
index, not a walk over every run. Nothing here needs a lock to be safe when
two beats or workers scan at once: firing is idempotent (one open alert per
fingerprint), marking crashed is a compare-and-set on the run, and a reminder
is sent only by the scan that moves ``last_notified_at`` forward.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import F, Max, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts import expected, firing, personal
from alerts.evaluation import applies
from alerts.models import Alert, AlertRule, AlertState, NotificationEvent, Trigger
from tracking import services as tracking_services
from tracking.models import SYSTEM_KEY_PREFIX, Run, RunStatus

BATCH = 1000  # runs handled per rule per scan; the next scan takes the rest


@dataclass
class ScanResult:
    stalled: int = 0
    recovered: int = 0
    hung: int = 0
    progressing: int = 0
    missed: int = 0  # expected runs that did not start
    arrived: int = 0  # ... and then did
    crashed: int = 0
    reminded: int = 0


def scan(now: datetime | None = None) -> ScanResult:
    now = now or timezone.now()
    result = ScanResult()
    result.stalled = _fire_stalls(now)
    result.recovered = _resolve_stalls(now)
    personal.ensure_hang_rules()  # users' own run_no_progress rules, where their runs are
    result.hung = _fire_hangs(now)
    result.progressing = _resolve_hangs()
    result.missed = _fire_missed(now)
    result.arrived = _resolve_arrived()
    result.crashed = _mark_crashed(now)
    result.reminded = _remind(now)
    return result


def _after(rule: AlertRule) -> timedelta:
    return timedelta(seconds=rule.params["after_seconds"])


def _fire_stalls(now: datetime) -> int:
    fired = 0
    for rule in AlertRule.objects.filter(trigger=Trigger.RUN_STALLED, enabled=True):
        silent = (
            Run.objects.filter(
                project_id=rule.project_id,
                status=RunStatus.RUNNING,
                last_seen_at__lt=now - _after(rule),
            )
            .select_related("project__team")
            .prefetch_related("tag_rows")
            .order_by("last_seen_at")[:BATCH]
        )
        for run in silent:
            if applies(rule, run) and firing.open_alert(rule, run) is None:
                quiet = int((now - run.last_seen_at).total_seconds())
                summary = f"{run.name} has been silent for {quiet // 60} min"
                values = {"last_seen_at": run.last_seen_at.isoformat(), "silent_seconds": quiet}
                fired += firing.fire(rule=rule, run=run, summary=summary, values=values) is not None
    return fired


def _resolve_stalls(now: datetime) -> int:
    """A stalled run that reported again, or ended, resolves its stall alert."""
    resolved = 0
    open_stalls = Alert.objects.filter(
        state=AlertState.FIRING, rule__trigger=Trigger.RUN_STALLED
    ).select_related("rule", "run")
    for alert in open_stalls:
        run = alert.run
        if run is None:  # stall alerts are about a run; the column allows none for others
            continue
        back = run.status == RunStatus.RUNNING and run.last_seen_at >= now - _after(alert.rule)
        if back or run.status != RunStatus.RUNNING:
            values = {"status": run.status, "last_seen_at": run.last_seen_at.isoformat()}
            resolved += firing.resolve(rule=alert.rule, run=run, values=values) is not None
    return resolved


def with_progress(
    runs: QuerySet[Run], key: str, *, before: datetime | None = None
) -> QuerySet[Run]:
    """``runs`` annotated with ``progressed_at``: when the server last stored a point of
    ``key`` (any key but the machine readings when ``key`` is ""), or the run's start;
    only those that progressed ``before`` that moment if given."""
    series = (
        Q(metric_series__key=key) if key else ~Q(metric_series__key__startswith=SYSTEM_KEY_PREFIX)
    )
    last = Coalesce(Max("metric_series__received_at", filter=series), F("created_at"))
    if before is None:
        return runs.annotate(progressed_at=last)
    return runs.annotate(progressed_at=last).filter(progressed_at__lt=before)


def _fire_hangs(now: datetime) -> int:
    """One query per (project, key) however many rules watch it: each rule then takes the
    runs past its own deadline from the rows read for the most impatient one."""
    watching: dict[tuple[int, str], list[AlertRule]] = defaultdict(list)
    for rule in AlertRule.objects.filter(trigger=Trigger.RUN_NO_PROGRESS, enabled=True):
        watching[rule.project_id, rule.params.get("key", "")].append(rule)
    fired = 0
    for (project_id, key), rules in watching.items():
        loosest = now - min(_after(rule) for rule in rules)
        running = Run.objects.filter(
            project_id=project_id, status=RunStatus.RUNNING, created_at__lt=loosest
        )
        hung = list(
            with_progress(running, key, before=loosest)
            .select_related("project__team")
            .prefetch_related("tag_rows")
            .order_by("progressed_at")[:BATCH]
        )
        for rule in rules:
            deadline = now - _after(rule)
            for run in hung:
                late = run.created_at < deadline and progressed_at(run) < deadline
                if late and applies(rule, run) and firing.open_alert(rule, run) is None:
                    fired += _fire_hang(rule, run, key, now) is not None
    return fired


def progressed_at(run: Run) -> datetime:
    """The ``progressed_at`` that :func:`with_progress` annotated ``run`` with."""
    value: datetime = run.progressed_at  # type: ignore[attr-defined]
    return value


def _fire_hang(rule: AlertRule, run: Run, key: str, now: datetime) -> Alert | None:
    last = progressed_at(run)
    quiet = int((now - last).total_seconds())
    # Heartbeats within half the rule's delay: the process lives, its loop does not move.
    alive = run.last_seen_at > now - _after(rule) / 2
    what = key or "metric"
    summary = f"{run.name} has logged no {what} for {quiet // 60} min" + (
        ", though its process still reports" if alive else ""
    )
    values = {
        "metric": what,
        "last_point_at": last.isoformat(),
        "quiet_seconds": quiet,
        "last_seen_at": run.last_seen_at.isoformat(),
    }
    return firing.fire(rule=rule, run=run, summary=summary, values=values)


def _resolve_hangs() -> int:
    """A hung run that logged again, or ended, resolves its alert."""
    resolved = 0
    open_hangs = Alert.objects.filter(
        state=AlertState.FIRING, rule__trigger=Trigger.RUN_NO_PROGRESS
    ).select_related("rule", "run")
    for alert in open_hangs:
        if alert.run_id is None:
            continue
        key = alert.rule.params.get("key", "")
        run = with_progress(Run.objects.filter(pk=alert.run_id), key).get()
        then = alert.values.get("last_point_at")
        moved = then is None or progressed_at(run) > datetime.fromisoformat(then)
        if moved or run.status != RunStatus.RUNNING:
            values = {"status": run.status, "last_point_at": progressed_at(run).isoformat()}
            resolved += firing.resolve(rule=alert.rule, run=run, values=values) is not None
    return resolved


def _fire_missed(now: datetime) -> int:
    """``run_expected`` rules whose latest scheduled time passed its grace with no run.

    Each scheduled time is judged once (its alert's fingerprint names it), and
    not while an earlier miss of the rule is still open: a job broken for a week
    is one incident until a run comes.
    """
    fired = 0
    for rule in AlertRule.objects.filter(trigger=Trigger.RUN_EXPECTED, enabled=True):
        slot = expected.due_slot(rule.params, now)
        if slot is None or slot.opens < rule.created_at:  # not a whole window under this rule
            continue
        condition = f"expected:{slot.at.isoformat()}"
        judged = Alert.objects.filter(rule=rule).filter(
            Q(fingerprint=firing.fingerprint(rule, None, condition)) | Q(state=AlertState.FIRING)
        )
        if judged.exists() or _arrived(rule, after=slot.opens, until=slot.closes) is not None:
            continue
        local = slot.at.astimezone(ZoneInfo(rule.params["timezone"]))
        summary = f"No run of {rule.name} started by {local:%Y-%m-%d %H:%M} {local.tzname()}"
        values = {
            "scheduled_at": slot.at.isoformat(),
            "window_opened_at": slot.opens.isoformat(),
            "expected_by": slot.closes.isoformat(),
            "cron": rule.params["cron"],
            "timezone": rule.params["timezone"],
        }
        fired += (
            firing.fire(rule=rule, run=None, condition=condition, summary=summary, values=values)
            is not None
        )
    return fired


def _arrived(rule: AlertRule, *, after: datetime, until: datetime | None = None) -> Run | None:
    """The first run of the rule's project, through its filters, started in the window."""
    runs = Run.objects.filter(project_id=rule.project_id, created_at__gt=after)
    if until is not None:
        runs = runs.filter(created_at__lte=until)
    if rule.tags:
        runs = runs.prefetch_related("tag_rows")
    return next((run for run in runs.order_by("created_at")[:BATCH] if applies(rule, run)), None)


def _resolve_arrived() -> int:
    """A missed expected run resolves when a matching run starts, however late."""
    resolved = 0
    missing = Alert.objects.filter(
        state=AlertState.FIRING, rule__trigger=Trigger.RUN_EXPECTED
    ).select_related("rule")
    for alert in missing:
        opened = datetime.fromisoformat(alert.values["window_opened_at"])
        run = _arrived(alert.rule, after=opened)
        if run is not None:
            values = {"run": run.pk, "run_name": run.name, "started_at": run.created_at.isoformat()}
            condition = alert.fingerprint.split(":", 2)[2]
            resolved += (
                firing.resolve(rule=alert.rule, run=None, condition=condition, values=values)
                is not None
            )
    return resolved


def _mark_crashed(now: datetime) -> int:
    """Running runs silent for ``RUN_CRASH_AFTER_SECONDS`` become ``crashed``."""
    cutoff = now - timedelta(seconds=settings.LABBOOK["RUN_CRASH_AFTER_SECONDS"])
    silent = Run.objects.filter(status=RunStatus.RUNNING, last_seen_at__lt=cutoff)
    return sum(
        tracking_services.run_mark_crashed(run=run, silent_since=cutoff)
        for run in silent.order_by("last_seen_at")[:BATCH]
    )


def _remind(now: datetime) -> int:
    """Alerts still firing after their rule's ``repeat_interval`` notify again.

    An acknowledged alert does not: someone is on it (``alerts.services.alert_acknowledge``).
    """
    reminded = 0
    due = Alert.objects.filter(
        state=AlertState.FIRING,
        acknowledged_at__isnull=True,
        rule__repeat_interval__isnull=False,
        rule__enabled=True,
    ).select_related("rule", "run")
    for alert in due:
        last = alert.last_notified_at or alert.fired_at
        interval = alert.rule.repeat_interval
        if interval is None:  # not due: the query above left such rules out
            continue
        if last > now - timedelta(seconds=interval):
            continue
        moved = Alert.objects.filter(
            pk=alert.pk, last_notified_at=alert.last_notified_at, acknowledged_at__isnull=True
        ).update(last_notified_at=now, repeats=alert.repeats + 1)
        if moved:  # this scan won the reminder
            firing.notify(alert, NotificationEvent.REPEAT)
            reminded += 1
    return reminded
