"""Alert latency benchmark: from the API call that fails a run to the webhook receiving it.

    python tests/benchmarks/alert_latency.py            # embedded default (filesystem broker)
    python tests/benchmarks/alert_latency.py --redis    # + Redis as the broker

Starts the server (uvicorn) and a Celery worker as ``manage.py up`` would, on
a throwaway LABBOOK_HOME, and a webhook receiver on loopback; fails RUNS runs
one after another, each the first failure of a rule with the default settings,
and reports p50/p95 of the time from the PATCH to the signed POST arriving;
then fails BURST runs of one rule at once and says when each message arrived.
Then times one stall scan over 10,000 running runs in-process (SQLite).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

RUNS = 100
BURST = 20
SECRET = "benchmark-webhook-secret-0123456789"
SCAN_RUNS = 10_000


def latency(redis_url: str | None) -> tuple[list[float], list[tuple[float, int]]]:
    """Seconds from PATCH to webhook: RUNS first failures, then one burst of BURST failures.

    Every rule is made as docs/alerts.md shows, with its defaults (``group_wait``
    30 s): the first failure of a rule goes at once, the ones after it within
    30 s go out together. A first failure is measured on a rule of its own
    (a fresh project each time); the burst fails BURST runs of one rule at once.
    """
    from tests.alerts.receiver import Receiver
    from tests.sdk.server import LabbookServer
    from tests.workers import celery_worker

    env = {"ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    home = Path(tempfile.mkdtemp(prefix="labbook-alert-bench-"))
    server = LabbookServer(home, env=env)
    with server, Receiver() as receiver, celery_worker(server), server.client() as client:
        hook = client.post(
            "/api/v1/destinations",
            json={
                "team": "lab",
                "kind": "webhook",
                "name": "hook",
                "config": {"url": receiver.url("/hook"), "secret": SECRET},
            },
        )
        hook_id = hook.raise_for_status().json()["id"]

        def project_with_rule(name: str) -> str:
            project = f"lab/{name}"
            server.create_run(project)  # creates the project
            rule = {"project": project, "name": "failures", "trigger": "run_failed"}
            client.post("/api/v1/alert-rules", json={**rule, "destinations": [hook_id]})
            return project

        firsts = []
        for i in range(RUNS):
            run_id = server.create_run(project_with_rule(f"bench-{i}"))
            start = time.perf_counter()
            client.patch(f"/api/v1/runs/{run_id}", json={"status": "failed"})
            if not receiver.wait_for(i + 1, timeout=30):
                raise RuntimeError(f"run {run_id}: no webhook within 30 s")
            firsts.append(time.perf_counter() - start)
        burst_project = project_with_rule("burst")
        runs = [server.create_run(burst_project) for _ in range(BURST)]
        before = len(receiver.requests)
        start = time.monotonic()
        for run_id in runs:
            client.patch(f"/api/v1/runs/{run_id}", json={"status": "failed"})

        def told() -> int:
            return sum(len(json.loads(r.body)["alerts"]) for r in receiver.requests[before:])

        deadline = time.monotonic() + 90
        while told() < BURST and time.monotonic() < deadline:
            time.sleep(0.05)
        if told() < BURST:
            raise RuntimeError(f"the burst: {told()} of {BURST} runs told within 90 s")
        burst = [
            (request.at - start, len(json.loads(request.body)["alerts"]))
            for request in receiver.requests[before:]
        ]
        return firsts, burst


def scan_duration() -> tuple[float, float]:
    os.environ["LABBOOK_HOME"] = tempfile.mkdtemp(prefix="labbook-scan-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from alerts import scan
    from alerts.models import AlertRule
    from tracking import selectors, services
    from tracking.models import Run

    call_command("migrate", verbosity=0)
    user, _ = services.user_get_or_create(username="bench")
    services.team_create(slug="bench", owner=user)
    services.project_create(user=user, team_slug="bench", slug="sweep")
    project = selectors.project_get_for_user(user, "bench/sweep")
    AlertRule.objects.create(
        project=project, name="stalls", trigger="run_stalled", params={"after_seconds": 600}
    )
    now = timezone.now()
    Run.objects.bulk_create(
        Run(project=project, name=f"run-{i}", created_by=user, last_seen_at=now)
        for i in range(SCAN_RUNS)
    )
    runs = [scan_once(scan) for _ in range(5)]
    stale = list(Run.objects.values_list("pk", flat=True)[:100])
    Run.objects.filter(pk__in=stale).update(last_seen_at=now - timedelta(seconds=900))
    with_stalls = scan_once(scan)
    return statistics.median(runs), with_stalls


def scan_once(scan) -> float:
    start = time.perf_counter()
    scan.scan()
    return (time.perf_counter() - start) * 1000


def report(label: str, times: list[float]) -> None:
    ordered = sorted(times)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(
        f"  {label:<34} p50 {statistics.median(ordered) * 1000:6.0f} ms"
        f"   p95 {p95 * 1000:6.0f} ms   max {ordered[-1] * 1000:6.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", nargs="?", const="redis://127.0.0.1:6379/8", default=None)
    args = parser.parse_args()
    print(
        f"Fail a run -> signed webhook received ({RUNS} runs, one at a time, each the first"
        " failure of a rule with default settings: group_wait 30 s):"
    )
    brokers = [("filesystem broker (embedded)", None)]
    if args.redis:
        brokers.append(("Redis broker", args.redis))
    for label, url in brokers:
        firsts, burst = latency(url)
        report(label, firsts)
        arrivals = ", ".join(f"{runs} runs at {seconds:.1f} s" for seconds, runs in burst)
        print(f"  {'':<34} {BURST} failing at once: {len(burst)} messages, at {arrivals}")
    quiet, stalled = scan_duration()
    print(f"Stall scan over {SCAN_RUNS:,} running runs (SQLite, one run_stalled rule):")
    print(f"  nothing stalled                    {quiet:6.1f} ms (median of 5)")
    print(f"  100 stalled (fires 100 alerts)     {stalled:6.1f} ms")


if __name__ == "__main__":
    main()
