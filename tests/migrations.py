"""Migrations tried on data of an older schema: a script migrates a database of its own to
an old state, writes rows through that state's models, migrates to the end and prints what
today's models read, as JSON on its last line. It runs in a subprocess (the test process's
database is already migrated), on the database ``database_env`` (tests/conftest.py) gives:
a SQLite file, or a throwaway PostgreSQL database when the run uses PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.sdk.server import ROOT

TIMEOUT = 300  # a ceiling: the whole migration history on a busy machine


def run_migration_script(script: str, env: dict[str, str]) -> Any:
    """What ``script`` printed last, as JSON; its stderr's tail when it failed."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "labbook.settings"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
