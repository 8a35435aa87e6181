"""Metric ingestion: validate a batch, store it in one transaction, publish what was stored.

A batch of up to 10,000 points costs a fixed number of statements, never one
per point: a multi-row ``INSERT`` for the points (binary ``COPY`` through a
staging table on PostgreSQL), one ``UPDATE`` per metric key for the running
summary, and multi-row upserts for the downsampling rollups
(``tracking.rollups``).

Every point is stored as sent; nothing is moved or replaced. A step may hold
several points, as in MLflow (its client logs every point without a step at
step 0, and a step may be logged again with another value):

- An **exact duplicate** — same key, step, timestamp and value (NaN equal to
  NaN) as a stored point or an earlier point of the batch — is dropped and
  counted in ``duplicates``: it is what a client re-sending a request
  produces. Any other point is kept, whatever its step.
- A point sent **without a step** goes one past its key's highest step so
  far, stored or earlier in the batch. An explicit step is kept as sent, in
  whatever order points arrive.
- A ``batch_id`` the run has seen before short-circuits the whole batch (the
  answer is all duplicates): a retried request stores nothing even when its
  points carry no timestamp or no step, which the server fills in anew.

Concurrency: a batch first updates its run's row (``last_seen_at``), and that
row lock is held until commit, so the batches of one run are stored one after
the other: what a batch reads (its keys' last steps, the points already at
its steps) cannot change before it writes. SQLite locks the whole database
anyway (``BEGIN IMMEDIATE``). The common batch appends (steps past its key's
last one) and reads nothing back; only points at steps already logged are
looked up, by primary key.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from kernel.errors import ApplicationError, invalid
from kernel.limits import max_length
from tracking import events, pgcopy, rollups
from tracking.models import IngestBatch, MetricPoint, MetricSeries, Run, RunStatus
from tracking.services import run_update
from tracking.validation import clean_metric_key, clean_text

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
    step: int | None  # None until ingest gives a point sent without a step its step
    value: float | None  # None is NaN
    timestamp: float
    # Set by ingest: 1, 2, ... for a point whose step and timestamp another value
    # took first (see MetricPoint).
    seq: int = 0


if TYPE_CHECKING:

    class Placed(NamedTuple):
        """A Point once ingest has given it its step (``_auto_steps``): the same tuple."""

        key: str
        step: int
        value: float | None
        timestamp: float
        seq: int = 0

else:
    Placed = Point

# A point as stored, in the order ingest stores and publishes them: (series id, point).
Stored = tuple[int, Placed]
T = TypeVar("T")


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
    if type(key) is not str or key not in known_keys:
        return None
    if type(step) is not int or not 0 <= step <= MAX_STEP:
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
    return _new_tuple(Point, (key, step, value, stamp, 0))


def _checked_point(item: Any, where: str, now: float) -> Point:
    """Validate one point field by field, raising with the field's name."""
    if type(item) is not dict:
        raise invalid(where, "Each point must be an object with key, step and value.")
    if not item.keys() <= POINT_FIELDS:
        unknown = sorted(item.keys() - POINT_FIELDS)[0]
        raise invalid(f"{where}.{unknown}", "Unknown field.")
    key = clean_metric_key(item.get("key"), field=f"{where}.key")
    step = item.get("step")
    if "step" in item and (type(step) is not int or not 0 <= step <= MAX_STEP):
        raise invalid(f"{where}.step", "Must be an integer between 0 and 2**63-1.")
    if "value" not in item:
        raise invalid(f"{where}.value", "This field is required.")
    value = _value(item["value"], f"{where}.value")
    stamp = _timestamp(item.get("timestamp"), f"{where}.timestamp", now)
    return Point(key, step, value, stamp)


def clean_batch_id(raw: Any) -> str | None:
    if raw is None:
        return None
    return clean_text(
        raw, field="batch_id", max_length=max_length(IngestBatch, "batch_id"), required=True
    )


# --- Storage ---------------------------------------------------------------------------


@transaction.atomic
def metrics_ingest(*, run: Run, points: list[Point], batch_id: str | None = None) -> IngestResult:
    """Store ``points`` for ``run``; see the module docstring for what is kept and dropped."""
    batch_pk = _claim_batch(run, batch_id) if batch_id else None
    if batch_id and batch_pk is None:
        return IngestResult(accepted=0, duplicates=len(points), replayed=True)
    _touch_run(run)  # first: its row lock stores one batch of the run at a time
    series = _series_rows(run, {p.key for p in points})
    new = _new_points(series, _auto_steps(series, points))
    _insert_points(new)
    _update_series(new)
    _upsert_rollups(new)
    result = IngestResult(accepted=len(new), duplicates=len(points) - len(new))
    if batch_pk is not None:
        IngestBatch.objects.filter(pk=batch_pk).update(
            accepted=result.accepted, duplicates=result.duplicates
        )
    if new and events.has_subscribers(events.PointsIngested):
        _publish(run, series, new)
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


