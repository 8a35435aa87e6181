"""What alert rules cost the ingest they judge: a batch with 50 rules on its project, and without.

    python tests/benchmarks/alert_eval.py                           # SQLite (embedded default)
    python tests/benchmarks/alert_eval.py --database-url postgres://postgres@127.0.0.1:5432/postgres

Metric triggers are evaluated inside the ingest transaction (alerts/evaluation.py),
so their cost is paid by every batch. This stores the same batches into two
runs with the same 20,000-point history, one in a project without rules and one
in a project with 50 enabled rules on the batch's keys (thresholds, windows
over points and over seconds, changes against the best and against a baseline
run, z-scores, NaN checks, a stagnation check, plus hang and stall rules the
batch does not wake), and prints the median and p95 of ``metrics_ingest`` per
batch for two batch shapes: a 10-point step (10 keys) as a training loop logs
each step, and a 1,000-point batch (10 keys, 100 steps) as the SDK sends when
it catches up. The rules watch values that never cross their thresholds, the
normal case: a firing rule writes its alert once and costs one more lookup after.
Then times one scan (stalls, hangs, reminders) of 50 hang rules over 500 running runs.
In-process, no HTTP: the figure is the evaluation's share of the write itself.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

KEYS = tuple(f"m{i}" for i in range(10))
HISTORY = 2_000  # steps per key before the clock starts: 20,000 points a run
SMALL, LARGE = 1, 100  # steps per batch: 10 and 1,000 points
REPEATS = {SMALL: 300, LARGE: 40}
SCAN_RUNS = 500


def value(key_index: int, step: int) -> float:
    """A loss-like curve per key: falls slowly, a little noise, never near a threshold."""
    return 1.0 / (1.0 + step / 500) + 0.01 * math.sin(step * 0.7 + key_index)


def rules_for(baseline_run_id: int) -> list[tuple[str, dict]]:
    """50 rules: every metric trigger, on the batch's keys, none of them crossing."""
    rules: list[tuple[str, dict]] = []
    for i, key in enumerate(KEYS):
        rules.append(("metric_threshold", {"key": key, "op": ">", "value": 10.0, "for_points": 3}))
        rules.append(
            (
                "metric_window",
                {"key": key, "agg": "mean", "window_points": 50, "op": ">", "value": 10.0}
                if i % 2
                else {"key": key, "agg": "max", "window_seconds": 600, "op": ">", "value": 10.0},
            )
        )
        rules.append(
            (
                "metric_change",
                {"key": key, "mode": "min", "percent": 500, "against": "best"}
                if i % 2
                else {
                    "key": key,
                    "mode": "min",
                    "percent": 500,
                    "against": "baseline",
                    "baseline_run": baseline_run_id,
                },
            )
        )
        rules.append(("metric_zscore", {"key": key, "window_points": 100, "z": 50}))
        rules.append(
            ("metric_nan", {"key": key})
            if i < 8
            else ("metric_stagnant", {"key": key, "mode": "min", "patience_steps": 10**9})
        )
    assert len(rules) == 50
    return rules


def setup() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def world():
    from django.contrib.auth import get_user_model

    from tracking import services
    from tracking.models import Project

    user = get_user_model().objects.create_user("bench", "bench@example.com", "x" * 12)
    services.team_create(slug="bench", owner=user)
    for slug in ("plain", "watched"):
        services.project_create(user=user, team_slug="bench", slug=slug)
    plain = Project.objects.get(slug="plain")
    watched = Project.objects.get(slug="watched")
    return user, plain, watched


def batch(first_step: int, steps: int):
    from tracking.ingest import Point

    now = time.time()
    return [
        Point(key, step, value(k, step), now)
        for step in range(first_step, first_step + steps)
        for k, key in enumerate(KEYS)
    ]


def seeded_run(user, project, name: str):
    from tracking import services
    from tracking.ingest import metrics_ingest

    run = services.run_create(user=user, project=project, name=name)
    for start in range(0, HISTORY, 500):
        metrics_ingest(run=run, points=batch(start, 500))
    return run


