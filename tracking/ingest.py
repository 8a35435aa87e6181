"""Metric ingestion: validate a batch, store it in one transaction, publish after commit.

A batch of up to 10,000 points costs a fixed number of statements, never one
per point: multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for the
points (the database tells which were new), one ``UPDATE`` per metric key for
the running summary, and multi-row upserts for the downsampling rollups.

Idempotency: points are unique on (run, key, step) and the **first value
wins** — a re-sent point, or a new value for a step already stored, is
counted in ``duplicates`` and changes nothing. A ``batch_id`` seen before for
the run short-circuits the whole batch (the answer is all duplicates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from tracking import events
from tracking.errors import ApplicationError
from tracking.models import IngestBatch, MetricPoint, MetricRollup, MetricSeries, Run, RunStatus
from tracking.services import run_update
from tracking.validation import clean_metric_key, clean_text, invalid

MAX_STEP = 2**63 - 1
# Rollup level L groups steps into buckets of 16**L steps (16 ... 16.7M).
ROLLUP_BITS = 4
ROLLUP_LEVELS = 6
NAN_STRINGS = {
    "nan": None,
    "infinity": math.inf,
    "inf": math.inf,
    "-infinity": -math.inf,
    "-inf": -math.inf,
    "+inf": math.inf,
    "+infinity": math.inf,
}
POINT_FIELDS = frozenset({"key", "step", "value", "timestamp"})
_CHUNK_ROWS = 2000  # keeps every statement under SQLite's and PostgreSQL's parameter limits


class Point(NamedTuple):
    key: str
    step: int
    value: float | None  # None is NaN
    timestamp: float


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    replayed: bool = False


# --- Validation ---------------------------------------------------------------------


def _value(raw: Any, field: str) -> float | None:
    kind = type(raw)
    if kind is float:
        return None if raw != raw else raw  # NaN is the only value unequal to itself
    if kind is int:
        try:
            return float(raw)
        except OverflowError:
            raise invalid(field, "Number out of range for a 64-bit float.") from None
    if raw is None:
        return None
    if kind is str and raw.strip().lower() in NAN_STRINGS:
        return NAN_STRINGS[raw.strip().lower()]
    raise invalid(field, "Must be a number, or one of 'NaN', 'Infinity', '-Infinity'.")


def _timestamp(raw: Any, field: str, default: float) -> float:
    if raw is None:
        return default
    if type(raw) in (int, float) and math.isfinite(raw) and 0 <= raw < 1e11:
        return float(raw)
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                raise invalid(field, "An ISO 8601 timestamp needs a timezone (e.g. 'Z').")
            return moment.timestamp()
    raise invalid(field, "Must be Unix seconds (a number) or an ISO 8601 string with timezone.")


def parse_points(raw: Any, *, field: str = "points") -> list[Point]:
    """Validate a batch; the first bad point raises naming ``points[i].<field>``."""
    limit = settings.LABBOOK["MAX_POINTS_PER_BATCH"]
    if not isinstance(raw, list):
        raise invalid(field, "Must be a list of points.")
    if len(raw) > limit:
        error = ApplicationError(
            "too_many_points", f"At most {limit} points per request (got {len(raw)}).", field=field
        )
        error.status = 413
        raise error
    now = timezone.now().timestamp()
    known_keys: set[str] = set()
    points: list[Point] = []
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if type(item) is not dict:
            raise invalid(where, "Each point must be an object with key, step and value.")
        if not item.keys() <= POINT_FIELDS:
            unknown = sorted(item.keys() - POINT_FIELDS)[0]
            raise invalid(f"{where}.{unknown}", "Unknown field.")
        key = item.get("key")
        if key not in known_keys:
            known_keys.add(clean_metric_key(key, field=f"{where}.key"))
        step = item.get("step")
        if type(step) is not int or not 0 <= step <= MAX_STEP:
            raise invalid(f"{where}.step", "Must be an integer between 0 and 2**63-1.")
        if "value" not in item:
            raise invalid(f"{where}.value", "This field is required.")
        value = _value(item["value"], f"{where}.value")
        stamp = _timestamp(item.get("timestamp"), f"{where}.timestamp", now)
        points.append(Point(key, step, value, stamp))
    return points


def clean_batch_id(raw: Any) -> str | None:
    if raw is None:
        return None
    return clean_text(raw, field="batch_id", max_length=64, required=True)


# --- Storage ---------------------------------------------------------------------------


@transaction.atomic
def metrics_ingest(*, run: Run, points: list[Point], batch_id: str | None = None) -> IngestResult:
    """Store ``points`` for ``run``; see the module docstring for the idempotency rules."""
    batch_pk = _claim_batch(run, batch_id) if batch_id else None
    if batch_id and batch_pk is None:
        return IngestResult(accepted=0, duplicates=len(points), replayed=True)
    unique = _dedupe(points)
    series_ids = _series_ids(run, {p.key for p in unique})
    inserted = _insert_points(series_ids, unique)
    _update_series(series_ids, inserted)
    _upsert_rollups(series_ids, inserted)
    _touch_run(run)
    result = IngestResult(accepted=len(inserted), duplicates=len(points) - len(inserted))
    if batch_pk is not None:
        IngestBatch.objects.filter(pk=batch_pk).update(
            accepted=result.accepted, duplicates=result.duplicates
        )
    if inserted:
        _publish(run, series_ids, inserted)
    return result


def _claim_batch(run: Run, batch_id: str) -> int | None:
    """Record the batch id; ``None`` when this run has seen it already."""
    table = IngestBatch._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (run_id, batch_id, accepted, duplicates, created_at)"  # noqa: S608
            " VALUES (%s, %s, 0, 0, %s) ON CONFLICT (run_id, batch_id) DO NOTHING RETURNING id",
            [run.pk, batch_id, timezone.now()],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _dedupe(points: list[Point]) -> list[Point]:
    seen: set[tuple[str, int]] = set()
    unique: list[Point] = []
    for point in points:
        ident = (point.key, point.step)
        if ident not in seen:
            seen.add(ident)
            unique.append(point)
    return unique


def _series_ids(run: Run, keys: set[str]) -> dict[str, int]:
    def existing() -> dict[str, int]:
        rows = MetricSeries.objects.filter(run=run, key__in=keys).values_list("key", "id")
        return dict(rows)

    ids = existing()
    if len(ids) < len(keys):
        MetricSeries.objects.bulk_create(
            [MetricSeries(run=run, key=key) for key in sorted(keys - ids.keys())],
            ignore_conflicts=True,
        )
        ids = existing()
    return ids


def _chunks(rows: list, size: int = _CHUNK_ROWS):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _insert_points(series_ids: dict[str, int], points: list[Point]) -> list[tuple[int, Point]]:
    """Insert and return the points that were new, as (series id, point)."""
    table = MetricPoint._meta.db_table
    rows = sorted(((series_ids[p.key], p) for p in points), key=lambda r: (r[0], r[1].step))
    new: set[tuple[int, int]] = set()
    with connection.cursor() as cursor:
        for chunk in _chunks(rows):
            values = ",".join(["(%s,%s,%s,%s)"] * len(chunk))
            params = [x for sid, p in chunk for x in (sid, p.step, p.value, p.timestamp)]
            cursor.execute(
                f'INSERT INTO {table} (series_id, step, value, "timestamp") VALUES {values}'  # noqa: S608
                " ON CONFLICT (series_id, step) DO NOTHING RETURNING series_id, step",
                params,
            )
            new.update(cursor.fetchall())
    if len(new) == len(rows):
        return rows
    return [row for row in rows if (row[0], row[1].step) in new]


_SERIES_UPDATE = """
UPDATE {table} SET
  count = count + %s,
  nonfinite_count = nonfinite_count + %s,
  first_step = CASE WHEN first_step IS NULL OR %s < first_step THEN %s ELSE first_step END,
  last_value = CASE WHEN last_step IS NULL OR %s > last_step THEN %s ELSE last_value END,
  last_timestamp = CASE WHEN last_step IS NULL OR %s > last_step THEN %s ELSE last_timestamp END,
  last_step = CASE WHEN last_step IS NULL OR %s > last_step THEN %s ELSE last_step END,
  min_value = CASE WHEN %s THEN min_value
                   WHEN min_value IS NULL OR %s < min_value THEN %s ELSE min_value END,
  max_value = CASE WHEN %s THEN max_value
                   WHEN max_value IS NULL OR %s > max_value THEN %s ELSE max_value END
