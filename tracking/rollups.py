"""Per-bucket summaries of a metric series at coarser and coarser step widths.

Level L groups steps into buckets of 16**L steps (L = 1..6: 16 steps up to
16.7M steps). A cell holds the bucket's min and max point, its first NaN step
and its point count. Ingest merges the new points into every level; history
reads the level that fits the chart, so a million-point series is summarised
from a few thousand rows. min/max/first-NaN merges are idempotent and the
count only ever sees points that were actually inserted, so cells stay exact.
"""

from __future__ import annotations

from django.db import connection

from tracking import pgcopy
from tracking.models import MetricPoint, MetricRollup

ROLLUP_BITS = 4
ROLLUP_LEVELS = 6

# [min step, min value, max step, max value, first NaN step, count]
Cell = list


def merge_cell(cells: dict, ident: tuple, lo_step, lo, hi_step, hi, nan_step, count) -> None:
    cell = cells.get(ident)
    if cell is None:
        cells[ident] = [lo_step, lo, hi_step, hi, nan_step, count]
        return
    if lo is not None and (cell[1] is None or lo < cell[1]):
        cell[0], cell[1] = lo_step, lo
    if hi is not None and (cell[3] is None or hi > cell[3]):
        cell[2], cell[3] = hi_step, hi
    if nan_step is not None and (cell[4] is None or nan_step < cell[4]):
        cell[4] = nan_step
    cell[5] += count


def point_cell(step: int, value: float | None) -> tuple:
    """A single point as cell fields (value None is NaN)."""
    return step, value, step, value, step if value is None else None, 1


def cells_from_points(points: list[tuple[int, int, float | None]]) -> dict[tuple, Cell]:
    """(series id, step, value) points -> {(series id, level, bucket): cell}.

    Level L+1 is built from level L, so the work shrinks 16-fold per level.
    """
    level: dict[tuple[int, int], Cell] = {}
    for sid, step, value in points:
        merge_cell(level, (sid, step >> ROLLUP_BITS), *point_cell(step, value))
    cells = {(sid, 1, bucket): cell for (sid, bucket), cell in level.items()}
    for depth in range(2, ROLLUP_LEVELS + 1):
        upper: dict[tuple[int, int], Cell] = {}
        for (sid, bucket), cell in level.items():
            merge_cell(upper, (sid, bucket >> ROLLUP_BITS), *cell)
        level = upper
        cells.update({(sid, depth, bucket): cell for (sid, bucket), cell in level.items()})
    return cells


_COLUMNS = "series_id, level, bucket, min_step, min_value, max_step, max_value, nan_step, count"
_STAGE = "labbook_rollups_stage"
_STAGE_TYPES = ("int8", "int2", "int8", "int8", "float8", "int8", "float8", "int8", "int8")
_UPSERT = """
INSERT INTO {t} ({columns})
{source}
ON CONFLICT (series_id, level, bucket) DO UPDATE SET
  min_step = CASE WHEN excluded.min_value IS NOT NULL
      AND ({t}.min_value IS NULL OR excluded.min_value < {t}.min_value)
      THEN excluded.min_step ELSE {t}.min_step END,
  min_value = CASE WHEN excluded.min_value IS NOT NULL
      AND ({t}.min_value IS NULL OR excluded.min_value < {t}.min_value)
      THEN excluded.min_value ELSE {t}.min_value END,
  max_step = CASE WHEN excluded.max_value IS NOT NULL
      AND ({t}.max_value IS NULL OR excluded.max_value > {t}.max_value)
      THEN excluded.max_step ELSE {t}.max_step END,
  max_value = CASE WHEN excluded.max_value IS NOT NULL
      AND ({t}.max_value IS NULL OR excluded.max_value > {t}.max_value)
      THEN excluded.max_value ELSE {t}.max_value END,
  nan_step = CASE WHEN {t}.nan_step IS NULL THEN excluded.nan_step
      WHEN excluded.nan_step IS NOT NULL AND excluded.nan_step < {t}.nan_step
      THEN excluded.nan_step ELSE {t}.nan_step END,
  count = {t}.count + excluded.count
"""


def upsert(cells: dict[tuple, Cell]) -> None:
    """Merge ``cells`` into the stored rollups (sorted, so concurrent writers lock in order)."""
    rows = [(*ident, *cell) for ident, cell in sorted(cells.items())]
    table = MetricRollup._meta.db_table
    if connection.vendor == "postgresql":
        pgcopy.stage(_STAGE, list(zip(_COLUMNS.split(", "), _STAGE_TYPES, strict=True)), rows)
        source = f"SELECT {_COLUMNS} FROM {_STAGE} ORDER BY series_id, level, bucket"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(_UPSERT.format(t=table, columns=_COLUMNS, source=source))
        return
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            source = "VALUES " + ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s,%s)"] * len(chunk))
            params = [x for row in chunk for x in row]
            cursor.execute(_UPSERT.format(t=table, columns=_COLUMNS, source=source), params)


def full_buckets(lo: int, hi: int, level: int) -> tuple[int, int]:
    """The first and last bucket of ``level`` lying wholly inside [lo, hi] (may be empty)."""
    width = 1 << (ROLLUP_BITS * level)
    return -(-lo // width), (hi + 1) // width - 1


def stored(series_id: int, level: int, first: int, last: int):
    """Rollup rows of buckets first..last as (bucket, *cell), in bucket order."""
    return (
        MetricRollup.objects.filter(
            series_id=series_id, level=level, bucket__gte=first, bucket__lte=last
        )
        .order_by("bucket")
        .values_list(
            "bucket", "min_step", "min_value", "max_step", "max_value", "nan_step", "count"
        )
    )


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
    inner = sum(row[-1] for row in stored(series_id, level, first, last))
    return (
        inner
        + count_in_range(series_id, lo, first * width - 1, level - 1)
        + count_in_range(series_id, (last + 1) * width, hi, level - 1)
    )
