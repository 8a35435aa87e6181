"""Celery tasks of tracking: thin wrappers over services (scheduled in reports_app/celery.py)."""

from __future__ import annotations

from celery import shared_task

from tracking.ingest import ingest_batches_prune


@shared_task(name="tracking.ingest_batches_prune")
def prune_ingest_batches() -> int:
    return ingest_batches_prune()