WHERE id = %s
"""


def _series_deltas(inserted: list[tuple[int, Point]]) -> dict[int, list]:
    """Per series: [count, nonfinite, first_step, last Point, min, max] of the new points."""
    deltas: dict[int, list] = {}
    for sid, p in inserted:
        d = deltas.get(sid)
        if d is None:
            d = deltas[sid] = [0, 0, p.step, p, None, None]
        d[0] += 1
        v = p.value
        if v is None or v - v != 0:  # NaN or +/-inf
            d[1] += 1
        if p.step < d[2]:
            d[2] = p.step
        if p.step > d[3].step:
            d[3] = p
        if v is not None:
            if d[4] is None or v < d[4]:
                d[4] = v
            if d[5] is None or v > d[5]:
                d[5] = v
    return deltas


def _update_series(series_ids: dict[str, int], inserted: list[tuple[int, Point]]) -> None:
    params = []
    for sid, (count, nonfinite, first, last, low, high) in sorted(_series_deltas(inserted).items()):
        no_low, no_high = low is None, high is None
        params.append(
            [
                count,
                nonfinite,
                first,
                first,
                last.step,
                last.value,
                last.step,
                last.timestamp,
                last.step,
                last.step,
                no_low,
                low,
                low,
                no_high,
                high,
                high,
                sid,
            ]
        )
    if params:
        with connection.cursor() as cursor:
            cursor.executemany(_SERIES_UPDATE.format(table=MetricSeries._meta.db_table), params)


def rollup_cells(inserted: list[tuple[int, Point]]) -> dict[tuple[int, int, int], list]:
    """Aggregate new points into rollup cells: (series, level, bucket) -> cell.

    A cell is [min_step, min_value, max_step, max_value, nan_step]; level L+1
    is built from level L, so the work shrinks 16-fold per level.
    """
    level: dict[tuple[int, int], list] = {}
    for sid, p in inserted:
        _merge_cell(
            level,
            (sid, p.step >> ROLLUP_BITS),
            p.step,
            p.value,
            p.step,
            p.value,
            p.step if p.value is None else None,
        )
    cells = {(sid, 1, bucket): cell for (sid, bucket), cell in level.items()}
    for depth in range(2, ROLLUP_LEVELS + 1):
        upper: dict[tuple[int, int], list] = {}
        for (sid, bucket), c in level.items():
            _merge_cell(upper, (sid, bucket >> ROLLUP_BITS), *c)
        level = upper
        cells.update({(sid, depth, bucket): cell for (sid, bucket), cell in level.items()})
    return cells


def _merge_cell(cells: dict, ident: tuple, lo_step, lo, hi_step, hi, nan_step) -> None:
    cell = cells.get(ident)
    if cell is None:
        cells[ident] = [lo_step, lo, hi_step, hi, nan_step]
        return
    if lo is not None and (cell[1] is None or lo < cell[1]):
        cell[0], cell[1] = lo_step, lo
    if hi is not None and (cell[3] is None or hi > cell[3]):
        cell[2], cell[3] = hi_step, hi
    if nan_step is not None and (cell[4] is None or nan_step < cell[4]):
        cell[4] = nan_step


_ROLLUP_UPSERT = """
INSERT INTO {t} (series_id, level, bucket, min_step, min_value, max_step, max_value, nan_step)
VALUES {values}
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
      THEN excluded.nan_step ELSE {t}.nan_step END
