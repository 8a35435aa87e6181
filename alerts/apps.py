from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from alerts import evaluation, tasks  # noqa: F401 - tasks: registered, queued by name

        evaluation.connect()
