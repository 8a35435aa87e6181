"""Queuing a Celery task by its registered name, so logic never imports its task module.

A feature's ``tasks.py`` imports the logic it runs; when that logic queues a
task, importing ``tasks`` back would close an import circle. A signature by
name calls the registered task where it is loaded (so eager mode in tests
still applies) and otherwise sends the message by name.
"""

from __future__ import annotations

from typing import Any

from celery import current_app


def queue_task(name: str, *args: Any, countdown: float = 0) -> None:
    current_app.signature(name, args=args).apply_async(countdown=countdown)
