"""Celery tasks of alerting: thin, they take ids and call ``alerts.delivery``.

``acks_late`` + ``reject_on_worker_lost``: a worker killed mid-delivery leaves
the message on the broker for another worker, whose claim finds the row
``sending`` with a live lease and waits for it to expire (or ``sent``, and
stops): delivered at least once, and in practice once.
"""

from __future__ import annotations

from celery import shared_task

from alerts import delivery, queue
from alerts import scan as scanning


@shared_task(
    name=queue.DELIVER_NOTIFICATION,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def deliver_notification(notification_id: int) -> str:
    return delivery.deliver(notification_id)


@shared_task(name=queue.SWEEP_OUTBOX, ignore_result=True)
def sweep_outbox() -> int:
    return delivery.sweep()


@shared_task(name=queue.SCAN, ignore_result=True)
def scan() -> str:
    return str(scanning.scan())
