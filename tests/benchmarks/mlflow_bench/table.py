"""The figures, their targets, and the table that compares them."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.benchmarks.mlflow_bench.common import Plan, say

Goal = Callable[[Any, Any], bool]  # (Labbook's value, MLflow's value or None) -> met


def more(factor: float) -> Goal:
    return lambda lab, ml: ml is not None and lab >= factor * ml


def faster(factor: float) -> Goal:
    return lambda lab, ml: ml is not None and ml >= factor * lab


def below(limit: float) -> Goal:
    return lambda lab, ml: lab < limit


@dataclass(frozen=True)
class Spec:
    key: str
    label: str
    unit: str  # points/s, calls/s, ms, MB, runs, check
    target: str = ""
    goal: Goal | None = None
    sqlite_only: bool = False  # the target holds for the embedded default only

    @property
    def higher_better(self) -> bool:
        return self.unit.endswith("/s")

    def cell(self, value: Any) -> str:
        if value is None:
            return "-"
        if self.unit == "check":
            return value
        if self.unit == "ms" and value < 100:
            return f"{value:,.1f} ms"
        return f"{value:,.0f} {self.unit}"


def specs(plan: Plan) -> list[Spec]:
    n = f"{plan.writers} processes x {plan.writer_points:,} points"
    return [
        Spec("ingest", f"1. ingestion, {plan.ingest_batches} log_batch of 1,000", "points/s",
             "≥ 10x", more(10)),
        Spec("chatty", f"2. chatty, {plan.chatty_calls:,} log_metric calls", "calls/s"),
        Spec("concurrent", f"3. concurrent, {n}", "points/s", "≥ 10x", more(10)),
        Spec("once", "3. every point stored exactly once", "check", "zero lost/duplicated",
             lambda lab, ml: lab == "PASS"),
        Spec("history", f"4. get_metric_history, {plan.small_points:,} points", "ms",
             "≥ 5x faster", faster(5)),
        Spec("history-big", f"4. get_metric_history, {plan.big_points:,} points", "ms",
             "answered", lambda lab, ml: lab is not None),
        Spec("growth", "4. server RSS growth during that read", "MB", "bounded (< 100 MB)",
             below(100)),
        Spec("search", f"5. search_runs, {plan.search_runs} runs, filter + order", "ms",
             "≥ 3x faster", faster(3)),
        Spec("found", "5. runs found (metrics.acc > 0.5)", "runs", "same as MLflow",
             lambda lab, ml: lab == ml),
        Spec("idle", "6. RSS of all server processes, idle", "MB"),
        Spec("peak", "6. peak RSS of all server processes, 1-5", "MB", "lower than MLflow's",
             lambda lab, ml: ml is not None and lab < ml),
        Spec("own", "own API: ingest, 10,000-point batches", "points/s",
             "≥ 100,000 points/s on SQLite", lambda lab, ml: lab >= 100_000, sqlite_only=True),
        Spec("downsampled", f"own API: {plan.big_points:,}-point key, max_points=1000", "ms",
             "< 100 ms", below(100)),
        Spec("report", "20-chart report render (report_render.py)", "ms", "< 300 ms", below(300)),
        Spec("live-p50", "live update, ingest -> websocket, p50", "ms"),
        Spec("live-p95", "live update, ingest -> websocket, p95", "ms", "< 1 s", below(1000)),
    ]  # fmt: skip


class Results:
    def __init__(self, plan: Plan) -> None:
        self.specs = {spec.key: spec for spec in specs(plan)}
        self.values: dict[tuple[str, str], list[Any]] = {}

    def add(self, key: str, server: str, value: Any) -> None:
        self.values.setdefault((key, server), []).append(value)
        say(f"  {server:<20} {self.specs[key].label}: {self.specs[key].cell(value)}")

    def value(self, key: str, server: str) -> Any:
        """The median, or for a check PASS only when every repetition passed."""
        values = self.values.get((key, server))
        if not values:
            return None
        if self.specs[key].unit == "check":
            return next((v for v in values if v != "PASS"), "PASS")
        return statistics.median(values)


def ratio_cell(spec: Spec, lab: Any, ml: Any) -> str:
    if lab is None or ml is None or spec.unit == "check":
        return "-"
    if spec.unit == "runs":
        return "same" if lab == ml else "differs"
    ratio = lab / ml
    if spec.higher_better or ratio == 0:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x ({1 / ratio:.1f}x {'faster' if spec.unit == 'ms' else 'less'})"


def met_cell(spec: Spec, server: str, lab: Any, ml: Any) -> str:
    if spec.goal is None or lab is None:
        return ""
    if spec.sqlite_only and "SQLite" not in server:
        return "-"
    return "yes" if spec.goal(lab, ml) else "NO"


def table_rows(results: Results, servers: list[str], ceiling: dict[str, float]) -> list[list[str]]:
    labbooks = servers[1:]
    rows = []
    for spec in results.specs.values():
        ml = results.value(spec.key, servers[0])
        labs = [results.value(spec.key, server) for server in labbooks]
        ratios = " / ".join(ratio_cell(spec, lab, ml) for lab in labs)
        met = " / ".join(met_cell(spec, s, lab, ml) for s, lab in zip(labbooks, labs, strict=True))
        cells = [spec.cell(ml), *(spec.cell(lab) for lab in labs)]
        best = ratio_cell(spec, ceiling[spec.key], ml) if spec.key in ceiling else ""
        rows.append([spec.label, *cells, ratios, best, spec.target, met.strip(" /")])
    return rows


def print_table(results: Results, servers: list[str], ceiling: dict[str, float]) -> None:
    header = ["figure", *servers, "ratio Labbook/MLflow", "ceiling", "target", "met?"]
    rows = table_rows(results, servers, ceiling)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