def _auto_steps(series: dict[str, tuple[int, int | None]], points: list[Point]) -> list[Placed]:
    """Points without a step go one past their key's highest step yet, stored or in the batch."""
    if all(point.step is not None for point in points):
        return cast("list[Placed]", points)  # checked just above; not copied (10,000 points)
    highest = {key: last for key, (_sid, last) in series.items()}
    placed: list[Placed] = []
    for point in points:
        top = highest[point.key]
        step = _step_after(top) if point.step is None else point.step
        if top is None or step > top:
            highest[point.key] = step
        placed.append(Placed(point.key, step, point.value, point.timestamp, point.seq))
    return placed


def _step_after(step: int | None) -> int:
    if step is None:
        return 0
    if step >= MAX_STEP:
        raise invalid("points", f"A point without a step cannot go after step {step}.")
    return step + 1


def _new_points(series: dict[str, tuple[int, int | None]], points: list[Placed]) -> list[Stored]:
    """The points to insert, in primary-key order, each with its seq.

    Exact duplicates of a stored point or of an earlier point of the batch are
    left out; a point at a step and timestamp already taken by another value
    gets the next seq there. Sorting is stable, so points sharing a step and
    timestamp keep the order they were sent in.
    """
    stored = _stored_values(series, points)
    new: list[Stored] = []
    here: tuple[int, int, float] | None = None  # (series id, step, timestamp) of ``values``
    values: list[float | None] = []
    for row in sorted(((series[p.key][0], p) for p in points), key=_place):
        sid, point = row
        step, stamp, value = point.step, point.timestamp, point.value
        # the common case: a new place
        if here is None or stamp != here[2] or step != here[1] or sid != here[0]:
            here = (sid, step, stamp)
            values = stored.get(here, []) if stored else []
        if value in values:  # None (NaN) equals None: NaN repeats NaN
            continue
        new.append((sid, point._replace(seq=len(values))) if values else row)
        values.append(value)
    return new


def _place(row: Stored) -> tuple[int, int, float]:
    sid, point = row
    return sid, point.step, point.timestamp


