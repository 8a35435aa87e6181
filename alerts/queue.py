"""Queuing a delivery, by task name: the alert logic never imports its Celery tasks.

``alerts.tasks`` imports the logic (``delivery``, ``scan``); the logic queues
work by the name the task is registered under, so no import goes back up.
Celery's signature calls the registered task where it is loaded (so tests'
eager mode still applies) and otherwise sends the message by name.
"""

from __future__ import annotations

from celery import current_app

DELIVER_NOTIFICATION = "alerts.deliver_notification"
SWEEP_OUTBOX = "alerts.sweep_outbox"
SCAN = "alerts.scan"


def queue_delivery(notification_id: int, *, countdown: float = 0) -> None:
    signature = current_app.signature(DELIVER_NOTIFICATION, args=(notification_id,))
    signature.apply_async(countdown=countdown)
