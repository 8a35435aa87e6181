from __future__ import annotations

from django.apps import AppConfig
from django.urls import register_converter


class KernelConfig(AppConfig):
    name = "kernel"
    verbose_name = "Labbook kernel"

    def ready(self) -> None:
        from kernel.ids import IdConverter

        register_converter(IdConverter, "id")  # before any URLconf is read
