from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from alerts import evaluation, personal, tasks  # noqa: F401 - tasks: queued by name

        evaluation.connect()
        personal.connect()
