"""The Celery app. Beat schedules are declared here, next to the app."""

from __future__ import annotations

import os

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reports_app.settings")

app = Celery("labbook")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "forget-old-batch-ids": {"task": "tracking.ingest_batches_prune", "schedule": 3600.0},
    # Notifications still pending a sweep interval after they were due: the broker lost them.
    "sweep-alert-outbox": {
        "task": "alerts.sweep_outbox",
        "schedule": float(settings.LABBOOK["ALERTS_SWEEP_SECONDS"]),
    },
    # Stalled and crashed runs, reminders of alerts still firing.
    "scan-alerts": {
        "task": "alerts.scan",
        "schedule": float(settings.LABBOOK["ALERTS_SCAN_SECONDS"]),
    },
}


@app.task(name="labbook.ping")
def ping() -> str:
    """Round trip used by health checks and tests to prove a worker consumes the queue."""
    return "pong"
