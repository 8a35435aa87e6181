"""`manage.py up`: everything Labbook needs on one machine, in one command.

The supervision itself (restarts, backoff, giving up, the home's lock) lives
in ``labbook.launcher``; this command reads its arguments, prepares the
home and database, and reports.

What the console shows: a few lines of start-up, then, once the web server
answers and the Celery worker is up, a box with the address and how to log in
(the first administrator's password and token on the first start, once) as
the last thing printed. The children's banners and INFO lines stay out of it
unless ``--verbose`` (or ``-v 2``); their warnings, errors and crashes do not.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser, SystemCheckError
from django.db import OperationalError, connections

from labbook import launcher
from labbook.env import port_number
from labbook.staticfiles import collect_static
from tracking.bootstrap import AdminCredentials, admin_bootstrap, superuser_first
from tracking.demo import DEMO_PROJECT, DEMO_TEAM, demo_exists, demo_seed

HEALTH_TIMEOUT = 30.0
WORKER_TIMEOUT = 30.0  # the box waits this long for the worker's first heartbeat, no longer
CHECK_INTERVAL = 0.2  # how often exited children are noticed (and restarted when due)
EXIT_REFUSED = 2  # bad arguments, another `up` on this home, a port in use
LOCK_FILE = "up.lock"


class Command(BaseCommand):
    help = (
        "Run Labbook on this machine: apply migrations, collect static files, create the first"
        " administrator, then run the web server, a Celery worker and Celery beat, restarting"
        " any that exits, until Ctrl-C (or SIGTERM) stops them all."
    )
    _credentials: AdminCredentials | None = None  # shown once, then forgotten
    _admin: str | None = None  # the first superuser's username, for the box
    _home_lock: launcher.HomeLock | None = None

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="Address to listen on (default: 127.0.0.1)."
        )
        parser.add_argument(
            "--port",
            default=None,
            help="Port to listen on, 1-65535 (default: $PORT, else 8000).",
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
        parser.add_argument(
            "--verbose",
            action="store_true",
            help="Show the web server's, Celery worker's and beat's banners and INFO lines"
            " (by default only their warnings and errors); -v 2 does the same.",
        )

    def execute(self, *args: Any, **options: Any) -> str | None:
        """A refusal reads as one line, ``labbook: <why>``, as bad settings do (see manage.py)."""
        try:
            return super().execute(*args, **options)
        except CommandError as error:
            if options.get("traceback") or isinstance(error, SystemCheckError):
                raise
            self.stderr.write(f"labbook: {error}")
            raise SystemExit(error.returncode) from None

    def handle(
        self,
        *args: Any,
        host: str,
        port: str | None,
        demo: bool,
        access_log: bool,
        verbose: bool = False,
        **options: Any,
    ) -> None:
        verbose = verbose or options.get("verbosity", 1) >= 2
        port_value = _port(port)
        base_url = f"http://{launcher.display_host(host)}:{port_value}/"
        home = Path(settings.LABBOOK_HOME)
        # Before migrations: a second `up` on this home changes nothing.
        self._home_lock = _lock_home(home, base_url)
        listener = _listen(host, port_value)
        self._banner()
        try:
            self._step("Applying migrations", _migrate)
            self._step("Collecting static files", collect_static)
        except KeyboardInterrupt:
            raise CommandError("interrupted before start-up finished") from None
        self._credentials = admin_bootstrap()
        admin = superuser_first()
        self._admin = admin.get_username() if admin is not None else None
        try:
            if demo:
                self._step("Seeding the demo project", self._seed_demo)
            connections.close_all()  # the children open their own
            code = self._serve(
                listener=listener, base_url=base_url, access_log=access_log, verbose=verbose
            )
        finally:
            self._show_credentials()
            listener.close()
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
        """Print the first administrator's secrets if the ready box did not: `up` stopped first."""
        credentials, self._credentials = self._credentials, None
        if credentials is not None:
            self._box(login_rows(credentials, credentials.username))

    def _show_ready(self, base_url: str) -> None:
        """The box saying Labbook is up, where, and how to log in: the last thing printed."""
        credentials, self._credentials = self._credentials, None
        rows = [f"Labbook is running at {base_url}", ""]
        rows += login_rows(credentials, self._admin)
        self._box([*rows, "", "Press Ctrl-C to stop."])

    def _box(self, rows: list[str]) -> None:
        encoding = getattr(self.stdout, "encoding", None) or "ascii"
        self._say("\n".join(["", *box(rows, encoding=encoding)]))

    # --- Steps ---------------------------------------------------------------------

    def _seed_demo(self) -> str | None:
        if demo_exists():
            return f"skipped (team {DEMO_TEAM!r} exists)"
        owner = superuser_first()
        assert owner is not None  # admin_bootstrap() ran before: there is always one
        demo_seed(owner=owner)
        return None

    def _serve(
        self, *, listener: socket.socket, base_url: str, access_log: bool, verbose: bool
    ) -> int:
        home = Path(settings.LABBOOK_HOME)
        specs = launcher.child_specs(
            listen_fd=listener.fileno(),
            home=home,
            access_log=access_log,
            trusted_proxies=settings.TRUSTED_PROXIES,
            verbose=verbose,
        )
        try:
            specs = launcher.crash_on_purpose(specs, os.environ.get(launcher.CRASH_VARIABLE))
        except ValueError as error:
            raise CommandError(str(error), returncode=EXIT_REFUSED) from None
        env = launcher.child_env(
            home=home, settings_module=os.environ["DJANGO_SETTINGS_MODULE"], base_url=base_url
        )

        def start(spec: launcher.ChildSpec, output: launcher.OutputTail) -> launcher.Child:
            return launcher.spawn(spec, env=env, cwd=settings.BASE_DIR, output=output)

        stopping = launcher.stop_on_signals()
        supervisor = launcher.Supervisor(specs, start=start, say=self._complain)
        try:
            supervisor.start()
            return self._supervise(supervisor, stopping, base_url)
        finally:
            supervisor.stop()
            self._say("Stopped.")

    def _supervise(
        self, supervisor: launcher.Supervisor, stopping: threading.Event, base_url: str
    ) -> int:
        """Keep the children running until Ctrl-C/SIGTERM (0) or one keeps dying (1)."""
        gave_up: launcher.GaveUp | None = None

        def give_up() -> bool:
            nonlocal gave_up
            gave_up = gave_up or supervisor.check()
            return stopping.is_set() or gave_up is not None

        status, body = launcher.wait_healthy(
            base_url + "healthz", timeout=HEALTH_TIMEOUT, give_up=give_up
        )
        if status is not None and not give_up():
            self._await_worker(supervisor, base_url, give_up)
        if not give_up():
            if not self._announce(status, body, base_url):
                return 1
            while not give_up():
                stopping.wait(CHECK_INTERVAL)
        if gave_up is not None:
            self._complain(gave_up.message())
            return 1
        return 0

    def _await_worker(
        self, supervisor: launcher.Supervisor, base_url: str, give_up: Callable[[], bool]
    ) -> None:
        """Wait until the worker this `up` started has sent its first heartbeat (/healthz).

        Not longer than ``WORKER_TIMEOUT`` (then a warning says it is late), and
        not once it has exited: the supervisor says so and restarts it.
        """
        first = _running(supervisor, "worker")
        if first is None:
            return
        deadline = time.monotonic() + WORKER_TIMEOUT
        while not give_up():
            now = _running(supervisor, "worker")
            if now is None or now.process.pid != first.process.pid:
                return
            status, body = launcher.http_get(base_url + "healthz")
            if status == 200 and worker_alive(body, first.process.pid):
                return
            if time.monotonic() > deadline:
                self._complain(
                    f"labbook: warning: the Celery worker has not started within"
                    f" {WORKER_TIMEOUT:.0f} s; alerts and emails wait for it"
                )
                return
            time.sleep(CHECK_INTERVAL)

    def _announce(self, status: int | None, body: str, base_url: str) -> bool:
        """Say the server is up and how to log in, last; False when nothing answered."""
        if status is None:
            self._complain(
                f"labbook: nothing answered at {base_url} within {HEALTH_TIMEOUT:.0f} s"
                f" ({body}); stopping"
            )
            return False
        if status != 200:
            self._complain(health_warning(status, body))
        self._show_ready(base_url)
        return True


