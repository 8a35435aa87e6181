"""Per-bucket summaries of a metric series at coarser and coarser step widths.

Level L groups steps into buckets of 16**L steps (L = 1..6: 16 steps up to
16.7M steps). A cell holds the bucket's lowest and highest point, its first
NaN point and its point count. Ingest merges the new points into every
level; history reads the level that fits the chart, so a million-point
series is summarised from a few thousand rows. min/max/first-NaN merges are
idempotent and the count only ever sees points that were actually inserted,
so cells stay exact.

A cell names its points by primary key, ``(step, timestamp, seq)`` (a step
may hold several points), and keeps their values: a chart is drawn from the
cells alone, and "first NaN" is the first in primary-key order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import QuerySet

from tracking import pgcopy
from tracking.models import MetricPoint, MetricRollup

ROLLUP_BITS = 4
ROLLUP_LEVELS = 6

# A point's primary key within its series: (step, timestamp, seq).
At = tuple[int, float, int]
# [lowest At, its value, highest At, its value, first NaN At, count]; an At is
# None when the bucket has no such point. A list: merging updates it in place.
Cell = list[Any]
# A cell's fields as a tuple, in the same order.
CellFields = tuple[At | None, float | None, At | None, float | None, At | None, int]
K = TypeVar("K")


def merge_cell(
    cells: dict[K, Cell],
    ident: K,
    lo_at: At | None,
    lo: float | None,
    hi_at: At | None,
    hi: float | None,
    nan_at: At | None,
    count: int,
) -> None:
    cell = cells.get(ident)
    if cell is None:
        cells[ident] = [lo_at, lo, hi_at, hi, nan_at, count]
        return
    if lo is not None and (cell[1] is None or lo < cell[1]):
        cell[0], cell[1] = lo_at, lo
    if hi is not None and (cell[3] is None or hi > cell[3]):
        cell[2], cell[3] = hi_at, hi
    if nan_at is not None and (cell[4] is None or nan_at < cell[4]):
        cell[4] = nan_at
    cell[5] += count


def point_cell(at: At, value: float | None) -> CellFields:
    """A single point as cell fields (value None is NaN)."""
    return at, value, at, value, at if value is None else None, 1


def cells_from_points(
    points: Iterable[tuple[int, At, float | None]],
) -> dict[tuple[int, int, int], Cell]:
    """(series id, At, value) points -> {(series id, level, bucket): cell}.

    Level L+1 is built from level L, so the work shrinks 16-fold per level.
    """
    level: dict[tuple[int, int], Cell] = {}
    for sid, at, value in points:
        merge_cell(level, (sid, at[0] >> ROLLUP_BITS), *point_cell(at, value))
    cells = {(sid, 1, bucket): cell for (sid, bucket), cell in level.items()}
    for depth in range(2, ROLLUP_LEVELS + 1):
        upper: dict[tuple[int, int], Cell] = {}
        for (sid, bucket), cell in level.items():
            merge_cell(upper, (sid, bucket >> ROLLUP_BITS), *cell)
        level = upper
        cells.update({(sid, depth, bucket): cell for (sid, bucket), cell in level.items()})
    return cells


# --- Cells as table rows -----------------------------------------------------------------

_NO_POINT = (None, None, None)
CELL_COLUMNS = (
    "min_step", "min_timestamp", "min_seq", "min_value",
    "max_step", "max_timestamp", "max_seq", "max_value",
    "nan_step", "nan_timestamp", "nan_seq", "count",
)  # fmt: skip


def cell_row(cell: Cell) -> tuple[Any, ...]:
    """A cell as the values of ``CELL_COLUMNS``."""
    lo_at, lo, hi_at, hi, nan_at, count = cell
    return (*(lo_at or _NO_POINT), lo, *(hi_at or _NO_POINT), hi, *(nan_at or _NO_POINT), count)


def row_cell(row: Sequence[Any]) -> CellFields:
    """The values of ``CELL_COLUMNS`` as cell fields."""
    lo_step, lo_ts, lo_seq, lo, hi_step, hi_ts, hi_seq, hi, nan_step, nan_ts, nan_seq, count = row
    return (
        None if lo_step is None else (lo_step, lo_ts, lo_seq),
        lo,
        None if hi_step is None else (hi_step, hi_ts, hi_seq),
        hi,
        None if nan_step is None else (nan_step, nan_ts, nan_seq),
        count,
    )


def _take_when(condition: str, columns: tuple[str, ...]) -> list[str]:
    """SET clauses of the upsert: the new cell's ``columns`` when ``condition`` holds."""
    return [f"{c} = CASE WHEN {condition} THEN excluded.{c} ELSE {{t}}.{c} END" for c in columns]


