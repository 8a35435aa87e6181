"""Queuing a delivery, by task name: the alert logic never imports its Celery tasks.

``alerts.tasks`` imports the logic (``delivery``, ``scan``); the logic queues
work by the name the task is registered under (``kernel.tasks``), so no
import goes back up.
"""

from __future__ import annotations

from kernel.tasks import queue_task

DELIVER_NOTIFICATION = "alerts.deliver_notification"
SWEEP_OUTBOX = "alerts.sweep_outbox"
SCAN = "alerts.scan"


def queue_delivery(notification_id: int, *, countdown: float = 0) -> None:
    queue_task(DELIVER_NOTIFICATION, notification_id, countdown=countdown)
