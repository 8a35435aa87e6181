from __future__ import annotations

from django.apps import AppConfig


class ReportsAppConfig(AppConfig):
    name = "reports_app"
    verbose_name = "Reports"

    def ready(self) -> None:
        from reports_app import live, tasks  # noqa: F401 - tasks: registered, queued by name

        live.connect()
