"""Metric history reads, with downsampling that keeps spikes.

``max_points=N`` splits the step range into N/2 buckets and keeps each
bucket's minimum and maximum point (and its first NaN, so a divergence never
disappears from a chart), plus the first and last point of the range. When
the range holds at most N points, every point is returned.

The buckets are computed from ``MetricRollup`` rows (min/max per 16**L steps,
maintained on ingest), so reading a million-point series touches a few
thousand rows. Bucket edges are aligned to the rollup grid; the two partial
rollup cells at the edges of a zoomed range are read from the raw points.

Points come in primary-key order, (step, timestamp, seq): a step may hold
several points (see ``MetricPoint``). A page of a full read ends after
``limit`` points wherever that falls, even inside a step; its cursor names
the next point exactly, so paging never skips or repeats a point.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from tracking import rollups
from tracking.models import MetricPoint, MetricRollup, MetricSeries
from tracking.validation import float_to_json

DEFAULT_LIMIT = 100_000
MAX_LIMIT = 1_000_000
MAX_MAX_POINTS = 100_000

# A point's primary key in its series, (step, timestamp, seq): its place in every read.
PointKey = tuple[int, float, int]
# A point as read: (step, timestamp, seq, value); value None is NaN.
Row = tuple[int, float, int, float | None]
ROW_FIELDS = ("step", "timestamp", "seq", "value")
# A rollup cell as history reads it: (its first step, *the cell of tracking.rollups).
CellAt = tuple[Any, ...]
# A range cover (see _pieces): (level, first bucket, last bucket)s and (lo, hi) raw steps.
Pieces = tuple[list[tuple[int, int, int]], list[tuple[int, int]]]
ORDER = ("step", "timestamp", "seq")


@dataclass
class History:
    key: str
    steps: list[int]
    values: list[float | str]
    timestamps: list[float]
    total: int
    downsampled: bool
    next_step: int | None = None  # the step of the next point when ``limit`` cut the answer
    next_cursor: str | None = None  # the next point exactly: pass it back as ``cursor``

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "steps": self.steps,
            "values": self.values,
            "timestamps": self.timestamps,
            "total": self.total,
            "downsampled": self.downsampled,
            "next_step": self.next_step,
            "next_cursor": self.next_cursor,
        }


# --- Cursors ----------------------------------------------------------------------------


def cursor_token(key: PointKey) -> str:
    """A point's key as text for a page token; ``repr`` keeps the timestamp exact."""
    step, stamp, seq = key
    return f"{step}:{stamp!r}:{seq}"


def parse_cursor(token: str) -> PointKey:
    """The point key of ``cursor_token``; ValueError for anything else."""
    step_text, stamp_text, seq_text = token.split(":")
    step, stamp, seq = int(step_text), float(stamp_text), int(seq_text)
    if not (abs(step) < 2**63 and math.isfinite(stamp) and 0 <= seq < 2**31):
        raise ValueError(token)
    return step, stamp, seq


def _from_key(points: QuerySet[MetricPoint], key: PointKey) -> QuerySet[MetricPoint]:
    """``points`` at or after ``key`` in primary-key order."""
    step, stamp, seq = key
    later = Q(step__gt=step) | Q(timestamp__gt=stamp) | Q(timestamp=stamp, seq__gte=seq)
    return points.filter(step__gte=step).filter(later)


def points_page(
    series: MetricSeries,
    *,
    limit: int,
    start: PointKey | None = None,
    step_min: int | None = None,
    step_max: int | None = None,
) -> tuple[list[Row], PointKey | None]:
    """Up to ``limit`` points from ``start`` (or ``step_min``) to ``step_max``, and the next key."""
    points = _points(series)
    if start is not None:
        points = _from_key(points, start)
    if step_min is not None:
        points = points.filter(step__gte=step_min)
    if step_max is not None:
        points = points.filter(step__lte=step_max)
    rows = list(points.order_by(*ORDER).values_list(*ROW_FIELDS)[: limit + 1])
    after = rows.pop()[:3] if len(rows) > limit else None
    return rows, after


# --- One series ---------------------------------------------------------------------------


def _json_values(values: list[float | None]) -> list[float | str]:
    # v - v == 0 holds exactly for finite floats: the cheap test for the common case.
    return [v if v is not None and v - v == 0 else float_to_json(v) for v in values]


def _points(series: MetricSeries) -> QuerySet[MetricPoint]:
    return MetricPoint.objects.filter(series_id=series.pk)


