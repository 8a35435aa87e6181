"""The SDK and ``python -m tracking.sdk`` tell the user when their token has expired."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.sdk.conftest import script_env
from tests.sdk.server import ROOT, LabbookServer

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(120)]


def expiring_token(server: LabbookServer, seconds: float) -> str:
    expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    with server.client() as http:
        body = {"name": "short-lived", "expires_at": expires_at.isoformat()}
        return http.post("/api/v1/tokens", json=body).raise_for_status().json()["token"]


def test_init_says_the_token_expired_and_what_to_do(server: LabbookServer, project: str) -> None:
    from tracking import sdk

    token = expiring_token(server, 1)
    time.sleep(1.2)
    with pytest.raises(sdk.LabbookError) as refused:
        sdk.init(project=project, token=token)
    message = str(refused.value)
    assert "401" in message and "expired on" in message
    assert "set LABBOOK_TOKEN" in message


SCRIPT = """
import time
from tracking import sdk
run = sdk.init(project="lab/expiring")
print(run.id, flush=True)
for step in range(5):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
run.flush()
time.sleep(3.5)  # the token expires meanwhile
for step in range(5, 10):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
run.finish()
"""


def test_a_token_expiring_mid_run_keeps_the_data_for_sync_with_a_new_token(
    server: LabbookServer,
    spool_dir: Path,
    launch: Callable[..., subprocess.Popen],
) -> None:
    token = expiring_token(server, 2)
    process = launch(SCRIPT, LABBOOK_TOKEN=token)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    run_id = int(stdout.split()[0])
    assert "expired on" in stderr and "set LABBOOK_TOKEN" in stderr
    assert server.history(run_id, "loss")[0] == [0, 1, 2, 3, 4]

    def sync(token: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "tracking.sdk", "sync", str(spool_dir)]
        env = script_env(server, spool_dir, LABBOOK_TOKEN=token)
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    stale = sync(token)
    assert stale.returncode == 1
    assert "not uploaded: 401" in stale.stderr and "expired on" in stale.stderr
    fresh = sync(server.token)
    assert fresh.returncode == 0, fresh.stderr
    assert server.history(run_id, "loss")[0] == list(range(10))
    assert server.run(run_id)["status"] == "finished"
