"""The Celery app. Beat schedules are declared here, next to the app.

Workers and beat also leave heartbeats in the database for ``/healthz``
(``labbook.health``): a worker from a thread started once it is ready to
consume, beat from its scheduler's tick. Both are wired here because both only
exist in Celery's processes.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

from alerts import queue as alert_tasks

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")

app = Celery("labbook")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "forget-old-batch-ids": {"task": "tracking.ingest_batches_prune", "schedule": 3600.0},
    # Notifications still pending a sweep interval after they were due: the broker lost them.
    "sweep-alert-outbox": {
        "task": alert_tasks.SWEEP_OUTBOX,
        "schedule": float(settings.LABBOOK["ALERTS_SWEEP_SECONDS"]),
    },
    # Stalled and crashed runs, reminders of alerts still firing.
    "scan-alerts": {
        "task": alert_tasks.SCAN,
        "schedule": float(settings.LABBOOK["ALERTS_SCAN_SECONDS"]),
    },
}
app.conf.beat_scheduler = "labbook.celery:HeartbeatScheduler"


@app.task(name="labbook.ping")
def ping() -> str:
    """Round trip used by health checks and tests to prove a worker consumes the queue."""
    return "pong"


# --- Heartbeats ----------------------------------------------------------------------

_worker_heartbeat: threading.Event | None = None


@worker_ready.connect
def _worker_heartbeat_start(sender: Any = None, **kwargs: Any) -> None:
    """Once the worker consumes, record that it lives, every few seconds, until it stops."""
    from labbook import health  # the Django models are ready only once the worker is

    global _worker_heartbeat
    name = getattr(sender, "hostname", None) or f"celery@{socket.gethostname()}"
    _worker_heartbeat = health.heartbeat_thread("worker", name)


@worker_shutdown.connect
def _worker_heartbeat_stop(**kwargs: Any) -> None:
    if _worker_heartbeat is not None:
        _worker_heartbeat.set()


class HeartbeatScheduler(PersistentScheduler):
    """Celery's default scheduler, which also records beat's heartbeat as it ticks.

    Beat sleeps until the next task is due, so its loop is capped at the
    heartbeat interval (else a beat with only hourly tasks would look dead);
    the heartbeat itself is throttled to one write per interval, however often
    beat ticks.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from labbook import health

        super().__init__(*args, **kwargs)
        assert self.max_interval is not None  # Celery's own __init__ has set it (300 s at most)
        self.max_interval = min(self.max_interval, health.HEARTBEAT_SECONDS)
        self._heartbeat_due = health.Throttle(health.HEARTBEAT_SECONDS)
        self._heartbeat_name = f"beat@{socket.gethostname()}"

    def tick(self, *args: Any, **kwargs: Any) -> float:
        from labbook import health

        interval = super().tick(*args, **kwargs)
        if self._heartbeat_due.due():
            health.heartbeat_record_safely("beat", self._heartbeat_name)
        return interval
