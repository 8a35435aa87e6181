"""The runtime's one table: the heartbeats of the background processes."""

from __future__ import annotations

from django.db import models


class Heartbeat(models.Model):
    """The last sign of life of a background process, read by ``/healthz``.

    Workers and beat may run on other machines than the web server, so they
    leave their heartbeat where every process can read it: here. One row per
    process name, overwritten every few seconds (``labbook.health``);
    ``seen_at`` is the database's clock, so clocks of different machines never
    disagree about how old a heartbeat is.
    """

    role = models.CharField(max_length=16, help_text='"worker" or "beat".')
    name = models.CharField(max_length=200, help_text="The Celery node name or beat@host.")
    pid = models.PositiveIntegerField()
    seen_at = models.DateTimeField()

    class Meta:
        db_table = "reports_app_heartbeat"  # made by the reports app before it moved here
        constraints = [
            models.UniqueConstraint(fields=["role", "name"], name="heartbeat_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.name} (pid {self.pid})"