def _ends(series: MetricSeries, lo: int | None, hi: int | None) -> tuple[Row, Row, int] | None:
    """The first and last point of the series within steps [lo, hi], and the count there."""
    if series.count == 0:
        return None
    # A series with points has both ends in its summary (ingest keeps them).
    first_step, last_step = series.first_step, series.last_step
    first_stamp, last_stamp = series.first_timestamp, series.last_timestamp
    assert first_step is not None and first_stamp is not None
    assert last_step is not None and last_stamp is not None
    if (lo is None or lo <= first_step) and (hi is None or hi >= last_step):
        first = (first_step, first_stamp, 0, series.first_value)
        last = (last_step, last_stamp, series.last_seq, series.last_value)
        return first, last, series.count
    points = _points(series)
    if lo is not None:
        points = points.filter(step__gte=lo)
    if hi is not None:
        points = points.filter(step__lte=hi)
    head: Row | None = points.order_by(*ORDER).values_list(*ROW_FIELDS).first()
    if head is None:
        return None
    tail: Row | None = (
        points.order_by(*(f"-{name}" for name in ORDER)).values_list(*ROW_FIELDS).first()
    )
    assert tail is not None  # the range has a first point, so a last one
    return head, tail, rollups.count_in_range(series.pk, head[0], tail[0])


def _whole_ends(series: MetricSeries) -> tuple[Row, Row, int]:
    """Both ends of a series with points, and its count."""
    ends = _ends(series, None, None)
    assert ends is not None  # read from the summary: a series with points has both
    return ends


