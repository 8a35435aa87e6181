"""Migration tracking/0007 numbers the runs already stored, per project, in the order they
were created: each keeps the colour it will have from now on.

In a subprocess, on its own SQLite file, and on a throwaway PostgreSQL database when the
run uses PostgreSQL (the fixture of ``test_points_migration``).
"""

from __future__ import annotations

import pytest

from tests.migrations import run_migration_script

pytestmark = pytest.mark.subprocess

SCRIPT = """
import json
from datetime import UTC, datetime, timedelta

import django

django.setup()
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

call_command("migrate", "tracking", "0006", verbosity=0)
old = MigrationExecutor(connection).loader.project_state(
    ("tracking", "0006_text_limits_on_fields")
).apps
Team, Project, Run = (old.get_model("tracking", name) for name in ("Team", "Project", "Run"))
team = Team.objects.create(slug="t", name="t")
a, b = (Project.objects.create(team=team, slug=slug) for slug in ("a", "b"))
t0 = datetime(2026, 1, 1, tzinfo=UTC)
# Created out of id order in a (an import keeps the original times): the times decide.
for name, project, hours in [("a-late", a, 5), ("b-0", b, 1), ("a-early", a, 1), ("a-mid", a, 3)]:
    Run.objects.create(project=project, name=name, created_at=t0 + timedelta(hours=hours))
call_command("migrate", verbosity=0)

from tracking.models import Run

print(json.dumps(dict(Run.objects.values_list("name", "project_index"))))
"""


def test_stored_runs_are_numbered_per_project_by_creation_time(
    database_env: dict[str, str],
):
    found = run_migration_script(SCRIPT, database_env)
    assert found == {"a-early": 0, "a-mid": 1, "a-late": 2, "b-0": 0}