def add_rules(user, project, baseline_run_id: int) -> int:
    from alerts import services
    from tracking import selectors

    project = selectors.project_get_for_user(user, project.full_name)  # with the owner's role

    made = 0
    for i, (trigger, params) in enumerate(rules_for(baseline_run_id)):
        data = {"name": f"{trigger}-{i}", "trigger": trigger, "params": params, "group_wait": 0}
        services.rule_create(user=user, project=project, data=data)
        made += 1
    return made


def time_batches(run, steps: int, repeats: int, first_step: int) -> list[float]:
    from tracking.ingest import metrics_ingest

    seconds = []
    for i in range(repeats):
        points = batch(first_step + i * steps, steps)
        start = time.perf_counter()
        metrics_ingest(run=run, points=points)
        seconds.append(time.perf_counter() - start)
    return seconds


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, math.ceil(len(values) * 0.95) - 1)]


def scan_figure(user, project) -> tuple[float, int]:
    """One scan with 50 hang rules over SCAN_RUNS running runs that all progress."""
    from datetime import timedelta

    from django.utils import timezone

    from alerts import scan, services
    from tracking import selectors
    from tracking import services as tracking_services
    from tracking.ingest import metrics_ingest
    from tracking.models import Run

    project = selectors.project_get_for_user(user, project.full_name)
    for i in range(50):
        data = {
            "name": f"hang-{i}",
            "trigger": "run_no_progress",
            "params": {"after_seconds": 600 + i},
            "group_wait": 0,
        }
        services.rule_create(user=user, project=project, data=data)
    for i in range(SCAN_RUNS):
        run = tracking_services.run_create(user=user, project=project, name=f"live-{i}")
        metrics_ingest(run=run, points=batch(0, 1))
    Run.objects.filter(project=project).update(created_at=timezone.now() - timedelta(hours=1))
    scan.scan()  # warm
    start = time.perf_counter()
    result = scan.scan()
    return time.perf_counter() - start, result.hung


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="postgres://… (a throwaway database is made)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import throwaway

    name = throwaway.configure(args.database_url, prefix="alert-eval")
    os.environ["LOG_LEVEL"] = "WARNING"
    try:
        setup()
        user, plain, watched = world()
        baseline = seeded_run(user, watched, "baseline")
        runs = {
            "no rules": seeded_run(user, plain, "plain"),
            "50 rules": seeded_run(user, watched, "watched"),
        }
        rules = add_rules(user, watched, baseline.pk)
        database = "PostgreSQL" if name else "SQLite"
        print(f"Alert evaluation inside ingest ({database}; {rules} rules, 20,000-point history)")
        print(f"{'batch':<22}{'no rules':>22}{'50 rules':>22}{'evaluation':>14}")
        for steps in (SMALL, LARGE):
            figures = {}
            for label, run in runs.items():
                time_batches(run, steps, 5, HISTORY)  # warm
                seconds = time_batches(run, steps, REPEATS[steps], HISTORY + 5 * steps)
                figures[label] = (statistics.median(seconds), p95(seconds))
            base, ruled = figures["no rules"], figures["50 rules"]
            extra = ruled[0] - base[0]
            print(
                f"{steps * len(KEYS):>6,} points ({steps:>3} step{'s' if steps > 1 else ' '})"
                f"{base[0] * 1e3:>12.2f} / {base[1] * 1e3:5.2f} ms"
                f"{ruled[0] * 1e3:>12.2f} / {ruled[1] * 1e3:5.2f} ms"
                f"{extra * 1e3:>+9.2f} ms"
            )
        print("(median / p95 per batch; evaluation = the medians' difference)")
        seconds, hung = scan_figure(user, watched)
        print(
            f"Scan with 50 run_no_progress rules over {SCAN_RUNS} running runs:"
            f" {seconds * 1e3:.0f} ms ({hung} hung)"
        )
    finally:
        throwaway.drop(args.database_url, name)


if __name__ == "__main__":
    main()