def _chunks(rows: list[T], size: int = _CHUNK_ROWS) -> Iterator[list[T]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


# CROSS JOIN keeps SQLite on the primary key: with a long VALUES list it would
# rather scan the whole table once (PostgreSQL reads it as a plain join).
_STORED_AT = """
WITH wanted (series_id, step, ts) AS ({wanted})
SELECT p.series_id, p.step, p."timestamp", p.value FROM wanted CROSS JOIN {table} p
WHERE p.series_id = wanted.series_id AND p.step = wanted.step AND p."timestamp" = wanted.ts
ORDER BY p.series_id, p.step, p."timestamp", p.seq
"""


def _stored_values(
    series: dict[str, tuple[int, int | None]], points: list[Placed]
) -> dict[tuple[int, int, float], list[float | None]]:
    """(series id, step, timestamp) -> values stored there in seq order, for the batch's points.

    Only a step up to its key's last one can hold points already: appends
    need no lookup.
    """
    wanted = set()
    for point in points:
        sid, last = series[point.key]
        if last is not None and point.step <= last:
            wanted.add((sid, point.step, point.timestamp))
    found: dict[tuple[int, int, float], list[float | None]] = {}
    for chunk in _chunks(sorted(wanted)):
        for sid, step, stamp, value in _stored_at(chunk):
            found.setdefault((sid, step, stamp), []).append(value)
    return found


def _stored_at(places: list[tuple[int, int, float]]) -> list[tuple[Any, ...]]:
    """(series id, step, timestamp, value) of the points stored at ``places``, in key order.

    Timestamps go as bound parameters (arrays on PostgreSQL), never through a
    text format the database would parse on its own terms, so they match exactly.
    """
    table = MetricPoint._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            wanted = "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::float8[])"
            params: list[Any] = [list(column) for column in zip(*places, strict=True)]
        else:
            wanted = "VALUES " + ", ".join(["(%s, %s, %s)"] * len(places))
            params = [x for place in places for x in place]
        cursor.execute(_STORED_AT.format(wanted=wanted, table=table), params)
        found: list[tuple[Any, ...]] = cursor.fetchall()
        return found


_POINTS_STAGE = "labbook_points_stage"
_POINTS_COLUMNS = (
    ("series_id", "int8"), ("step", "int8"), ("ts", "float8"), ("seq", "int4"), ("value", "float8")
)  # fmt: skip
_INSERT_POINTS = (
    f'INSERT INTO {MetricPoint._meta.db_table} (series_id, step, "timestamp", seq, value)'
)


def _insert_points(new: list[Stored]) -> None:
    # A plain INSERT: the run's lock means nothing else writes these keys, so a
    # conflict would be a bug, and it fails the batch rather than lose a point.
    rows = ((sid, p.step, p.timestamp, p.seq, p.value) for sid, p in new)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            pgcopy.stage(_POINTS_STAGE, _POINTS_COLUMNS, rows)
            cursor.execute(
                f"{_INSERT_POINTS} SELECT series_id, step, ts, seq, value FROM {_POINTS_STAGE}"  # noqa: S608
            )
        else:
            # sqlite3 takes any iterable of rows; the stub asks for a Sequence.
            cursor.executemany(f"{_INSERT_POINTS} VALUES (%s, %s, %s, %s, %s)", rows)  # type: ignore[arg-type]


# The first and last point of a series are the first and last in primary-key
# order (see MetricPoint): a new point replaces them when it sorts before or after.
_EARLIER = (
    "first_step IS NULL OR (%(first_step)s, %(first_timestamp)s) < (first_step, first_timestamp)"
)
_LATER = (
    "last_step IS NULL"
    " OR (%(last_step)s, %(last_timestamp)s, %(last_seq)s) > (last_step, last_timestamp, last_seq)"
)
_SERIES_UPDATE = """
UPDATE {table} SET
  count = count + %(count)s,
  nonfinite_count = nonfinite_count + %(nonfinite)s,
  first_step = CASE WHEN {earlier} THEN %(first_step)s ELSE first_step END,
  first_timestamp = CASE WHEN {earlier} THEN %(first_timestamp)s ELSE first_timestamp END,
  first_value = CASE WHEN {earlier} THEN %(first_value)s ELSE first_value END,
  last_step = CASE WHEN {later} THEN %(last_step)s ELSE last_step END,
  last_timestamp = CASE WHEN {later} THEN %(last_timestamp)s ELSE last_timestamp END,
  last_seq = CASE WHEN {later} THEN %(last_seq)s ELSE last_seq END,
  last_value = CASE WHEN {later} THEN %(last_value)s ELSE last_value END,
  min_value = CASE WHEN %(no_low)s THEN min_value
                   WHEN min_value IS NULL OR %(low)s < min_value THEN %(low)s ELSE min_value END,
  max_value = CASE WHEN %(no_high)s THEN max_value
                   WHEN max_value IS NULL OR %(high)s > max_value THEN %(high)s ELSE max_value END,
  received_at = %(received_at)s
WHERE id = %(id)s
"""


def _series_deltas(new: list[Stored]) -> dict[int, list[Any]]:
    """Per series: [count, nonfinite, first Point, last Point, min, max] of the new points."""
    deltas: dict[int, list[Any]] = {}
    for sid, p in new:  # in primary-key order: a series' first point comes first
        d = deltas.get(sid)
        if d is None:
            d = deltas[sid] = [0, 0, p, p, None, None]
        d[0] += 1
        d[3] = p
        v = p.value
        if v is None or v - v != 0:  # NaN or +/-inf
            d[1] += 1
        if v is not None:
            if d[4] is None or v < d[4]:
                d[4] = v
            if d[5] is None or v > d[5]:
                d[5] = v
    return deltas


def _update_series(new: list[Stored]) -> None:
    now = timezone.now()
    params = []
    for sid, (count, nonfinite, first, last, low, high) in sorted(_series_deltas(new).items()):
        params.append(
            {
                "id": sid,
                "count": count,
                "nonfinite": nonfinite,
                "first_step": first.step,
                "first_timestamp": first.timestamp,
                "first_value": first.value,
                "last_step": last.step,
                "last_timestamp": last.timestamp,
                "last_seq": last.seq,
                "last_value": last.value,
                "no_low": low is None,
                "low": low,
                "no_high": high is None,
                "high": high,
                "received_at": now,
            }
        )
    if params:
        with connection.cursor() as cursor:
            sql = _SERIES_UPDATE.format(
                table=MetricSeries._meta.db_table, earlier=_EARLIER, later=_LATER
            )
            cursor.executemany(sql, params)


def _upsert_rollups(new: list[Stored]) -> None:
    points = ((sid, (p.step, p.timestamp, p.seq), p.value) for sid, p in new)
    rollups.upsert(rollups.cells_from_points(points))


def _touch_run(run: Run) -> None:
    now = timezone.now()
    if run.status == RunStatus.CRASHED:
        # Points from a run the stall scan gave up on: it is alive after all.
        run_update(run=run, data={"status": RunStatus.RUNNING})
    Run.objects.filter(pk=run.pk).update(last_seen_at=now)
    run.last_seen_at = now


def _publish(run: Run, series: dict[str, tuple[int, int | None]], new: list[Stored]) -> None:
    touched = {sid for sid, _ in new}
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
            rows=new,
            keys={sid: key for key, (sid, _last) in series.items()},
            series=summaries,
        )
    )


def ingest_batches_prune(*, older_than: timedelta = BATCH_ID_MEMORY) -> int:
    """Forget batch ids older than ``older_than``; answers how many were forgotten.

    Retries come within minutes (the SDK gives up after LABBOOK_RETRY_SECONDS
    and spools); a re-sent batch after that is still stored once if its points
    carry their steps and timestamps (the SDK's do): exact duplicates are dropped.
    """
    deleted, _ = IngestBatch.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
