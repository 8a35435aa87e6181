from __future__ import annotations

from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Tracking"

    def ready(self) -> None:
        # Register the Celery tasks in every process: logic queues them by name
        # (kernel.tasks), and eager mode runs only what is registered.
        from tracking import tasks  # noqa: F401
