"""Page render benchmark: the runs table with 10,000 runs, a run page, a compare page.

    python tests/benchmarks/pages.py                 # SQLite (embedded default)
    python tests/benchmarks/pages.py --database-url postgres://postgres@127.0.0.1:5432/postgres

Seeds a fresh LABBOOK_HOME (or a throwaway PostgreSQL database) with one
project of 10,000 runs (config, tags, three metric summaries each) and one
run of 50 metrics, then renders each page in-process with Django's test
client (no HTTP, so this is the server's own time: queries, template) and
prints the median and p95 of REPEATS renders with the number of queries.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNS = 10_000
REPEATS = 15


def seed() -> dict[str, object]:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from tracking import services
    from tracking.ingest import Point, metrics_ingest
    from tracking.models import MetricSeries, Run, RunTag

    user, _ = services.user_get_or_create(username="bench")
    services.team_create(slug="bench", owner=user)
    project = services.project_create(user=user, team_slug="bench", slug="sweep")
    print(f"seeding {RUNS:,} runs...", file=sys.stderr)
    Run.objects.bulk_create(
        Run(
            project=project,
            name=f"run-{i:05d}",
            config={"lr": (i % 97) / 1000, "batch_size": 32 * (1 + i % 4), "seed": i},
            status=("running", "finished", "failed")[i % 3],
            created_by=user,
        )
        for i in range(RUNS)
    )
    run_ids = list(Run.objects.filter(project=project).values_list("pk", flat=True))
    RunTag.objects.bulk_create(RunTag(run_id=pk, name=f"sweep-{pk % 10}") for pk in run_ids)
    MetricSeries.objects.bulk_create(
        MetricSeries(run_id=pk, key=key, count=100, first_step=0, last_step=99, last_value=pk / 7)
        for pk in run_ids
        for key in ("train/loss", "val/loss", "val/acc")
    )
    detailed = services.run_create(user=user, project=project, name="detailed", tags=["a"])
    points = [Point(f"metric/{k:02d}", s, s / 10, float(s)) for k in range(50) for s in range(200)]
    metrics_ingest(run=detailed, points=points)
    return {"user": user, "run": detailed, "compare": ",".join(map(str, run_ids[:20]))}


def measure(client, path: str) -> tuple[float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(path)  # warm up: template compilation, caches
    times = []
    for _ in range(REPEATS):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL server to create a throwaway db on")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.benchmarks import throwaway

    created = throwaway.configure(args.database_url, prefix="pages")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    data = seed()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(data["user"])
    run = data["run"]
    pages = [
        ("runs table, newest first", "/bench/sweep/"),
        ("runs table, last page", "/bench/sweep/?page=201"),
        ("runs table, sorted by config.lr", "/bench/sweep/?columns=config.lr&sort=-config.lr"),
        ("runs table, sorted by summary.val/loss", "/bench/sweep/?sort=summary.val/loss"),
        (
            "runs table, status + tag + text filter",
            "/bench/sweep/?status=failed&tag=sweep-3&q=run-0",
        ),
        ("run page, 50 metrics", f"/bench/sweep/runs/{run.pk}"),
        ("compare page, 20 runs", f"/bench/sweep/compare?runs={data['compare']}"),
        (
            "chart data, 200 points (history API)",
            f"/api/v1/runs/{run.pk}/metrics/metric/07?max_points=1000",
        ),
    ]
    engine = connection.vendor
    print(f"\nPages with {RUNS:,} runs in the project ({engine}), {REPEATS} renders each:\n")
    print(f"{'page':<42} {'median':>9} {'p95':>9} {'queries':>8}")
    for label, path in pages:
        median, p95, queries = measure(client, path)
        print(f"{label:<42} {median:>7.1f}ms {p95:>7.1f}ms {queries:>8}")
    throwaway.drop(args.database_url, created)


if __name__ == "__main__":
    main()
