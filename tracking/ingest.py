"""Metric ingestion: validate a batch, store it in one transaction, publish after commit.

A batch of up to 10,000 points costs a fixed number of statements, never one
per point: multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for the
points (the database tells which were new), one ``UPDATE`` per metric key for
the running summary, and multi-row upserts for the downsampling rollups
(``tracking.rollups``).

Idempotency: points are unique on (run, key, step) and the **first value
wins** — a re-sent point, or a new value for a step already stored, is
counted in ``duplicates`` and changes nothing. A ``batch_id`` seen before for
the run short-circuits the whole batch (the answer is all duplicates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from tracking import events, pgcopy, rollups
from tracking.errors import ApplicationError
from tracking.models import IngestBatch, MetricPoint, MetricSeries, Run, RunStatus
from tracking.services import run_update
from tracking.validation import clean_metric_key, clean_text, invalid

MAX_STEP = 2**63 - 1
BATCH_ID_MEMORY = timedelta(days=7)
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


# tuple.__new__ skips NamedTuple's Python-level constructor: the hot loop builds 10,000.
_new_tuple = tuple.__new__


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
        point = _fast_point(item, known_keys, now)
        if point is None:
            point = _checked_point(item, f"{field}[{index}]", now)
            known_keys.add(point.key)
        points.append(point)
    return points


def _fast_point(item: Any, known_keys: set[str], now: float) -> Point | None:
    """The common, valid point in as few operations as possible; ``None`` means look closer."""
    if type(item) is not dict or len(item) > 4:
        return None
    key, step, value = item.get("key"), item.get("step"), item.get("value", item)
    if key not in known_keys or type(step) is not int or not 0 <= step <= MAX_STEP:
        return None
    if type(value) is float:
        value = value if value == value else None
    elif type(value) is int and -(2**53) <= value <= 2**53:
        value = float(value)
    else:
        return None
    stamp = item.get("timestamp", now)
    if type(stamp) is not float or not 0 <= stamp < 1e11:
        return None
    if len(item) != 3 + ("timestamp" in item):
        return None
    return _new_tuple(Point, (key, step, value, stamp))


def _checked_point(item: Any, where: str, now: float) -> Point:
    """Validate one point field by field, raising with the field's name."""
    if type(item) is not dict:
        raise invalid(where, "Each point must be an object with key, step and value.")
    if not item.keys() <= POINT_FIELDS:
        unknown = sorted(item.keys() - POINT_FIELDS)[0]
        raise invalid(f"{where}.{unknown}", "Unknown field.")
    key = clean_metric_key(item.get("key"), field=f"{where}.key")
    step = item.get("step")
    if type(step) is not int or not 0 <= step <= MAX_STEP:
        raise invalid(f"{where}.step", "Must be an integer between 0 and 2**63-1.")
    if "value" not in item:
        raise invalid(f"{where}.value", "This field is required.")
    value = _value(item["value"], f"{where}.value")
    stamp = _timestamp(item.get("timestamp"), f"{where}.timestamp", now)
    return Point(key, step, value, stamp)


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
    series = _series_rows(run, {p.key for p in unique})
    series_ids = {key: sid for key, (sid, _) in series.items()}
    inserted = _insert_points(series, unique)
    _update_series(series_ids, inserted)
    _upsert_rollups(inserted)
    _touch_run(run)
    result = IngestResult(accepted=len(inserted), duplicates=len(points) - len(inserted))
    if batch_pk is not None:
        IngestBatch.objects.filter(pk=batch_pk).update(
            accepted=result.accepted, duplicates=result.duplicates
        )
    if inserted and events.has_subscribers(events.PointsIngested):
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


def _series_rows(run: Run, keys: set[str]) -> dict[str, tuple[int, int | None]]:
    """key -> (series id, last step stored), creating the series that are new."""

    def existing() -> dict[str, tuple[int, int | None]]:
        rows = MetricSeries.objects.filter(run=run, key__in=keys).values_list(
            "key", "id", "last_step"
        )
        return {key: (sid, last) for key, sid, last in rows}

    found = existing()
    if len(found) < len(keys):
        MetricSeries.objects.bulk_create(
            [MetricSeries(run=run, key=key) for key in sorted(keys - found.keys())],
            ignore_conflicts=True,
        )
        found = existing()
    return found


