from __future__ import annotations

from django.apps import AppConfig


class LabbookConfig(AppConfig):
    """The project runtime as an app: it holds ``manage.py up`` and the SQLite backend."""

    name = "labbook"
    verbose_name = "Labbook"