def metric_history(
    series: MetricSeries,
    *,
    max_points: int | None = None,
    step_min: int | None = None,
    step_max: int | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: PointKey | None = None,
) -> History:
    """``cursor`` (from ``next_cursor``) continues a full read where its last page ended."""
    lo = cursor[0] if cursor is not None else step_min
    ends = _ends(series, lo, step_max)
    if ends is None:
        return History(series.key, [], [], [], 0, False)
    first, last, total = ends
    if max_points is None or total <= max_points:
        return _raw(series, first, last, total, limit, cursor)
    buckets = max(1, max_points // 2)
    cells = _cells(series, first[0], last[0], _level_for(last[0] - first[0] + 1, buckets))
    return _history(series.key, _chosen(cells, first, last, buckets), total, downsampled=True)


def _history(key: str, rows: list[Row], total: int, *, downsampled: bool) -> History:
    if not rows:
        return History(key, [], [], [], total, downsampled)
    steps, stamps, _seqs, values = (list(column) for column in zip(*rows, strict=True))
    return History(key, steps, _json_values(values), stamps, total, downsampled)


def _raw(
    series: MetricSeries, first: Row, last: Row, total: int, limit: int, cursor: PointKey | None
) -> History:
    rows, after = points_page(
        series, limit=limit, start=cursor, step_min=first[0], step_max=last[0]
    )
    history = _history(series.key, rows, total, downsampled=False)
    if after is not None:
        history.next_step, history.next_cursor = after[0], cursor_token(after)
    return history


def _level_for(span: int, buckets: int) -> int:
    """The coarsest rollup level whose buckets are no wider than one output bucket."""
    width = span / buckets
    level = 0
    while level < rollups.ROLLUP_LEVELS and 16 ** (level + 1) <= width:
        level += 1
    return level


def _chosen(cells: list[CellAt], first: Row, last: Row, buckets: int) -> list[Row]:
    """The points a downsampled answer keeps, in primary-key order: both ends, and each
    output bucket's lowest, highest and first NaN point, merged from ``cells``."""
    span = last[0] - first[0] + 1
    best: dict[int, list[Any]] = {}
    for start, *cell in cells:
        rollups.merge_cell(best, (start - first[0]) * buckets // span, *cell)
    chosen: dict[PointKey, float | None] = {first[:3]: first[3], last[:3]: last[3]}
    for lo_at, lo, hi_at, hi, nan_at, _count in best.values():
        for at, value in ((lo_at, lo), (hi_at, hi), (nan_at, None)):
            if at is not None:
                chosen[at] = value
    return [(*key, value) for key, value in sorted(chosen.items())]


def _pieces(first: int, last: int, level: int) -> Pieces:
    """Cover [first, last] with whole rollup buckets: ``level``'s in the middle, ever
    finer ones towards the edges, raw steps only for the last partial 16-step cells.

    Answers (level, first bucket, last bucket) rollup ranges and (lo, hi) raw ranges.
    """
    rolls: list[tuple[int, int, int]] = []
    raws: list[tuple[int, int]] = []

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


def _read_cells(plans: dict[int, Pieces]) -> dict[int, list[CellAt]]:
    """(start step, *cell) of every piece of every series: one rollup and one raw query."""
    cells: dict[int, list[CellAt]] = {series_id: [] for series_id in plans}
    rolls = [(sid, *piece) for sid, (pieces, _raws) in plans.items() for piece in pieces]
    for series_id, level, bucket, *row in _joined(_ROLLUP_READ, rolls):
        cells[series_id].append((bucket << (rollups.ROLLUP_BITS * level), *rollups.row_cell(row)))
    raws = [(sid, *piece) for sid, (_rolls, pieces) in plans.items() for piece in pieces]
    for series_id, step, stamp, seq, value in _joined(_RAW_READ, raws):
        cells[series_id].append((step, *rollups.point_cell((step, stamp, seq), value)))
    return cells


# Reads joined to a list of ranges passed as ONE parameter (a JSON array on SQLite,
# arrays on PostgreSQL): no OR chains to plan, no limit on the number of ranges.
_ROLLUP_READ = {
    "columns": "r.series_id, r.level, r.bucket, "
    + ", ".join(f'r."{name}"' for name in rollups.CELL_COLUMNS),
    "table": MetricRollup._meta.db_table,
    "postgresql": "AS k(series_id, level, lo, hi) JOIN {table} r ON r.series_id = k.series_id"
    " AND r.level = k.level AND r.bucket BETWEEN k.lo AND k.hi",
    "types": ("bigint", "smallint", "bigint", "bigint"),
    "sqlite": "CROSS JOIN {table} r ON r.series_id = k.value ->> 0 AND r.level = k.value ->> 1"
    " AND r.bucket BETWEEN k.value ->> 2 AND k.value ->> 3",
}
_RAW_READ = {
    "columns": 'r.series_id, r.step, r."timestamp", r.seq, r.value',
    "table": MetricPoint._meta.db_table,
    "postgresql": "AS k(series_id, lo, hi) JOIN {table} r ON r.series_id = k.series_id"
    " AND r.step BETWEEN k.lo AND k.hi",
    "types": ("bigint", "bigint", "bigint"),
    "sqlite": "CROSS JOIN {table} r ON r.series_id = k.value ->> 0"
    " AND r.step BETWEEN k.value ->> 1 AND k.value ->> 2",
}


def _joined(read: dict[str, Any], ranges: Sequence[tuple[int, ...]]) -> list[tuple[Any, ...]]:
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
        found: list[tuple[Any, ...]] = cursor.fetchall()
        return found


def _cells(series: MetricSeries, first: int, last: int, level: int) -> list[CellAt]:
    """(start step, *cell) covering [first, last] (see ``_pieces``)."""
    return _read_cells({series.pk: _pieces(first, last, level)})[series.pk]


# --- Many series at once (report charts) ---------------------------------------------


def histories(
    series_list: list[MetricSeries], *, max_points: int, timestamps: bool = True
) -> dict[int, History]:
    """Each series' whole history downsampled to about ``max_points``, by series id.

    A fixed number of queries however many series (a report with 20 charts of
    5 runs costs what one chart costs): raw points of the short series, then
    for the long ones their rollup cells and the raw points of the partial
    edge buckets, each in one query. The cells carry the chosen points and the
    series summaries both ends, so no point is read back.
    ``timestamps=False`` (charts by step) leaves ``History.timestamps`` empty.
    """
    short = [s for s in series_list if 0 < s.count <= max_points]
    long = [s for s in series_list if s.count > max_points]
    found = {s.pk: History(s.key, [], [], [], 0, False) for s in series_list}
    rows_by_series = _rows_for(short)
    for series in short:
        found[series.pk] = _history(
            series.key, rows_by_series.get(series.pk, []), series.count, downsampled=False
        )
        if not timestamps:
            found[series.pk].timestamps = []
    buckets = max(1, max_points // 2)
    ends = {s.pk: _whole_ends(s) for s in long}
    plans = {
        pk: _pieces(first[0], last[0], _level_for(last[0] - first[0] + 1, buckets))
        for pk, (first, last, _total) in ends.items()
    }
    cells = _read_cells(plans) if plans else {}
    for series in long:
        first, last, total = ends[series.pk]
        rows = _chosen(cells[series.pk], first, last, buckets)
        found[series.pk] = _history(series.key, rows, total, downsampled=True)
        if not timestamps:
            found[series.pk].timestamps = []
    return found


def range_histories(
    series_list: list[MetricSeries],
    *,
    max_points: int,
    step_min: int | None = None,
    step_max: int | None = None,
    timestamps: bool = True,
) -> dict[int, History]:
    """``histories`` of a step range: the whole history in a fixed number of queries, a range
    (a zoom, a catch-up after a reconnect) a few queries per series."""
    if step_min is None and step_max is None:
        return histories(series_list, max_points=max_points, timestamps=timestamps)
    found = {
        series.pk: metric_history(
            series, max_points=max_points, step_min=step_min, step_max=step_max
        )
        for series in series_list
    }
    if not timestamps:
        for history in found.values():
            history.timestamps = []
    return found


def _rows_for(series_list: list[MetricSeries]) -> dict[int, list[Row]]:
    rows: dict[int, list[Row]] = {}
    if not series_list:
        return rows
    points = (
        MetricPoint.objects.filter(series_id__in=[s.pk for s in series_list])
        .order_by("series_id", *ORDER)
        .values_list("series_id", *ROW_FIELDS)
    )
    for series_id, *point in points:
        rows.setdefault(series_id, []).append(tuple(point))
    return rows
