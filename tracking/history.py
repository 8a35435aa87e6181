"""Metric history reads, with downsampling that keeps spikes.

``max_points=N`` splits the step range into N/2 buckets and keeps each
bucket's minimum and maximum point (and its first NaN, so a divergence never
disappears from a chart), plus the first and last point of the range. When
the range holds at most N points, every point is returned.

The buckets are computed from ``MetricRollup`` rows (min/max per 16**L steps,
maintained on ingest), so reading a million-point series touches a few
thousand rows. Bucket edges are aligned to the rollup grid; the two partial
rollup cells at the edges of a zoomed range are read from the raw points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Max, Min, Q

from tracking import rollups
from tracking.models import MetricPoint, MetricRollup, MetricSeries
from tracking.validation import float_to_json

DEFAULT_LIMIT = 100_000
MAX_LIMIT = 1_000_000
MAX_MAX_POINTS = 100_000


@dataclass
class History:
    key: str
    steps: list[int]
    values: list[float | str]
    timestamps: list[float]
    total: int
    downsampled: bool
    next_step: int | None = None  # where the next page starts when ``limit`` cut the answer

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "steps": self.steps,
            "values": self.values,
            "timestamps": self.timestamps,
            "total": self.total,
            "downsampled": self.downsampled,
            "next_step": self.next_step,
        }


def _json_values(values: list[float | None]) -> list[float | str]:
    # v - v == 0 holds exactly for finite floats: the cheap test for the common case.
    return [v if v is not None and v - v == 0 else float_to_json(v) for v in values]


def _points(series: MetricSeries):
    return MetricPoint.objects.filter(series_id=series.pk)


def _range_stats(series: MetricSeries, lo: int | None, hi: int | None) -> tuple[int, int, int]:
    """(first step, last step, point count) of the series within [lo, hi]."""
    if (lo is None or lo <= (series.first_step or 0)) and (
        hi is None or hi >= (series.last_step or 0)
    ):
        return series.first_step or 0, series.last_step or 0, series.count
    points = _points(series)
    if lo is not None:
        points = points.filter(step__gte=lo)
    if hi is not None:
        points = points.filter(step__lte=hi)
    stats = points.aggregate(first=Min("step"), last=Max("step"))
    if stats["first"] is None:
        return 0, -1, 0
    count = rollups.count_in_range(series.pk, stats["first"], stats["last"])
    return stats["first"], stats["last"], count


def metric_history(
    series: MetricSeries,
    *,
    max_points: int | None = None,
    step_min: int | None = None,
    step_max: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> History:
    first, last, total = _range_stats(series, step_min, step_max)
    if total == 0 or series.count == 0:
        return History(series.key, [], [], [], 0, False)
    if max_points is None or total <= max_points:
        return _raw(series, first, last, total, limit)
    steps = _downsampled_steps(series, first, last, max(1, max_points // 2))
    return _history(series.key, _points_at(series, sorted(steps)), total, downsampled=True)


def _points_at(series: MetricSeries, steps: list[int]) -> list[tuple]:
    """(step, value, timestamp) at ``steps``, by primary-key lookups."""
    if connection.vendor != "postgresql":
        points = _points(series).filter(step__in=steps).order_by("step")
        return list(points.values_list("step", "value", "timestamp"))
    # Joining an array keeps PostgreSQL on the primary key even before ANALYZE
    # has seen a freshly loaded series (an IN list then plans as a full scan).
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT p.step, p.value, p."timestamp" FROM {MetricPoint._meta.db_table} p'  # noqa: S608
            " JOIN unnest(%s::bigint[]) AS s(step) ON p.step = s.step"
            " WHERE p.series_id = %s ORDER BY p.step",
            [steps, series.pk],
        )
        return cursor.fetchall()


def _history(key: str, rows: list[tuple], total: int, *, downsampled: bool) -> History:
    if not rows:
        return History(key, [], [], [], total, downsampled)
    steps, values, stamps = (list(column) for column in zip(*rows, strict=True))
    return History(key, steps, _json_values(values), stamps, total, downsampled)


def _raw(series: MetricSeries, first: int, last: int, total: int, limit: int) -> History:
    rows = list(
        _points(series)
        .filter(step__gte=first, step__lte=last)
        .order_by("step")
        .values_list("step", "value", "timestamp")[: limit + 1]
    )
    next_step = rows.pop()[0] if len(rows) > limit else None
    history = _history(series.key, rows, total, downsampled=False)
    history.next_step = next_step
    return history


def _level_for(span: int, buckets: int) -> int:
    """The coarsest rollup level whose buckets are no wider than one output bucket."""
    width = span / buckets
    level = 0
    while level < rollups.ROLLUP_LEVELS and 16 ** (level + 1) <= width:
        level += 1
    return level


def _downsampled_steps(series: MetricSeries, first: int, last: int, buckets: int) -> set[int]:
    span = last - first + 1
    best: dict[int, list] = {}
    for start, *cell in _cells(series, first, last, _level_for(span, buckets)):
        rollups.merge_cell(best, (start - first) * buckets // span, *cell)
    steps = {first, last}
    for lo_step, _lo, hi_step, _hi, nan_step, _count in best.values():
        steps.update(s for s in (lo_step, hi_step, nan_step) if s is not None)
    return steps


def _pieces(first: int, last: int, level: int) -> tuple[list[tuple], list[tuple]]:
    """Cover [first, last] with whole rollup buckets: ``level``'s in the middle, ever
    finer ones towards the edges, raw steps only for the last partial 16-step cells.

    Answers (level, first bucket, last bucket) rollup ranges and (lo, hi) raw ranges.
    """
    rolls: list[tuple] = []
    raws: list[tuple] = []

    def cover(lo: int, hi: int, level: int) -> None:
        if lo > hi:
            return
        if level == 0:
            raws.append((lo, hi))
            return
        full_lo, full_hi = rollups.full_buckets(lo, hi, level)
        if full_lo > full_hi:
            cover(lo, hi, level - 1)
            return
        shift = rollups.ROLLUP_BITS * level
        rolls.append((level, full_lo, full_hi))
        cover(lo, (full_lo << shift) - 1, level - 1)
        cover((full_hi + 1) << shift, hi, level - 1)

    cover(first, last, level)
    return rolls, raws


def _read_cells(plans: dict[int, tuple[list[tuple], list[tuple]]]) -> dict[int, list[tuple]]:
    """(start step, *cell) of every piece of every series: one rollup and one raw query."""
    cells: dict[int, list[tuple]] = {series_id: [] for series_id in plans}
    rolls = [(sid, *piece) for sid, (pieces, _raws) in plans.items() for piece in pieces]
    for series_id, level, bucket, *cell in _joined(_ROLLUP_READ, rolls):
        cells[series_id].append((bucket << (rollups.ROLLUP_BITS * level), *cell))
    raws = [(sid, *piece) for sid, (_rolls, pieces) in plans.items() for piece in pieces]
    for series_id, step, value in _joined(_RAW_READ, raws):
        cells[series_id].append((step, *rollups.point_cell(step, value)))
    return cells


# Reads joined to a list of ranges passed as ONE parameter (a JSON array on SQLite,
# arrays on PostgreSQL): no OR chains to plan, no limit on the number of ranges.
_ROLLUP_READ = {
    "columns": "r.series_id, r.level, r.bucket, r.min_step, r.min_value, r.max_step,"
    ' r.max_value, r.nan_step, r."count"',
    "table": MetricRollup._meta.db_table,
    "postgresql": "AS k(series_id, level, lo, hi) JOIN {table} r ON r.series_id = k.series_id"
    " AND r.level = k.level AND r.bucket BETWEEN k.lo AND k.hi",
    "types": ("bigint", "smallint", "bigint", "bigint"),
    "sqlite": "CROSS JOIN {table} r ON r.series_id = k.value ->> 0 AND r.level = k.value ->> 1"
    " AND r.bucket BETWEEN k.value ->> 2 AND k.value ->> 3",
}
_RAW_READ = {
    "columns": "r.series_id, r.step, r.value",
    "table": MetricPoint._meta.db_table,
    "postgresql": "AS k(series_id, lo, hi) JOIN {table} r ON r.series_id = k.series_id"
    " AND r.step BETWEEN k.lo AND k.hi",
    "types": ("bigint", "bigint", "bigint"),
    "sqlite": "CROSS JOIN {table} r ON r.series_id = k.value ->> 0"
    " AND r.step BETWEEN k.value ->> 1 AND k.value ->> 2",
}


def _joined(read: dict[str, Any], ranges: list[tuple]) -> list[tuple]:
    if not ranges:
        return []
    join = read[connection.vendor if connection.vendor == "postgresql" else "sqlite"]
    join = join.format(table=read["table"])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{kind}[]" for kind in read["types"])
            columns = [list(column) for column in zip(*ranges, strict=True)]
            sql = f"SELECT {read['columns']} FROM unnest({arrays}) {join}"  # noqa: S608 - constants
            cursor.execute(sql, columns)
        else:
            sql = f"SELECT {read['columns']} FROM json_each(%s) k {join}"  # noqa: S608 - constants
            cursor.execute(sql, [json.dumps(ranges)])
        return cursor.fetchall()


def _cells(series: MetricSeries, first: int, last: int, level: int) -> list[tuple]:
    """(start step, *cell) covering [first, last] (see ``_pieces``)."""
    return _read_cells({series.pk: _pieces(first, last, level)})[series.pk]


def _any_of(conditions: list[Q]) -> Q:
    combined = Q(pk__in=[])
    for condition in conditions:
        combined |= condition
    return combined


# --- Many series at once (report charts) ---------------------------------------------

_UNKNOWN = object()  # a chosen step whose value the rollups did not carry


def histories(
    series_list: list[MetricSeries], *, max_points: int, timestamps: bool = True
) -> dict[int, History]:
    """Each series' whole history downsampled to about ``max_points``, by series id.

    A fixed number of queries however many series (a report with 20 charts of
    5 runs costs what one chart costs): raw points of the short series, then
    for the long ones their rollup cells and the raw points of the partial
    edge buckets, and finally the chosen points themselves, each in one query.
    ``timestamps=False`` (charts by step) skips most of that last read: the
    rollup cells already hold the chosen values, so only the first and last
    points are read, and ``History.timestamps`` is left empty.
    """
    short = [s for s in series_list if 0 < s.count <= max_points]
    long = [s for s in series_list if s.count > max_points]
    found = {s.pk: History(s.key, [], [], [], 0, False) for s in series_list}
    rows_by_series = _rows_for(short)
    for series in short:
        found[series.pk] = _history(
            series.key, rows_by_series.get(series.pk, []), series.count, downsampled=False
        )
    if not long:
        return found
    chosen = _downsampled_many(long, max(1, max_points // 2))
    if timestamps:
        points = _points_at_many({pk: set(values) for pk, values in chosen.items()})
    else:
        missing = {
            pk: {s for s, v in values.items() if v is _UNKNOWN} for pk, values in chosen.items()
        }
        read = _points_at_many(missing)
        for pk, rows in read.items():
            chosen[pk].update((step, value) for step, value, _stamp in rows)
        points = {
            pk: [(step, value, None) for step, value in sorted(values.items())]
            for pk, values in chosen.items()
        }
    for series in long:
        history = _history(series.key, points.get(series.pk, []), series.count, downsampled=True)
        if not timestamps:
            history.timestamps = []
        found[series.pk] = history
    return found


def _rows_for(series_list: list[MetricSeries]) -> dict[int, list[tuple]]:
    rows: dict[int, list[tuple]] = {}
    if not series_list:
        return rows
    points = (
        MetricPoint.objects.filter(series_id__in=[s.pk for s in series_list])
        .order_by("series_id", "step")
        .values_list("series_id", "step", "value", "timestamp")
    )
    for series_id, *point in points:
        rows.setdefault(series_id, []).append(tuple(point))
    return rows


def _downsampled_many(series_list: list[MetricSeries], buckets: int) -> dict[int, dict[int, Any]]:
    """The steps ``_downsampled_steps`` picks for each series' full range, in two queries.

    Each step maps to its value when a rollup cell or raw edge point told it
    (``None`` is NaN), else to ``_UNKNOWN`` (the range's first and last steps).
    """
    ranges = {s.pk: (s.first_step or 0, s.last_step or 0) for s in series_list}
    plans = {
        pk: _pieces(first, last, _level_for(last - first + 1, buckets))
        for pk, (first, last) in ranges.items()
    }
    cells = _read_cells(plans)
    steps = {}
    for series_id, (first, last) in ranges.items():
        span = last - first + 1
        best: dict[int, list] = {}
        for start, *cell in cells[series_id]:
            rollups.merge_cell(best, (start - first) * buckets // span, *cell)
        chosen: dict[int, Any] = {first: _UNKNOWN, last: _UNKNOWN}
        for lo_step, lo, hi_step, hi, nan_step, _count in best.values():
            for step, value in ((lo_step, lo), (hi_step, hi), (nan_step, None)):
                if step is not None:
                    chosen[step] = value
        steps[series_id] = chosen
    return steps


def _points_at_many(steps: dict[int, set[int]]) -> dict[int, list[tuple]]:
    """(step, value, timestamp) rows at the given steps of each series, in one query."""
    if not any(steps.values()):
        return {}
    pairs = [(series_id, step) for series_id, chosen in steps.items() for step in sorted(chosen)]
    table = MetricPoint._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f'SELECT p.series_id, p.step, p.value, p."timestamp" FROM {table} p'  # noqa: S608
                " JOIN unnest(%s::bigint[], %s::bigint[]) AS k(series_id, step)"
                " ON p.series_id = k.series_id AND p.step = k.step"
                " ORDER BY p.series_id, p.step",
                [[p[0] for p in pairs], [p[1] for p in pairs]],
            )
        else:  # one JSON parameter: no limit on the number of points asked for
            cursor.execute(
                f'SELECT p.series_id, p.step, p.value, p."timestamp" FROM json_each(%s) k'  # noqa: S608
                f" CROSS JOIN {table} p ON p.series_id = k.value ->> 0 AND p.step = k.value ->> 1"
                " ORDER BY p.series_id, p.step",
                [json.dumps(pairs)],
            )
        rows = cursor.fetchall()
    found: dict[int, list[tuple]] = {}
    for series_id, *point in rows:
        found.setdefault(series_id, []).append(tuple(point))
    return found
