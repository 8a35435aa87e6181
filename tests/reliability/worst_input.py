"""The worst inputs we know, sent to a real server while another client polls ``/healthz``.

Issue 16 asks that no single request hold the server. This module seeds a
server with what makes each hostile request expensive, then has ``CLIENTS``
threads send those requests round and round while a process of its own
polls ``/healthz`` and records how long each answer took:

- MLflow searches with backtracking-bait ``LIKE`` patterns against 60-character
  experiment and run names (``name LIKE '%%%%%%%%#'`` once held a server 136 s);
- a report block with a glob of the same kind (``name: '**********#'``), read
  anonymously through its share link, as the review did;
- pathological Markdown at the size limits: nested emphasis, lists and quotes
  in a report body (previewed and rendered) and in a comment thread;
- the largest report: MAX_BLOCKS charts of RUNS runs and MAX_METRICS metrics at
  MAX_MAX_POINTS points a line. A chart block may name up to 200 runs, but what a page
  reads and sends is bounded by its budget (reports_app.budget: 100,000 points), which
  20 runs of 10 metrics at 5,000 points already exceed ten times over.

``tests/security/test_worst_input_load.py`` runs it in CI; ``tests/benchmarks/
worst_input.py`` runs it longer and prints the figures for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from reports_app import blocks, comments, services
from tests.sdk.server import ROOT, LabbookServer

CLIENTS = 4
POLL_INTERVAL = 0.05  # seconds between /healthz polls
NAME = "x" * 59 + "y"  # 60 characters: what the patterns below try hardest to match
RUNS = 20  # seeded with every point: each one more costs 50,000 points to seed
METRICS = blocks.MAX_METRICS
POINTS = blocks.MAX_MAX_POINTS
REQUEST_CEILING = 600.0  # seconds: a request that takes longer is a frozen server

# LIKE patterns whose naive translation to a regular expression backtracks.
LIKE_BAIT = ["%%%%%%%%#", "%x%x%x%x%x%x%x%x%#", "_%_%_%_%_%_%_%_%_%#"]
GLOB_BAIT = ["**********#", "*x*x*x*x*x*x*x*x*#", "?*?*?*?*?*?*?*?*#"]


def pathological_markdown(limit: int) -> list[str]:
    """Markdown bodies of at most ``limit`` characters that are slow or deep to render."""
    half = limit // 2
    return [
        "*" * (limit - 1) + "a",
        ("*a " * (limit // 3))[:limit],
        "".join("  " * depth + "- item\n" for depth in range(200))[:limit],
        (">" * half + " deep")[:limit],
        ("[" * half + "a" + "](" * (half // 2 - 1))[:limit],
        ("| a " * (half // 4) + "|\n" + "|---" * (half // 4) + "|\n")[:limit],
        ("_a" * half)[:limit],
        ("`" * half + "a" + "`" * (half - 2))[:limit],
    ]


def largest_report(run_ids: list[int], keys: list[str]) -> str:
    """MAX_BLOCKS chart blocks, each at every maximum a block allows."""
    chart = (
        f"```chart\nruns: {run_ids[:RUNS]}\nmetrics: {keys[:METRICS]}\nmax_points: {POINTS}\n```\n"
    )
    return f"# The largest report\n\n{chart * blocks.MAX_BLOCKS}"


@dataclass
class Seeded:
    """What the worst requests need: ids, tokens, and the MLflow experiment id."""

    experiment_id: str
    share_tokens: list[str]
    report_ids: list[int]
    comment_target: str
    markdown: list[str]


def _mlflow(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return client.post(f"/api/2.0/mlflow/{path}", json=body).raise_for_status().json()


def _points(run_id: int, keys: list[str]) -> list[list[dict[str, Any]]]:
    """Every point of ``keys``, in batches of 10,000 (the per-request maximum)."""
    everything = [
        {"key": key, "step": step, "value": (step % 97) / 97.0, "timestamp": 1_700_000_000 + step}
        for key in keys
        for step in range(POINTS)
    ]
    return [everything[i : i + 10_000] for i in range(0, len(everything), 10_000)]


def seed(server: LabbookServer, *, progress: Callable[[str], None] = print) -> Seeded:
    with server.client() as client:
        client.timeout = httpx.Timeout(REQUEST_CEILING)
        for index in range(20):  # names the LIKE bait is matched against
            _mlflow(client, "experiments/create", {"name": f"{NAME}{index}"})
        experiment = _mlflow(client, "experiments/create", {"name": "lab/worst"})
        experiment_id = experiment["experiment_id"]
        keys = [f"train/metric_{index}" for index in range(METRICS)]
        run_ids = []
        for index in range(RUNS):
            run = client.post(
                "/api/v1/runs", json={"project": "lab/worst", "name": NAME + str(index)}
            )
            run_ids.append(run.raise_for_status().json()["id"])
            for batch in _points(run_ids[-1], keys):
                client.post(
                    f"/api/v1/runs/{run_ids[-1]}/metrics", json={"points": batch}
                ).raise_for_status()
            progress(f"seeded run {index + 1}/{RUNS}")
        markdown = pathological_markdown(services.MAX_BODY)
        bodies = [
            largest_report(run_ids, keys),
            "".join(
                f"```chart\nruns: {{name: '{bait}'}}\nmetrics: [train/metric_0]\n```\n"
                for bait in GLOB_BAIT
            ),
            *markdown,
        ]
        report_ids, tokens = [], []
        for index, body in enumerate(bodies):
            report = (
                client.post(
                    "/api/v1/reports",
                    json={"project": "lab/worst", "title": f"Worst {index}", "body": body},
                )
                .raise_for_status()
                .json()
            )
            report_ids.append(report["id"])
            link = client.post(f"/api/v1/reports/{report['id']}/share-links", json={})
            tokens.append(link.raise_for_status().json()["token"])
        target = f"run:{run_ids[0]}"
        for body in pathological_markdown(comments.MAX_BODY):
            client.post(
                "/api/v1/comments", json={"target": target, "body": body}
            ).raise_for_status()
        progress(f"seeded {len(report_ids)} reports and their share links")
    return Seeded(experiment_id, tokens, report_ids, target, markdown)


def worst_requests(seeded: Seeded) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """(label, method, path, JSON body): each request the clients cycle through."""
    requests: list[tuple[str, str, str, dict[str, Any] | None]] = []
    for bait in LIKE_BAIT:
        requests.append(
            (
                "experiments/search LIKE",
                "POST",
                "/api/2.0/mlflow/experiments/search",
                {"filter": f"name LIKE '{bait}'", "max_results": 1000},
            )
        )
        requests.append(
            (
                "runs/search LIKE",
                "POST",
                "/api/2.0/mlflow/runs/search",
                {
                    "experiment_ids": [seeded.experiment_id],
                    "filter": f"attributes.run_name ILIKE '{bait}'",
                },
            )
        )
    requests.append(("largest report, share link", "GET", f"/s/{seeded.share_tokens[0]}", None))
    requests.append(("glob report, share link", "GET", f"/s/{seeded.share_tokens[1]}", None))
    for token in seeded.share_tokens[2:]:
        requests.append(("pathological Markdown, share link", "GET", f"/s/{token}", None))
    for report_id, body in zip(seeded.report_ids[2:], seeded.markdown, strict=True):
        requests.append(
            (
                "pathological Markdown, preview",
                "POST",
                f"/api/v1/reports/{report_id}/preview",
                {"body": body},
            )
        )
    requests.append(
        ("pathological comments", "GET", f"/api/v1/comments?target={seeded.comment_target}", None)
    )
    return requests


def _poll_health(url: str, seconds: float) -> dict[str, Any]:
    """/healthz polled for ``seconds`` by ``health_poller`` in a process of its own."""
    command = [sys.executable, "-m", "tests.reliability.health_poller", url, str(seconds)]
    done = subprocess.run(
        [*command, str(POLL_INTERVAL)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + REQUEST_CEILING,
        check=True,
    )
    return json.loads(done.stdout)


@dataclass
class Outcome:
    """What the load produced: /healthz latencies and the worst requests' statuses."""

    health: list[float] = field(default_factory=list)
    health_failures: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    slowest: dict[str, float] = field(default_factory=dict)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.health)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def server_errors(self) -> list[tuple[str, int]]:
        return [key for key in self.statuses if key[1] >= 500]

    def summary(self) -> str:
        p50, p99, worst = (self.percentile(0.5), self.percentile(0.99), max(self.health))
        lines = [
            f"/healthz: {len(self.health)} polls, {self.health_failures} failed, "
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {worst * 1000:.0f} ms"
        ]
        for (label, status), count in sorted(self.statuses.items()):
            slowest = self.slowest[label]
            lines.append(f"  {label}: {count} answered {status}, slowest {slowest:.2f} s")
        return "\n".join(lines)


