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

from dataclasses import dataclass

from django.db.models import Max, Min

from tracking.ingest import ROLLUP_BITS, ROLLUP_LEVELS
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
    count = _points(series).filter(step__gte=stats["first"], step__lte=stats["last"]).count()
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
    rows = list(
        _points(series)
        .filter(step__in=sorted(steps))
        .order_by("step")
        .values_list("step", "value", "timestamp")
    )
    return _history(series.key, rows, total, downsampled=True)


def _history(key: str, rows: list[tuple], total: int, *, downsampled: bool) -> History:
    steps, values, stamps = (
        (list(column) for column in zip(*rows, strict=True)) if rows else ([], [], [])
    )
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
    """The coarsest rollup level whose cells are no wider than one output bucket."""
    width = span / buckets
    level = 0
    while level < ROLLUP_LEVELS and 16 ** (level + 1) <= width:
        level += 1
    return level


def _downsampled_steps(series: MetricSeries, first: int, last: int, buckets: int) -> set[int]:
    span = last - first + 1
    level = _level_for(span, buckets)
    cells = _cells(series, first, last, level)
    best: dict[int, list] = {}
    for start, lo_step, lo, hi_step, hi, nan_step in cells:
        _merge(best, (start - first) * buckets // span, lo_step, lo, hi_step, hi, nan_step)
    steps = {first, last}
    for lo_step, _lo, hi_step, _hi, nan_step in best.values():
        steps.update(s for s in (lo_step, hi_step, nan_step) if s is not None)
    return steps


def _merge(best: dict, bucket: int, lo_step, lo, hi_step, hi, nan_step) -> None:
    cell = best.get(bucket)
    if cell is None:
        best[bucket] = [lo_step, lo, hi_step, hi, nan_step]
        return
    if lo is not None and (cell[1] is None or lo < cell[1]):
        cell[0], cell[1] = lo_step, lo
    if hi is not None and (cell[3] is None or hi > cell[3]):
        cell[2], cell[3] = hi_step, hi
    if nan_step is not None and (cell[4] is None or nan_step < cell[4]):
        cell[4] = nan_step


def _cells(series: MetricSeries, first: int, last: int, level: int) -> list[tuple]:
    """(start step, min step, min, max step, max, NaN step) cells covering [first, last]."""
    if level == 0:
        return _raw_cells(series, first, last)
    shift = ROLLUP_BITS * level
    width = 1 << shift
    full_lo = -(-first // width)  # first cell starting at or after `first`
    full_hi = (last + 1) // width - 1  # last cell ending at or before `last`
    if full_lo > full_hi:
        return _raw_cells(series, first, last)
    rollups = (
        MetricRollup.objects.filter(
            series_id=series.pk, level=level, bucket__gte=full_lo, bucket__lte=full_hi
        )
        .order_by("bucket")
        .values_list("bucket", "min_step", "min_value", "max_step", "max_value", "nan_step")
    )
    cells = _raw_cells(series, first, full_lo * width - 1)
    cells += [(bucket << shift, *rest) for bucket, *rest in rollups]
    cells += _raw_cells(series, (full_hi + 1) * width, last)
    return cells


def _raw_cells(series: MetricSeries, lo: int, hi: int) -> list[tuple]:
    if lo > hi:
        return []
    rows = (
        _points(series)
        .filter(step__gte=lo, step__lte=hi)
        .order_by("step")
        .values_list("step", "value")
    )
    return [
        (step, step, value, step, value, step if value is None else None) for step, value in rows
    ]
