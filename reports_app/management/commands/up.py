"""`manage.py up`: everything Labbook needs on one machine, in one command."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from reports_app import launcher
from reports_app.env import env_int
from tracking.bootstrap import AdminCredentials, admin_bootstrap, superuser_first
from tracking.demo import DEMO_PROJECT, DEMO_TEAM, demo_exists, demo_seed

HEALTH_TIMEOUT = 30.0


class Command(BaseCommand):
    help = (
        "Run Labbook on this machine: apply migrations, collect static files, create the first"
        " administrator, then run the web server, a Celery worker and Celery beat until"
        " Ctrl-C (or SIGTERM) stops them all."
    )
    _credentials: AdminCredentials | None = None  # shown once, then forgotten

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="Address to listen on (default: 127.0.0.1)."
        )
        parser.add_argument(
            "--port",
            type=int,
            default=env_int("PORT", 8000, minimum=1),
            help="Port to listen on (default: $PORT, else 8000).",
        )
        parser.add_argument(
            "--demo",
            action="store_true",
            help=f"Seed a demo team with project {DEMO_TEAM}/{DEMO_PROJECT} and a few runs"
            " (once; skipped when the team exists).",
        )
        parser.add_argument(
            "--access-log", action="store_true", help="Log every HTTP request of the web server."
        )

    def handle(
        self, *args: Any, host: str, port: int, demo: bool, access_log: bool, **options: Any
    ) -> None:
        try:
            launcher.port_check(host, port)
        except launcher.PortUnavailable as error:
            raise CommandError(str(error)) from None
        self._banner()
        try:
            self._step("Applying migrations", _migrate)
            self._step("Collecting static files", _collect_static)
        except KeyboardInterrupt:
            raise CommandError("interrupted before start-up finished") from None
        self._credentials = admin_bootstrap()
        try:
            if demo:
                self._step("Seeding the demo project", self._seed_demo)
            connections.close_all()  # the children open their own
            code = self._serve(host=host, port=port, access_log=access_log)
        finally:
            self._show_credentials()
        if code:
            raise SystemExit(code)

    # --- Output --------------------------------------------------------------------

    def _say(self, text: str, *, ending: str = "\n") -> None:
        self.stdout.write(text, ending=ending)
        self.stdout.flush()

    def _complain(self, text: str) -> None:
        self.stderr.write(text)
        self.stderr.flush()

    def _banner(self) -> None:
        self._say(f"Labbook {_version()}")
        self._say(f"  home      {settings.LABBOOK_HOME}")
        self._say(f"  database  {_database_description()}")
        self._say(f"  broker    {_broker_description()}")

    def _step(self, label: str, action: Callable[[], str | None]) -> None:
        self._say(f"{label}... ", ending="")
        self._say(action() or "done")

    def _show_credentials(self) -> None:
        """Print the first administrator's secrets, once, whatever happened since."""
        credentials, self._credentials = self._credentials, None
        if credentials is not None:
            self._say("\n".join(credentials_box(credentials)))

    # --- Steps ---------------------------------------------------------------------

    def _seed_demo(self) -> str | None:
        if demo_exists():
            return f"skipped (team {DEMO_TEAM!r} exists)"
        demo_seed(owner=superuser_first())
        return None

    def _serve(self, *, host: str, port: int, access_log: bool) -> int:
        home = Path(settings.LABBOOK_HOME)
        specs = launcher.child_specs(host=host, port=port, home=home, access_log=access_log)
        base_url = f"http://{launcher.display_host(host)}:{port}/"
        env = launcher.child_env(
            home=home, settings_module=os.environ["DJANGO_SETTINGS_MODULE"], base_url=base_url
        )
        stopping = launcher.stop_on_signals()
        children: list[launcher.Child] = []
        try:
            for spec in specs:
                children.append(launcher.spawn(spec, env=env, cwd=settings.BASE_DIR))
            return self._supervise(children, stopping, base_url)
        finally:
            launcher.stop_all(children)
            self._say("Stopped.")

    def _supervise(
        self, children: list[launcher.Child], stopping: threading.Event, base_url: str
    ) -> int:
        def give_up() -> bool:
            return stopping.is_set() or launcher.first_exited(children) is not None

        status, body = launcher.wait_healthy(
            base_url + "healthz", timeout=HEALTH_TIMEOUT, give_up=give_up
        )
        if not give_up():
            if not self._announce(status, body, base_url):
                return 1
            while not give_up():
                stopping.wait(0.5)
        return self._outcome(children, stopping)

    def _announce(self, status: int | None, body: str, base_url: str) -> bool:
        """Say the server is up, after the first credentials; False when nothing answered."""
        if status is None:
            self._complain(
                f"labbook: nothing answered at {base_url} within {HEALTH_TIMEOUT:.0f} s"
                f" ({body}); stopping"
            )
            return False
        if status != 200:
            self._complain(health_warning(status, body))
        self._show_credentials()
        self._say(f"Labbook is running at {base_url} — press Ctrl-C to stop")
        return True

    def _outcome(self, children: list[launcher.Child], stopping: threading.Event) -> int:
        if stopping.is_set():
            return 0
        child = launcher.first_exited(children)
        what = launcher.exit_description(child.process.returncode)
        self._complain(f"labbook: the {child.spec.name} {what}; stopping the others")
        return 1


def _migrate() -> None:
    call_command("migrate", interactive=False, verbosity=0)


def _collect_static() -> None:
    call_command("collectstatic", interactive=False, verbosity=0)


def credentials_box(credentials: AdminCredentials) -> list[str]:
    rows = [
        "First start: an administrator account was created.",
        "",
        f"  username   {credentials.username}",
        f"  password   {credentials.password}",
        f"  API token  {credentials.token}",
        "",
        "Save them now: they will not be shown again.",
    ]
    width = max(len(row) for row in rows)
    rule = "+" + "-" * (width + 2) + "+"
    return ["", rule, *(f"| {row.ljust(width)} |" for row in rows), rule, ""]


def health_warning(status: int, body: str) -> str:
    hint = " (is the host in ALLOWED_HOSTS?)" if status == 400 else ""
    return f"labbook: warning: /healthz answered {status}{hint}: {body[:500]}"


def _version() -> str:
    try:
        return version("labbook")
    except PackageNotFoundError:
        return ""


def _database_description() -> str:
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        return f"SQLite {database['NAME']}"
    return f"PostgreSQL {database.get('HOST') or 'localhost'}/{database['NAME']}"


def _broker_description() -> str:
    if settings.REDIS_URL:
        parts = urlsplit(settings.REDIS_URL)  # never print the password
        where = parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"
        return f"Redis {where}"
    return f"filesystem queue in {settings.QUEUE_DIR}"
