"""Report render benchmark: 20 charts x 5 runs x 100,000 points per series.

    python tests/benchmarks/report_render.py                 # SQLite (embedded default)
    python tests/benchmarks/report_render.py --database-url postgres://postgres@127.0.0.1:5432/postgres
    python tests/benchmarks/report_render.py --largest       # the page budget (see below)
    python tests/benchmarks/report_render.py --markdown      # the Markdown render budget

Seeds a fresh LABBOOK_HOME (or a throwaway PostgreSQL database) with 5 runs
logging 20 metrics of 100,000 steps each (10 million points, through the real
ingest path, so rollups are built as in production), writes a report with 20
chart blocks (one metric each, all 5 runs), then renders the report page
in-process with Django's test client and prints the median and p95 server
time, the number of queries and the size of the HTML (figures included).
Targets: under 300 ms and under 2 MB.

``--largest`` renders the largest report the block limits allow (50 charts,
each of 20 runs x 10 metrics at ``max_points: 5000``, x by step, time and
relative minutes in turn; series of 10,000 steps) and prints its bytes and
render time with the page budget lifted (for one chart: fifty would need
gigabytes) and kept, then the first and the cached view of its share link.
``--markdown`` times 200,000-character bodies of pathological Markdown.
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


LARGEST_RUNS = 20
LARGEST_METRICS = 10
LARGEST_STEPS = 10_000
LARGEST_CHARTS = 50
X_AXES = ("step", "time", "relative")


def seed_largest():
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from reports_app import services as report_services
    from tracking import selectors, services
    from tracking.ingest import Point, metrics_ingest

    user, _ = services.user_get_or_create(username="bench")
    services.team_create(slug="bench", owner=user)
    services.project_create(user=user, team_slug="bench", slug="sweep")
    project = selectors.project_get_for_user(user, "bench/sweep")
    keys = [f"metric/{k}" for k in range(LARGEST_METRICS)]
    runs = []
    for r in range(LARGEST_RUNS):
        run = services.run_create(user=user, project=project, name=f"sweep-run-{r:02d}")
        runs.append(run)
        for k, key in enumerate(keys):
            points = [
                Point(key, s, 1 / (s + 1) + 0.001 * ((s * 7919 + k) % 101), 1.7e9 + s)
                for s in range(LARGEST_STEPS)
            ]
            metrics_ingest(run=run, points=points)
        print(f"  seeded run {r + 1}/{LARGEST_RUNS}", file=sys.stderr)

    def body(charts: int) -> str:
        ids = ", ".join(str(run.pk) for run in runs)
        return "\n\n".join(
            f"## Chart {c}\n\n```chart\nruns: [{ids}]\nmetrics: [{', '.join(keys)}]\n"
            f"x: {X_AXES[c % 3]}\nmax_points: 5000\n```"
            for c in range(charts)
        )

    def report(title: str, charts: int):
        return report_services.report_create(
            user=user, project=project, title=title, body=body(charts)
        )

    return user, report("One chart", 1), report("Largest", LARGEST_CHARTS)


def timed_get(client, path: str, repeats: int) -> tuple[float, int, int]:
    """Median ms, bytes and queries of ``repeats`` GETs of ``path``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    for _ in range(repeats):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(times), len(response.content), len(captured)


def figures_size(report) -> tuple[int, int, int, int]:
    """Points, JSON bytes of the figures, charts thinned and left out of one render."""
    import orjson

    from reports_app import render

    rendered = render.render_report(report)
    points = sum(len(t["y"]) for f in rendered.figures for t in f.figure["data"])
    size = sum(len(orjson.dumps(f.as_dict())) for f in rendered.figures)
    return points, size, rendered.thinned, rendered.left_out