def _running(supervisor: launcher.Supervisor, key: str) -> launcher.Child | None:
    return next((child for child in supervisor.children() if child.spec.key == key), None)


def worker_alive(health_body: str, pid: int) -> bool:
    """/healthz shows a fresh heartbeat of the worker process ``pid`` (not of an earlier one)."""
    try:
        found = json.loads(health_body)["checks"]["worker"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(found, str) and found.startswith("ok: ") and found.endswith(f", pid {pid})")


def _port(raw: str | None) -> int:
    """--port, checked as PORT is: a port number the OS would not silently wrap."""
    if raw is None:
        return settings.PORT
    try:
        return port_number("--port", raw)
    except ImproperlyConfigured as error:
        raise CommandError(str(error), returncode=EXIT_REFUSED) from None


def _lock_home(home: Path, url: str) -> launcher.HomeLock:
    """The home's lock, held until this process exits (the OS releases it, however we die)."""
    lock = launcher.HomeLock(home / LOCK_FILE)
    try:
        lock.acquire(url=url)
    except launcher.HomeBusy as busy:
        pid = busy.pid if busy.pid is not None else "unknown"
        raise CommandError(
            f"another Labbook (PID {pid}, {busy.url or 'address unknown'}) is running on {home};"
            " stop it or use another LABBOOK_HOME",
            returncode=EXIT_REFUSED,
        ) from None
    except OSError as error:
        raise CommandError(f"cannot lock {home / LOCK_FILE}: {error.strerror}") from None
    return lock


def _listen(host: str, port: int) -> socket.socket:
    try:
        return launcher.listen_socket(host, port)
    except launcher.PortUnavailable as error:
        raise CommandError(str(error), returncode=EXIT_REFUSED) from None


def _migrate() -> None:
    try:
        call_command("migrate", interactive=False, verbosity=0)
    except OperationalError as error:
        reason = " ".join(str(error).split())
        raise CommandError(f"cannot migrate {_database_description()}: {reason}") from None


def login_rows(credentials: AdminCredentials | None, username: str | None) -> list[str]:
    """How to log in: the first start's new password and token, else where to reset it."""
    reset = f"python manage.py changepassword {username}"
    if credentials is not None:
        return [
            "First start: an administrator account was created.",
            f"  username   {credentials.username}",
            f"  password   {credentials.password}",
            f"  API token  {credentials.token}",
            "Save them now: they will not be shown again.",
            f"Lost the password? {reset}",
        ]
    if username is None:
        return ["No administrator yet: python manage.py createsuperuser"]
    return [
        f"Log in as {username} with the password shown on the first start.",
        f"Lost it? {reset}",
    ]


ROUNDED = "╭─╮│╰╯"
PLAIN = "+-+|++"


def box(rows: list[str], *, encoding: str) -> list[str]:
    """``rows`` framed with rounded corners, or ``+-|`` where ``encoding`` lacks them.

    What ``encoding`` cannot show at all (a username) becomes ``?``, never an error.
    """
    width = max(len(row) for row in rows)
    try:
        ROUNDED.encode(encoding)
        chars = ROUNDED
    except (UnicodeEncodeError, LookupError):
        chars = PLAIN
    top_left, line, top_right, side, bottom_left, bottom_right = tuple(chars)  # one character each
    framed = [
        top_left + line * (width + 2) + top_right,
        *(f"{side} {row.ljust(width)} {side}" for row in rows),
        bottom_left + line * (width + 2) + bottom_right,
    ]
    try:
        return [row.encode(encoding, "replace").decode(encoding) for row in framed]
    except LookupError:
        return [row.encode("ascii", "replace").decode("ascii") for row in framed]


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
    if connections["default"].vendor == "sqlite":
        return f"SQLite {database['NAME']}"
    return f"PostgreSQL {database.get('HOST') or 'localhost'}/{database['NAME']}"


def _broker_description() -> str:
    if settings.REDIS_URL:
        parts = urlsplit(settings.REDIS_URL)  # never print the password
        where = parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"
        return f"Redis {where}"
    return f"filesystem queue in {settings.QUEUE_DIR}"