"""


def _upsert_rollups(series_ids: dict[str, int], inserted: list[tuple[int, Point]]) -> None:
    rows = sorted(rollup_cells(inserted).items())
    table = MetricRollup._meta.db_table
    with connection.cursor() as cursor:
        for chunk in _chunks(rows, 1000):
            values = ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s)"] * len(chunk))
            params = [x for ident, cell in chunk for x in (*ident, *cell)]
            cursor.execute(_ROLLUP_UPSERT.format(t=table, values=values), params)


def _touch_run(run: Run) -> None:
    now = timezone.now()
    if run.status == RunStatus.CRASHED:
        # Points from a run the stall scan gave up on: it is alive after all.
        run_update(run=run, data={"status": RunStatus.RUNNING})
    Run.objects.filter(pk=run.pk).update(last_seen_at=now)
    run.last_seen_at = now


def _publish(run: Run, series_ids: dict[str, int], inserted: list[tuple[int, Point]]) -> None:
    keys = {sid: key for key, sid in series_ids.items()}
    touched = {sid for sid, _ in inserted}
    summaries = {
        row["key"]: row
        for row in MetricSeries.objects.filter(pk__in=touched).values(
            "key",
            "count",
            "nonfinite_count",
            "first_step",
            "last_step",
            "last_value",
            "last_timestamp",
            "min_value",
            "max_value",
        )
    }
    events.publish_on_commit(
        events.PointsIngested(
            run_id=run.pk,
            project_id=run.project_id,
            points=[(keys[sid], p.step, p.value, p.timestamp) for sid, p in inserted],
            series=summaries,
        )
    )