def largest() -> None:
    from django.test import Client

    from reports_app import budget
    from reports_app import services as report_services

    total = LARGEST_RUNS * LARGEST_METRICS * LARGEST_STEPS
    print(
        f"seeding {LARGEST_RUNS} runs x {LARGEST_METRICS} metrics x {LARGEST_STEPS:,} = {total:,}"
    )
    user, one, report = seed_largest()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    kept = budget.PAGE_POINTS, budget.PAGE_FIGURE_BYTES
    budget.PAGE_POINTS, budget.PAGE_FIGURE_BYTES = 10**12, 10**12  # as before the budget
    points, size, _, _ = figures_size(one)
    ms, page, _ = timed_get(client, f"/reports/{one.pk}/", 3)
    budget.PAGE_POINTS, budget.PAGE_FIGURE_BYTES = kept
    print("\nWithout a page budget, ONE chart of 20 runs x 10 metrics x 5,000 points:")
    print(
        f"  {points:,} points, figures {size / 1e6:.1f} MB, page {page / 1e6:.1f} MB, {ms:.0f} ms"
    )
    print(
        f"  x {LARGEST_CHARTS} charts: about {page * LARGEST_CHARTS / 1e9:.2f} GB, "
        f"{ms * LARGEST_CHARTS / 1000:.0f} s per view"
    )
    points, size, thinned, left_out = figures_size(report)
    ms, page, queries = timed_get(client, f"/reports/{report.pk}/", 5)
    print(
        f"\nWith the page budget ({budget.PAGE_POINTS:,} points, "
        f"{budget.PAGE_FIGURE_BYTES / 1e6:g} MB), all {LARGEST_CHARTS} charts:"
    )
    print(
        f"  {points:,} points, figures {size / 1e6:.2f} MB, page {page / 1e6:.2f} MB, "
        f"median {ms:.0f} ms, {queries} queries; {thinned} thinned, {left_out} left out"
    )
    _link, token = report_services.share_link_create(report=report, user=user)
    anonymous = Client(HTTP_HOST="127.0.0.1")
    first, _, first_queries = timed_get(anonymous, f"/s/{token}", 1)
    cached, _, cached_queries = timed_get(anonymous, f"/s/{token}", 15)
    print(
        f"  share link: first view {first:.0f} ms ({first_queries} queries), "
        f"cached {cached:.0f} ms median ({cached_queries} queries)"
    )


def markdown_cases() -> dict[str, str]:
    from reports_app.services import MAX_BODY

    def fill(unit: str) -> str:
        return (unit * (MAX_BODY // len(unit) + 1))[:MAX_BODY]

    return {
        "nested lists (2 spaces a level)": fill("".join("  " * i + "- x\n" for i in range(400))),
        "nested quotes": fill("".join(">" * i + " x\n" for i in range(1, 300))),
        "emphasis runs": fill("**a *b* c** "),
        "a long table": "| a | b | c |\n|---|---|---|\n" + fill("| 1 | 2 | 3 |\n")[:-40],
        "inline links": fill("[a](http://x.y/z) "),
        "reference links": fill("[a][b] ")[:-16] + "\n\n[b]: http://x\n",
        "open brackets": "[" * MAX_BODY,
        "list items": fill("- x\n"),
        "code blocks": fill("```python\nprint(1)\n```\n\n"),
        "headings, no blank lines": fill("# h\n"),
        "unclosed <ul>": fill("<ul>"),
        "unclosed <div>": fill("<div>"),
        "backticks": fill("`a "),
        "entities": fill("&amp; "),
    }


def markdown() -> None:
    from reports_app import markup

    print(
        f"\nMarkdown bodies at the maximum size ({len(markdown_cases()['open brackets']):,} chars):"
    )
    for name, text in markdown_cases().items():
        start = time.perf_counter()
        html, _source = markup.convert(text)
        ms = (time.perf_counter() - start) * 1000
        shown = "shown as text" if html.startswith('<pre class="markdown-unrendered">') else ""
        print(f"  {name:32} {ms:6.0f} ms  {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL server to create a throwaway db on")
    parser.add_argument("--largest", action="store_true", help="the page budget's benchmark")
    parser.add_argument("--markdown", action="store_true", help="the Markdown render budget")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.benchmarks import throwaway

    created = throwaway.configure(args.database_url, prefix="report")
    import django

    django.setup()
    if args.markdown or args.largest:
        import logging

        logging.disable(logging.WARNING)  # each body shown as text logs a warning
        if args.markdown:
            markdown()
        else:
            largest()
        throwaway.drop(args.database_url, created)
        return
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