def load(server: LabbookServer, seeded: Seeded, *, seconds: float) -> Outcome:
    """CLIENTS threads send the worst requests for ``seconds`` while /healthz is polled."""
    outcome = Outcome()
    lock = threading.Lock()
    stop = threading.Event()
    requests = worst_requests(seeded)

    # Each client starts at its own share of the kinds and sends at least that share once,
    # so every kind is sent and answered however slow a busy machine makes the first round.
    share = -(-len(requests) // CLIENTS)

    def client_loop(offset: int) -> None:
        with server.client() as client:
            client.timeout = httpx.Timeout(REQUEST_CEILING)
            index = offset
            while not stop.is_set() or index - offset < share:
                label, method, path, body = requests[index % len(requests)]
                started = time.perf_counter()
                status = client.request(method, path, json=body).status_code
                took = time.perf_counter() - started
                with lock:
                    outcome.statuses[(label, status)] += 1
                    outcome.slowest[label] = max(outcome.slowest.get(label, 0.0), took)
                index += 1

    threads = [
        threading.Thread(target=client_loop, args=(offset * len(requests) // CLIENTS,), daemon=True)
        for offset in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    polled = _poll_health(server.url, seconds)
    outcome.health, outcome.health_failures = polled["latencies"], polled["failures"]
    stop.set()
    for thread in threads:
        thread.join(REQUEST_CEILING * share)
    return outcome
