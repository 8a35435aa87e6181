"""The servers under test: ``mlflow server`` and Labbook as ``manage.py up`` runs it."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labbook import launcher
from tests.benchmarks import ingest as lb
from tests.benchmarks.mlflow_bench.common import REPO, START_TIMEOUT
from tests.benchmarks.mlflow_bench.processes import stop_tree, tree_pids

SETUP = (
    lb.SETUP
    + """
from django.conf import settings
from django.test import Client

browser = Client()
browser.force_login(user)
print(f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}")
"""
)


@dataclass
class Target:
    """One server under test, and what the workloads left on it."""

    name: str
    uri: str
    process: subprocess.Popen
    api: lb.Server | None = None  # Labbook's own API (None for MLflow)
    cookie: str = ""  # a logged-in session, for the websocket
    db_path: Path | None = None  # MLflow's SQLite file
    runs: dict[str, str] = field(default_factory=dict)  # role -> run id
    search_experiment: str = ""

    @property
    def is_mlflow(self) -> bool:
        return self.api is None

    @property
    def token(self) -> str | None:
        return self.api.token if self.api else None


def server_log(home: Path) -> Any:
    return (home / "server.log").open("ab")


def wait_answering(url: str, process: subprocess.Popen, log: Path) -> None:
    status, body = launcher.wait_healthy(
        url, timeout=START_TIMEOUT, give_up=lambda: process.poll() is not None
    )
    if status != 200:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{url} did not answer ({status}: {body[:200]}); log:\n{tail}")


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[Target]:
    home = root / "mlflow"
    home.mkdir()
    port = lb.free_port()
    db_path = home / "mlflow.db"
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{db_path}"),
        *("--artifacts-destination", str(home / "artifacts")),
    ]
    with server_log(home) as log:
        process = subprocess.Popen(
            command, cwd=home, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_answering(f"{uri}/health", process, home / "server.log")
        yield Target("MLflow", uri, process, db_path=db_path)
    finally:
        stop_tree(process, whole_group=True)


def mlflow_workers(target: Target) -> str:
    """How many request workers ``mlflow server`` started, from its uvicorn's command line."""
    for pid in tree_pids(target.process.pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"--workers" in argv:
                return argv[argv.index(b"--workers") + 1].decode()
    return "?"


@contextlib.contextmanager
def labbook_server(root: Path, shape: lb.Shape) -> Iterator[Target]:
    """Labbook as ``manage.py up`` runs it: ``up`` itself, with its web server, worker, beat."""
    home = root / re.sub(r"\W+", "-", shape.name).strip("-").lower()
    home.mkdir()
    with contextlib.ExitStack() as stack:
        database_url = shape.database_url
        if database_url:
            database_url = stack.enter_context(lb.throwaway_database(database_url))
        env = lb.shape_env(shape, home, database_url)
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        lb.manage(env, "manage.py", "migrate", "--verbosity", "0")
        token, cookie = lb.manage(env, "-c", SETUP).split()
        port = lb.free_port()
        with server_log(home) as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "up", "--port", str(port)],
                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        try:
            uri = f"http://127.0.0.1:{port}"
            wait_answering(f"{uri}/healthz", process, home / "server.log")
            api = lb.Server(uri, token, process.pid, database_url)
            yield Target(shape.name, uri, process, api=api, cookie=cookie)
        finally:
            stop_tree(process, whole_group=False)
