"""``Heartbeat`` moved from the reports app to the runtime (labbook/0001, reports_app/0004)
without touching its table: a heartbeat written before the move is read after it.

A fresh database is migrated to reports_app 0003, given a heartbeat row, then
migrated to the end and read with today's model: in a subprocess, on its own
SQLite file, and on a throwaway PostgreSQL database when the run uses PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.migrations import run_migration_script

pytestmark = pytest.mark.subprocess

SCRIPT = """
import json

import django

django.setup()
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

call_command("migrate", "reports_app", "0003", verbosity=0)
old = MigrationExecutor(connection).loader.project_state(("reports_app", "0003_heartbeat")).apps
old.get_model("reports_app", "Heartbeat").objects.create(
    role="worker", name="celery@gpu-1", pid=4242, seen_at="2026-12-05T03:00:00Z"
)
call_command("migrate", verbosity=0)

from labbook.models import Heartbeat

beat = Heartbeat.objects.get()
Heartbeat.objects.create(role="beat", name="beat@gpu-1", pid=7, seen_at=beat.seen_at)
print(json.dumps({
    "table": Heartbeat._meta.db_table,
    "rows": list(Heartbeat.objects.order_by("role").values_list("role", "name", "pid")),
}))
"""


def test_a_heartbeat_written_before_the_move_is_read_after_it(
    database_env: dict[str, str],
):
    found = run_migration_script(SCRIPT, database_env)
    assert found["table"] == "reports_app_heartbeat"
    assert found["rows"] == [["beat", "beat@gpu-1", 7], ["worker", "celery@gpu-1", 4242]]