_KEY_COLUMNS = ("series_id", "level", "bucket")
_COLUMNS = ", ".join(_KEY_COLUMNS + CELL_COLUMNS)
_STAGE = "labbook_rollups_stage"
_AT_TYPES = ("int8", "float8", "int4")  # step, timestamp, seq
_STAGE_TYPES = (
    *("int8", "int2", "int8"),  # series_id, level, bucket
    *(*_AT_TYPES, "float8", *_AT_TYPES, "float8", *_AT_TYPES, "int8"),  # CELL_COLUMNS
)
_LOWER = (
    "excluded.min_value IS NOT NULL"
    " AND ({t}.min_value IS NULL OR excluded.min_value < {t}.min_value)"
)
_HIGHER = (
    "excluded.max_value IS NOT NULL"
    " AND ({t}.max_value IS NULL OR excluded.max_value > {t}.max_value)"
)
_EARLIER_NAN = (
    "excluded.nan_step IS NOT NULL AND ({t}.nan_step IS NULL"
    " OR (excluded.nan_step, excluded.nan_timestamp, excluded.nan_seq)"
    " < ({t}.nan_step, {t}.nan_timestamp, {t}.nan_seq))"
)
_SETS = [
    *_take_when(_LOWER, CELL_COLUMNS[0:4]),
    *_take_when(_HIGHER, CELL_COLUMNS[4:8]),
    *_take_when(_EARLIER_NAN, CELL_COLUMNS[8:11]),
    "count = {t}.count + excluded.count",
]
_UPSERT = (
    "INSERT INTO {t} ({columns})\n{source}\n"
    "ON CONFLICT (series_id, level, bucket) DO UPDATE SET\n  " + ",\n  ".join(_SETS)
)


def upsert(cells: dict[tuple[int, int, int], Cell]) -> None:
    """Merge ``cells`` into the stored rollups (sorted, so concurrent writers lock in order)."""
    rows = [(*ident, *cell_row(cell)) for ident, cell in sorted(cells.items())]
    table = MetricRollup._meta.db_table
    if connection.vendor == "postgresql":
        pgcopy.stage(_STAGE, list(zip(_COLUMNS.split(", "), _STAGE_TYPES, strict=True)), rows)
        source = f"SELECT {_COLUMNS} FROM {_STAGE} ORDER BY series_id, level, bucket"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(_UPSERT.format(t=table, columns=_COLUMNS, source=source))
        return
    marks = "(" + ",".join(["%s"] * len(rows[0])) + ")" if rows else ""
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            source = "VALUES " + ",".join([marks] * len(chunk))
            params = [x for row in chunk for x in row]
            cursor.execute(_UPSERT.format(t=table, columns=_COLUMNS, source=source), params)


def full_buckets(lo: int, hi: int, level: int) -> tuple[int, int]:
    """The first and last bucket of ``level`` lying wholly inside [lo, hi] (may be empty)."""
    width = 1 << (ROLLUP_BITS * level)
    return -(-lo // width), (hi + 1) // width - 1


def stored_counts(series_id: int, level: int, first: int, last: int) -> QuerySet[Any, int]:
    """The point counts of buckets first..last."""
    return MetricRollup.objects.filter(
        series_id=series_id, level=level, bucket__gte=first, bucket__lte=last
    ).values_list("count", flat=True)


def count_in_range(series_id: int, lo: int, hi: int, level: int = ROLLUP_LEVELS) -> int:
    """Points of the series with lo <= step <= hi, from whole buckets plus narrower edges."""
    if lo > hi:
        return 0
    if level == 0:
        return MetricPoint.objects.filter(series_id=series_id, step__gte=lo, step__lte=hi).count()
    first, last = full_buckets(lo, hi, level)
    if first > last:
        return count_in_range(series_id, lo, hi, level - 1)
    width = 1 << (ROLLUP_BITS * level)
    inner = sum(stored_counts(series_id, level, first, last))
    return (
        inner
        + count_in_range(series_id, lo, first * width - 1, level - 1)
        + count_in_range(series_id, (last + 1) * width, hi, level - 1)
    )
