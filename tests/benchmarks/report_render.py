"""Report render benchmark: 20 charts x 5 runs x 100,000 points per series.

    python tests/benchmarks/report_render.py                 # SQLite (embedded default)
    python tests/benchmarks/report_render.py --database-url postgres://postgres@127.0.0.1:5432/postgres

Seeds a fresh LABBOOK_HOME (or a throwaway PostgreSQL database) with 5 runs
logging 20 metrics of 100,000 steps each (10 million points, through the real
ingest path, so rollups are built as in production), writes a report with 20
chart blocks (one metric each, all 5 runs), then renders the report page
in-process with Django's test client and prints the median and p95 server
time, the number of queries and the size of the HTML (figures included).
Targets: under 300 ms and under 2 MB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNS = 5
CHARTS = 20
POINTS = 100_000
BATCH = 10_000
REPEATS = 15


def seed():
    import math

    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from reports_app import services as report_services
    from tracking import selectors, services
    from tracking.ingest import Point, metrics_ingest

    user, _ = services.user_get_or_create(username="bench")
    services.team_create(slug="bench", owner=user)
    services.project_create(user=user, team_slug="bench", slug="sweep")
    project = selectors.project_get_for_user(user, "bench/sweep")
    keys = [f"metric/{k:02d}" for k in range(CHARTS)]
    runs = []
    started = time.perf_counter()
    for r in range(RUNS):
        run = services.run_create(user=user, project=project, name=f"run-{r}")
        runs.append(run)
        for key_index, key in enumerate(keys):
            for start in range(0, POINTS, BATCH):
                points = [
                    Point(key, s, math.exp(-s / 30_000) + 0.01 * math.sin(s + key_index), 1e9 + s)
                    for s in range(start, start + BATCH)
                ]
                metrics_ingest(run=run, points=points)
        elapsed = time.perf_counter() - started
        print(f"  seeded run {r + 1}/{RUNS} ({elapsed:.0f} s)", file=sys.stderr)
    ids = ", ".join(str(run.pk) for run in runs)
    body = "\n\n".join(
        f"## {key}\n\n```chart\nruns: [{ids}]\nmetrics: [{key}]\ntitle: {key}\n```" for key in keys
    )
    report = report_services.report_create(
        user=user, project=project, title="Twenty charts", body=body
    )
    return user, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL server to create a throwaway db on")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.benchmarks import throwaway

    created = throwaway.configure(args.database_url, prefix="report")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    total = RUNS * CHARTS * POINTS
    print(f"seeding {RUNS} runs x {CHARTS} metrics x {POINTS:,} points = {total:,}...")
    user, report = seed()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    path = f"/reports/{report.pk}/"
    response = client.get(path)  # warm up
    assert response.status_code == 200
    times, size, queries = [], len(response.content), 0
    for _ in range(REPEATS):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - start) * 1000)
        queries = len(captured)
    times.sort()
    print(f"\nReport of {CHARTS} charts x {RUNS} runs x {POINTS:,} points ({connection.vendor}):")
    print(f"  server time  median {statistics.median(times):.0f} ms, p95 {times[-1]:.0f} ms")
    print(f"  page size    {size / 1e6:.2f} MB (HTML with every figure's data)")
    print(f"  queries      {queries}")
    throwaway.drop(args.database_url, created)


if __name__ == "__main__":
    main()
