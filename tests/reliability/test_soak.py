"""Soak: many clients, failing runs, and the processes under them killed mid-way.

Two ASGI server processes and two Celery workers (and beat) share one
PostgreSQL database and one Redis. Sixteen SDK clients, half on each server,
log runs back to back for SOAK_SECONDS; one run in ten fails. A third of the
way in, one server and one worker are SIGKILLed and started again; later
Redis is killed and started again, empty. Afterwards every point the clients
logged is stored exactly once (counts and sums per run and key, read from the
database), every run has the status its client gave it, every failed run is
in exactly one webhook delivery (told apart by Idempotency-Key), and no
notification is left pending or sending.

Runs on PostgreSQL + Redis only (CI's second pass; skipped, or failed under
LABBOOK_REQUIRE_SERVICES, on the embedded default).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.alerts.receiver import Receiver
from tests.alerts.test_faults import FAST_RECOVERY
from tests.reliability.soak_up import throwaway_database
from tests.sdk.server import ROOT, LabbookServer, server_env
from tests.support import require_postgres, wait_until
from tests.workers import RedisServer, celery_beat, celery_worker

pytestmark = [pytest.mark.soak, pytest.mark.alone, pytest.mark.subprocess, pytest.mark.timeout(420)]

SOAK_SECONDS = 60
CLIENTS = 16
PROJECT = "lab/soak"
KILL_AT, REDIS_AT = SOAK_SECONDS / 3, SOAK_SECONDS / 2
SETTLE_TIMEOUT = 120


@contextmanager
def soak_database() -> Iterator[str]:
    """A throwaway PostgreSQL database next to the test run's, dropped at the end."""
    require_postgres()
    admin = settings.DATABASES["default"]
    server = f"postgres://{admin['USER']}@{admin['HOST'] or '127.0.0.1'}:{admin['PORT'] or 5432}"
    with throwaway_database(server) as url:
        yield url


def start_client(server: LabbookServer, client: int, report: Path) -> subprocess.Popen:
    env = {
        **server_env(report.parent),
        "LABBOOK_SPOOL_DIR": str(report.parent / f"spool-{client}"),
        "LABBOOK_RETRY_SECONDS": "120",  # ride out the restarts instead of spooling
        "LABBOOK_FINISH_TIMEOUT": "120",
    }
    command = [sys.executable, "-m", "tests.reliability.soak_client"]
    command += [server.url, server.token, PROJECT, str(client), str(SOAK_SECONDS), str(report)]
    log = report.with_suffix(".log").open("wb")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def stored(database_url: str) -> dict[str, dict[str, Any]]:
    """Per run name: its status, and count and sum of each key's stored values."""
    import psycopg

    runs: dict[str, dict[str, Any]] = defaultdict(lambda: {"counts": {}, "sums": {}})
    with psycopg.connect(database_url) as conn:
        for name, status in conn.execute("SELECT name, status FROM tracking_run"):
            runs[name]["status"] = status
        rows = conn.execute(
            "SELECT r.name, s.key, count(p.*), sum(p.value) FROM tracking_metricpoint p"
            " JOIN tracking_metricseries s ON s.id = p.series_id"
            " JOIN tracking_run r ON r.id = s.run_id GROUP BY r.name, s.key"
        )
        for name, key, count, total in rows:
            runs[name]["counts"][key] = count
            runs[name]["sums"][key] = total
    return runs


def unsettled(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        query = "SELECT count(*) FROM alerts_notification WHERE status IN ('pending', 'sending')"
        return conn.execute(query).fetchone()[0]


def arm(server: LabbookServer, receiver: Receiver) -> None:
    with server.client() as client:
        client.post("/api/v1/projects", json={"team": "lab", "name": "soak"}).raise_for_status()
        config = {"url": receiver.url("/hook"), "secret": "s" * 32}
        hook = {"team": "lab", "kind": "webhook", "name": "soak", "config": config}
        destination = client.post("/api/v1/destinations", json=hook).raise_for_status().json()
        rule = {"project": PROJECT, "name": "failures", "trigger": "run_failed",
                "destinations": [destination["id"]], "group_wait": 0}  # fmt: skip
        client.post("/api/v1/alert-rules", json=rule).raise_for_status()


def delivered_runs(receiver: Receiver) -> dict[str, set[str]]:
    """Run name -> the Idempotency-Keys of the deliveries that carried it."""
    keys: dict[str, set[str]] = defaultdict(set)
    for request in receiver.requests:
        for alert in json.loads(request.body)["alerts"]:
            keys[alert["run"]["name"]].add(request.headers["idempotency-key"])
    return keys


def test_nothing_is_lost_or_sent_twice_through_kills_and_a_redis_restart(tmp_path: Path):
    with ExitStack() as stack:
        database_url = stack.enter_context(soak_database())
        redis = stack.enter_context(RedisServer(tmp_path / "redis"))
        env = {**FAST_RECOVERY, "DATABASE_URL": database_url, "REDIS_URL": redis.url}
        servers = [
            stack.enter_context(LabbookServer(tmp_path / name, env=env)) for name in ("a", "b")
        ]
        receiver = stack.enter_context(Receiver())
        arm(servers[0], receiver)
        workers = [stack.enter_context(celery_worker(servers[i])) for i in (0, 1)]
        stack.enter_context(celery_beat(servers[1]))
        reports = [tmp_path / f"client-{n}.json" for n in range(CLIENTS)]
        clients = [start_client(servers[n % 2], n, reports[n]) for n in range(CLIENTS)]
        started = time.monotonic()
        time.sleep(KILL_AT)
        servers[0].kill()
        workers[0].kill()
        servers[0].start()
        workers[0] = stack.enter_context(celery_worker(servers[0]))
        time.sleep(max(0, started + REDIS_AT - time.monotonic()))
        redis.stop()
        time.sleep(1)
        redis.start()
        for client, report in zip(clients, reports, strict=True):
            assert client.wait(timeout=SOAK_SECONDS + 180) == 0, report.with_suffix(
                ".log"
            ).read_text()
        sent = {
            name: run for report in reports for name, run in json.loads(report.read_text()).items()
        }
        failed = {name for name, run in sent.items() if run["status"] == "failed"}
        settled = wait_until(
            lambda: unsettled(database_url) == 0 and failed <= delivered_runs(receiver).keys(),
            timeout=SETTLE_TIMEOUT,
            interval=1,
        )
        assert settled, f"{unsettled(database_url)} unsettled; worker:\n{workers[1].output()}"
        time.sleep(3)  # anything sent twice would arrive now
        have = stored(database_url)

    points = sum(sum(run["counts"].values()) for run in sent.values())
    print(f"soak: {len(sent)} runs, {points:,} points, {len(failed)} failed runs,"
          f" {len(receiver.requests)} webhook requests")  # fmt: skip
    assert len(sent) >= CLIENTS * 3, f"only {len(sent)} runs: the soak did not soak"
    assert failed, "no run failed"
    assert {name: have[name]["status"] for name in sent} == {
        n: r["status"] for n, r in sent.items()
    }
    assert {name: have[name]["counts"] for name in sent} == {
        n: r["counts"] for n, r in sent.items()
    }
    for name, run in sent.items():
        for key, total in run["sums"].items():
            assert math.isclose(have[name]["sums"][key], total, rel_tol=1e-12), (name, key)
    deliveries = delivered_runs(receiver)
    assert set(deliveries) == failed
    assert Counter(len(keys) for keys in deliveries.values()) == {1: len(failed)}