def _chunks(rows: list, size: int = _CHUNK_ROWS):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _insert_points(
    series: dict[str, tuple[int, int | None]], points: list[Point]
) -> list[tuple[int, Point]]:
    """Insert the points and return those that were new, as (series id, point)."""
    rows = sorted(((series[p.key][0], p) for p in points), key=lambda r: (r[0], r[1].step))
    if connection.vendor == "postgresql":
        return _insert_points_postgresql(rows)
    last_steps = dict(series.values())
    return _insert_points_sqlite(rows, last_steps)


def _insert_points_sqlite(
    rows: list[tuple[int, Point]], last_steps: dict[int, int | None]
) -> list[tuple[int, Point]]:
    # The transaction began with BEGIN IMMEDIATE (see settings), so it holds the
    # write lock: what is read here cannot change before the insert below.
    existing = _existing_steps(rows, last_steps)
    if existing:
        rows = [row for row in rows if (row[0], row[1].step) not in existing]
    with connection.cursor() as cursor:
        cursor.executemany(
            f'INSERT INTO {MetricPoint._meta.db_table} (series_id, step, value, "timestamp")'  # noqa: S608
            " VALUES (%s, %s, %s, %s) ON CONFLICT (series_id, step) DO NOTHING",
            [(sid, p.step, p.value, p.timestamp) for sid, p in rows],
        )
    return rows


def _existing_steps(
    rows: list[tuple[int, Point]], last_steps: dict[int, int | None]
) -> set[tuple[int, int]]:
    """Steps of ``rows`` already stored. Appends (past the last step) need no lookup."""
    suspects: dict[int, list[int]] = {}
    for sid, p in rows:
        last = last_steps[sid]
        if last is not None and p.step <= last:
            suspects.setdefault(sid, []).append(p.step)
    found: set[tuple[int, int]] = set()
    for sid, steps in suspects.items():
        for chunk in _chunks(steps, 5000):
            stored = MetricPoint.objects.filter(series_id=sid, step__in=chunk)
            found.update((sid, step) for step in stored.values_list("step", flat=True))
    return found


_POINTS_STAGE = "labbook_points_stage"
_POINTS_COLUMNS = (("series_id", "int8"), ("step", "int8"), ("value", "float8"), ("ts", "float8"))


def _insert_points_postgresql(rows: list[tuple[int, Point]]) -> list[tuple[int, Point]]:
    # RETURNING names the rows that were new, even when a concurrent request
    # inserts the same points.
    pgcopy.stage(_POINTS_STAGE, _POINTS_COLUMNS, ((sid, *p[1:]) for sid, p in rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {MetricPoint._meta.db_table} (series_id, step, value, "timestamp")'  # noqa: S608
            f" SELECT series_id, step, value, ts FROM {_POINTS_STAGE} ORDER BY series_id, step"
            " ON CONFLICT (series_id, step) DO NOTHING RETURNING series_id, step"
        )
        new = set(cursor.fetchall())
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


def _upsert_rollups(inserted: list[tuple[int, Point]]) -> None:
    rollups.upsert(rollups.cells_from_points([(sid, p.step, p.value) for sid, p in inserted]))


def _touch_run(run: Run) -> None:
    now = timezone.now()
    if run.status == RunStatus.CRASHED:
        # Points from a run the stall scan gave up on: it is alive after all.
        run_update(run=run, data={"status": RunStatus.RUNNING})
    Run.objects.filter(pk=run.pk).update(last_seen_at=now)
    run.last_seen_at = now


def _publish(run: Run, series_ids: dict[str, int], inserted: list[tuple[int, Point]]) -> None:
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
    events.publish(
        events.PointsIngested(
            run_id=run.pk,
            project_id=run.project_id,
            rows=inserted,
            keys={sid: key for key, sid in series_ids.items()},
            series=summaries,
        )
    )


def ingest_batches_prune(*, older_than: timedelta = BATCH_ID_MEMORY) -> int:
    """Forget batch ids older than ``older_than``; answers how many were forgotten.

    Retries come within minutes (the SDK gives up after LABBOOK_RETRY_SECONDS
    and spools); a re-sent batch after that is still stored once, because
    points are unique per (run, key, step).
    """
    deleted, _ = IngestBatch.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
