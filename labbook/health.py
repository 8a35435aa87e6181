"""`/healthz`: is every part of Labbook alive?

The web server, the database and the broker are checked in the request. The
Celery worker and beat may run on other machines, so they are judged by the
heartbeats they leave in the database (``Heartbeat``): the worker from a
thread started when it is ready, beat from its scheduler's tick, each at most
every ``HEARTBEAT_SECONDS``.

What the status means, and why:

- **503, "error"**: the database or the broker fails. This web server cannot
  store or queue anything; a load balancer should stop sending it traffic.
- **200, "degraded"**: the worker or beat has been silent for more than
  ``STALE_AFTER_SECONDS`` (``"worker": "stale: last seen 95 s ago ..."``).
  The web server still serves pages and ingests points, which never wait for
  the worker; only alert deliveries and scans wait. Taking the web server out
  of rotation would turn a late alert into an outage, so it stays 200.
- **200, "ok"**: everything answers. A part that has never sent a heartbeat
  on this database reads ``"starting"`` and does not degrade the status (a
  fresh install, a web-only deployment before its first worker); once it has
  been seen, its silence shows as stale.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, connection
from django.db.models.functions import Now
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from labbook.models import Heartbeat

if TYPE_CHECKING:
    from datetime import datetime
    from typing import TypeAlias, TypedDict

    from django_stubs_ext import WithAnnotations

    class _ReadAt(TypedDict):
        db_now: datetime  # the database's clock as it read the row

    # A heartbeat as heartbeat_descriptions() reads it.
    HeartbeatRead: TypeAlias = WithAnnotations[Heartbeat, _ReadAt]

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5
STALE_AFTER_SECONDS = 30.0
ROLES = ("worker", "beat")


# --- Checks made in the request -----------------------------------------------------


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    if not settings.REDIS_URL:
        # Write a file, as the broker does: os.access() says yes to root on a full disk.
        with tempfile.NamedTemporaryFile(dir=settings.QUEUE_DIR, prefix=".healthz-"):
            return
    with current_app.connection_for_write() as conn:  # labbook.celery's app
        conn.ensure_connection(max_retries=1, timeout=2)


CHECKS: dict[str, Callable[[], None]] = {"database": check_database, "broker": check_broker}
CRITICAL = ("database", "broker")  # a failure here is a 503


# --- Heartbeats: written by the worker and beat, read here ------------------------------


def heartbeat_record(role: str, name: str) -> None:
    """Say that ``name`` (a ``role``) is alive now, by the database's clock."""
    pid = os.getpid()
    updated = Heartbeat.objects.filter(role=role, name=name).update(pid=pid, seen_at=Now())
    if not updated:
        try:
            Heartbeat.objects.create(role=role, name=name, pid=pid, seen_at=Now())
        except IntegrityError:  # created meanwhile by a namesake: update it
            Heartbeat.objects.filter(role=role, name=name).update(pid=pid, seen_at=Now())


def heartbeat_record_safely(role: str, name: str) -> bool:
    """``heartbeat_record`` that logs instead of raising: it must never kill its process."""
    try:
        heartbeat_record(role, name)
    except Exception as error:  # one line each time: a database away for long is said elsewhere
        logger.warning("could not record the %s heartbeat of %s: %r", role, name, error)
        return False
    finally:
        connection.close()  # this thread's connection goes back (to the pool) between beats
    return True


def heartbeat_thread(
    role: str, name: str, *, interval: float = HEARTBEAT_SECONDS
) -> threading.Event:
    """Record a heartbeat now and every ``interval`` seconds, until the event answered is set."""
    stop = threading.Event()

    def beat() -> None:
        heartbeat_record_safely(role, name)
        while not stop.wait(interval):
            heartbeat_record_safely(role, name)

    threading.Thread(target=beat, name=f"labbook-{role}-heartbeat", daemon=True).start()
    return stop


class Throttle:
    """True at most once per ``interval`` seconds: beat ticks more often than it must say so."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True


def heartbeat_descriptions() -> dict[str, str]:
    """role -> "ok: ...", "stale: ..." or "starting: ...", from the freshest heartbeat of each."""
    latest: dict[str, HeartbeatRead] = {}
    for beat in Heartbeat.objects.annotate(db_now=Now()).order_by("-seen_at"):
        latest.setdefault(beat.role, beat)
    return {role: describe(latest.get(role)) for role in ROLES}


def describe(beat: HeartbeatRead | None) -> str:
    if beat is None:
        return "starting: no heartbeat yet"
    age = max((beat.db_now - beat.seen_at).total_seconds(), 0.0)
    state = "stale" if age > STALE_AFTER_SECONDS else "ok"
    return f"{state}: last seen {age:.0f} s ago ({beat.name}, pid {beat.pid})"


# --- The view -------------------------------------------------------------------------


def health_report() -> tuple[int, dict[str, object]]:
    """(HTTP status, body) of /healthz; see the module docstring for what they mean."""
    checks: dict[str, str] = {"web": "ok"}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as error:
            # Anyone may call /healthz: the message (hosts, ports, paths) goes to the log only.
            logger.warning(
                "/healthz: the %s check failed: %s: %s", name, type(error).__name__, error
            )
            checks[name] = f"error: {type(error).__name__}"
        else:
            checks[name] = "ok"
    checks.update(_heartbeat_checks(database_ok=checks["database"] == "ok"))
    if any(checks[name] != "ok" for name in CRITICAL):
        return 503, {"status": "error", "checks": checks}
    degraded = any(not checks[role].startswith(("ok", "starting")) for role in ROLES)
    return 200, {"status": "degraded" if degraded else "ok", "checks": checks}


def _heartbeat_checks(*, database_ok: bool) -> dict[str, str]:
    if not database_ok:
        return dict.fromkeys(ROLES, "unknown: the database is not answering")
    try:
        return heartbeat_descriptions()
    except Exception as error:
        logger.warning(
            "/healthz: could not read the heartbeats: %s: %s", type(error).__name__, error
        )
        return dict.fromkeys(ROLES, f"unknown: {type(error).__name__}")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    status, body = health_report()
    return JsonResponse(body, status=status)
