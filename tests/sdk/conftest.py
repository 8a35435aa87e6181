"""Fixtures for the SDK tests: a real server, a fault proxy, a tmp spool, scripts.

Every test gets LABBOOK_URL / LABBOOK_TOKEN pointing at the shared server and
LABBOOK_SPOOL_DIR in its own tmp dir, so nothing ever lands in ~/.labbook.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.proxy import FaultProxy
from tests.sdk.server import ROOT, LabbookServer
from tests.support import services_free

FLUSH_SECONDS = "0.2"
# The session's tests share one token: hundreds of runs a minute would spend its rate
# limits, which have tests of their own (test_retry_after.py, tracking/test_throttling.py).
UNLIMITED = {"INGEST_THROTTLE_RATE": "0", "API_THROTTLE_RATE": "0"}


@pytest.fixture(scope="session")
@services_free
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    """One server for the session; never stopped by a test (see ``own_server``)."""
    with LabbookServer(tmp_path_factory.mktemp("labbook-home"), env=UNLIMITED) as labbook:
        yield labbook


@pytest.fixture
@services_free
def own_server(tmp_path: Path) -> Iterator[LabbookServer]:
    """A server of this test's own, which the test may stop() and start() again."""
    with LabbookServer(tmp_path / "own-home", env=UNLIMITED) as labbook:
        yield labbook


@pytest.fixture
def proxy(server: LabbookServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.url) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def sdk_env(monkeypatch: pytest.MonkeyPatch, server: LabbookServer, spool_dir: Path) -> None:
    monkeypatch.setenv("LABBOOK_URL", server.url)
    monkeypatch.setenv("LABBOOK_TOKEN", server.token)
    monkeypatch.setenv("LABBOOK_SPOOL_DIR", str(spool_dir))
    monkeypatch.setenv("LABBOOK_FLUSH_SECONDS", FLUSH_SECONDS)
    monkeypatch.setenv("LABBOOK_RETRY_SECONDS", "20")
    monkeypatch.setenv("LABBOOK_FINISH_TIMEOUT", "20")


@pytest.fixture
def project(request: pytest.FixtureRequest) -> str:
    """A project of team 'lab' named after the test (created on first use)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:90]
    return f"lab/{slug}"


@pytest.fixture
def start_run(project: str) -> Iterator[Callable[..., Any]]:
    """``sdk.init`` on this test's project; every run is finished at teardown."""
    from tracking import sdk

    started: list[Any] = []

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault("project", project)
        started.append(sdk.init(**kwargs))
        return started[-1]

    try:
        yield start
    finally:
        for run in started:
            run.finish()


def script_env(server: LabbookServer, spool_dir: Path, **extra: str) -> dict[str, str]:
    """A training script's environment: no Django settings, no outer database."""
    drop = {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"}
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env.update(
        LABBOOK_URL=server.url,
        LABBOOK_TOKEN=server.token,
        LABBOOK_SPOOL_DIR=str(spool_dir),
        LABBOOK_FLUSH_SECONDS=FLUSH_SECONDS,
        LABBOOK_FINISH_TIMEOUT="20",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def launch(
    tmp_path: Path, server: LabbookServer, spool_dir: Path
) -> Iterator[Callable[..., subprocess.Popen]]:
    """Write a script to tmp_path and start it with the venv's python; killed at teardown."""
    started: list[subprocess.Popen] = []

    def start(source: str, **env: str) -> subprocess.Popen:
        path = tmp_path / f"train_{len(started)}.py"
        path.write_text(source)
        process = subprocess.Popen(
            [sys.executable, str(path)],
            cwd=tmp_path,
            env=script_env(server, spool_dir, **env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            process.stderr.close()
