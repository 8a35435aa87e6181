"""A real Labbook server in a subprocess, with read-back helpers over its HTTP API.

The server always runs on the embedded default (its own SQLite in its own
LABBOOK_HOME, filesystem broker), even when the outer test run points
DATABASE_URL at PostgreSQL: the SDK tests are about the client, and an
isolated database keeps them independent of whatever else is running.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import httpx

from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def server_env(home: Path) -> dict[str, str]:
    drop = {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env.update(LABBOOK_HOME=str(home), LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    return env


def manage(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**server_env(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def prepare_home(home: Path, env: dict[str, str] | None = None) -> str:
    """Migrate a fresh LABBOOK_HOME (or ``env``'s DATABASE_URL): an owner token of team 'lab'.

    A fresh home's SQLite database is a copy of one migrated once per test process:
    the same tables and owner token (so every such home answers to the same token),
    without a ``migrate`` and a ``createtoken`` (seconds of CPU) for each of the suite's
    servers. A home that has a database already, or a DATABASE_URL, is migrated.
    Its static files are linked from one collect (:func:`link_static`).
    """
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "static").exists():
        link_static(home)
    if "DATABASE_URL" in (env or {}) or (home / SQLITE_FILE).exists():
        manage(home, "migrate", "--verbosity", "0", env=env)
        return _owner_token(home, env)
    template = migrated_template()
    for source in template.glob(f"{SQLITE_FILE}*"):  # the file, any WAL
        shutil.copy2(source, home / source.name)
    return (template / TOKEN_FILE).read_text()


def _owner_token(home: Path, env: dict[str, str] | None = None) -> str:
    token = manage(home, "createtoken", "sdk-tester", "--team", "lab", "--role", "owner", env=env)
    return token.strip()


SQLITE_FILE = "labbook.sqlite3"  # in LABBOOK_HOME (reports_app/settings.py)
TOKEN_FILE = "owner-token"  # the template's: team 'lab', owner 'sdk-tester'
_template: Path | None = None


def migrated_template() -> Path:
    """A LABBOOK_HOME migrated the first time it is asked for, removed when the process ends."""
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="labbook-migrated-"))
        atexit.register(shutil.rmtree, folder, True)
        manage(folder, "migrate", "--verbosity", "0")
        # Its owner token too: every copy holds it, so no home needs a createtoken of its own.
        (folder / TOKEN_FILE).write_text(_owner_token(folder))
        _template = folder
    return _template


# Shared by every test process of this checkout on this machine, and kept between runs.
STATIC_CACHE = Path(tempfile.gettempdir()) / f"labbook-static-{zlib.crc32(bytes(ROOT)):08x}"
COLLECT_TIMEOUT = 600.0  # a first collect on a busy 2-core machine: over a minute
_static_current = False


def link_static(home: Path) -> None:
    """``home/static`` as `up` collects it (hashed names, Brotli and gzip copies), in no time.

    Collecting compresses plotly.js with Brotli, seconds of CPU, so it happens
    once, in a LABBOOK_HOME of its own that later runs reuse (`up` compresses
    again only files that changed). Each home gets hard links to those files:
    a collect replaces files, never writes into one, so a later collect in
    either place leaves the other's copy as it was. The lock keeps test
    processes from linking a collect half done.
    """
    global _static_current
    STATIC_CACHE.mkdir(exist_ok=True)
    with (STATIC_CACHE / "collect.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _static_current:
            collect = "from labbook.staticfiles import collect_static; collect_static()"
            manage(STATIC_CACHE, "shell", "--no-imports", "-c", collect, timeout=COLLECT_TIMEOUT)
            _static_current = True
        shutil.copytree(STATIC_CACHE / "static", home / "static", copy_function=_link)


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def as_float(value: Any) -> float:
    """History values come back as numbers or as the strings "NaN" / "Infinity"."""
    return NONFINITE[value] if isinstance(value, str) else float(value)


class LabbookServer:
    """uvicorn serving Labbook on a fixed port; stop() and start() keep port and home."""

    def __init__(self, home: Path, *, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.env = env or {}  # e.g. REDIS_URL, for servers that share a channel layer
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = prepare_home(home, self.env)
        self.process: subprocess.Popen | None = None
        self.log_path = home / "server.log"

    # --- The process ---------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "uvicorn", "labbook.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"),
            *("--log-level", "warning", "--lifespan", "off"),
        ]

    def start(self) -> None:
        assert self.process is None, "already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env={**server_env(self.home), "BASE_URL": self.url, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not wait_until(self.ready, timeout=START_TIMEOUT, interval=0.1):
            self.stop()
            raise RuntimeError(f"the server did not answer /healthz:\n{self.output()}")

    def ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2, trust_env=False).is_success
        except httpx.HTTPError:
            return False

    def __enter__(self) -> LabbookServer:
        """Started for a ``with`` block, stopped at its end whatever happens."""
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; safe to call when not running."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL the server's process group: no shutdown, requests cut mid-way."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- Reading back through the API -----------------------------------------------

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, trust_env=False)

    def get(self, path: str, **params: Any) -> Any:
        with self.client() as client:
            return client.get(path, params=params).raise_for_status().json()

    def run(self, run_id: int) -> dict[str, Any]:
        return self.get(f"/api/v1/runs/{run_id}")

    def runs(self, project: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/runs", project=project, page_size=500)["results"]

    def metric_keys(self, run_id: int) -> dict[str, int]:
        """key -> number of points stored."""
        metrics = self.get(f"/api/v1/runs/{run_id}/metrics")["metrics"]
        return {metric["key"]: metric["count"] for metric in metrics}

    def history(self, run_id: int, key: str) -> tuple[list[int], list[float]]:
        """Every stored point of ``key`` (paged through next_cursor), values as floats."""
        steps: list[int] = []
        values: list[float] = []
        query: dict[str, Any] = {}
        while True:
            page = self.get(f"/api/v1/runs/{run_id}/metrics/{key}", **query)
            steps += page["steps"]
            values += [as_float(value) for value in page["values"]]
            if page.get("next_cursor") is None:
                return steps, values
            query = {"cursor": page["next_cursor"]}

    def create_run(self, project: str) -> int:
        with self.client() as client:
            response = client.post("/api/v1/runs", json={"project": project})
            return response.raise_for_status().json()["id"]
