"""The soak of `manage.py up` itself, in its short form (1 minute of load, ~3 minutes in all).

``tests/reliability/soak_up.py`` does the work (the 30-minute form is
``python tests/benchmarks/soak_up.py --minutes 30``): `up` on a throwaway home,
SDK and mlflow clients logging runs back to back (one in ten failing, some
crossing a threshold and coming back, mlflow asynchronously with out-of-order
steps), beat ticking every second, alerts to a loopback webhook receiver, and
faults on a schedule — empty, truncated and garbage queue files, SIGKILL of
the worker, of beat and of the web server. Then every point is stored exactly
once with its step, value and timestamp, every failed run is notified
exactly once, each alert's notifications arrive in order (a threshold alert's
"fired" before its "resolved"), nothing is left in
the outbox or the queue, `up` restarted what it lost and /healthz was only
ever out for under 5 s, at a web kill.

It runs on the shape the suite runs on: the embedded default (SQLite and the
filesystem queue) when DATABASE_URL and REDIS_URL are unset; PostgreSQL +
Redis when they are set (CI's second pass), in a throwaway database lb_soak_*
on the same server and a private redis-server (queue-file faults apply to the
embedded shape only).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from tests.reliability.soak_up import SoakConfig, run_soak
from tests.support import require_postgres, require_redis

pytestmark = [
    pytest.mark.soak,
    pytest.mark.alone,
    pytest.mark.subprocess,
    pytest.mark.timeout(1200),
]

# Every fault once (one cycle), packed into a minute; plus start-up, the clients' last runs,
# settling and the checks: ~3 min. The long form runs 30 minutes (docs/benchmarks.md).
LOAD_SECONDS = 60


def services_shape() -> bool:
    engine = settings.DATABASES["default"]["ENGINE"]
    return engine == "django.db.backends.postgresql" or bool(settings.REDIS_URL)


def postgres_server() -> str:
    """postgres://user[:password]@host:port of the suite's database: lb_soak_* is made there."""
    database = settings.DATABASES["default"]
    user = quote(database["USER"] or "", safe="")
    if database.get("PASSWORD"):
        user += ":" + quote(database["PASSWORD"], safe="")
    return f"postgres://{user}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"


def test_up_keeps_every_point_and_alert_through_faults(tmp_path: Path) -> None:
    config = SoakConfig(
        seconds=LOAD_SECONDS,
        sdk_clients=3,
        mlflow_clients=2,
        cycle_seconds=LOAD_SECONDS,  # one cycle of every fault
        settle_timeout=240,
        workdir=tmp_path / "soak",
        progress=print,
    )
    if services_shape():
        require_postgres()
        config.redis_url = require_redis()
        config.services = True
        config.database_server = postgres_server()
    result = run_soak(config)
    print(result.report())
    assert result.ok, result.report()
