"""MLflow runs on Labbook's run store: create, update, log, delete, read history.

Everything goes through ``tracking.services`` and ``tracking.ingest``, so a run
logged by the mlflow client is an ordinary Labbook run: charts, reports and
alerts see it the same way (a FAILED ``runs/update`` fires ``run_failed``).

MLflow's rules kept here (``mlflow/utils/validation.py``): key names, the
batch limits, immutable params (the same value again is fine), a deleted run
refuses writes. Metric points: Labbook keeps one value per (key, step); the
mlflow client sends step 0 when no step is given, so a key logged *again* at
step 0 goes to the next step after its last one instead of being dropped, and
an exact repeat of the latest point (same value and timestamp) is dropped as
MLflow drops it.
"""

from __future__ import annotations

import math
import numbers
import posixpath
import re
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tracking import ingest, selectors, services
from tracking.errors import NotFound
from tracking.mlflow import convert
from tracking.mlflow.http import NOT_FOUND, MlflowError, invalid
from tracking.models import MetricPoint, MetricSeries, Project, Run
from tracking.selectors import MAX_DB_INT
from tracking.validation import MAX_TAGS, float_to_json

MAX_METRICS = 1000
MAX_PARAMS_TAGS = 100
MAX_ENTITIES = 1000
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_HISTORY_PAGE = 25_000
# What a write reads only when params or tags change (and then under a row lock).
HEAVY_FIELDS = ("config", "summary", "metadata", "git", "traceback", "command", "notes")
NAME_RE = re.compile(r"^[/\w.\- :]*$")
NAN_STRINGS = {"nan": None, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf}


# --- Finding runs -----------------------------------------------------------------------------


def get(user: AbstractBaseUser, run_id: Any, *, write: bool = False) -> Run:
    """The run (``role`` annotated); 404 in MLflow's terms for unknown or foreign ids."""
    try:
        pk = int(str(run_id))
    except ValueError:
        pk = 0
    if not 0 < pk <= MAX_DB_INT:
        raise MlflowError(NOT_FOUND, f"Run '{run_id}' not found")
    try:
        run = selectors.run_get_for_user(user, pk, write=write, defer=HEAVY_FIELDS if write else ())
    except NotFound:
        raise MlflowError(NOT_FOUND, f"Run '{run_id}' not found") from None
    if write and run.deleted_at is not None:
        raise invalid(f"The run {run_id} must be in the 'active' state. Current state is deleted.")
    return run


def with_data(user: AbstractBaseUser, run_id: Any) -> Run:
    run = get(user, run_id)
    return convert.with_data(Run.objects.filter(pk=run.pk))[0]


# --- Checks -----------------------------------------------------------------------------------


def check_name(name: Any, path: str) -> str:
    if not isinstance(name, str) or not name:
        raise invalid(f"Missing value for parameter '{path}'.")
    if len(name) > MAX_KEY:
        raise invalid(f"'{path}' exceeds the maximum length of {MAX_KEY} characters.")
    if not NAME_RE.match(name):
        raise invalid(
            f"Invalid value {name!r} for parameter '{path}': names may only contain"
            " alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ),"
            " colon(:) and slashes (/)."
        )
    normal = posixpath.normpath(name)
    if normal != name or normal == "." or normal.startswith(("..", "/")):
        raise invalid(
            f"Invalid value {name!r} for parameter '{path}': names must not resolve to"
            f" other names when treated as file paths (this one resolves to {normal!r})."
        )
    return name


def _integer(value: Any, path: str, *, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
        raise invalid(f"Invalid value {value!r} for parameter '{path}': a 64-bit integer.")
    return value


def _metric_value(value: Any, path: str) -> float | None:
    if isinstance(value, str) and value.strip().lower() in NAN_STRINGS:
        return NAN_STRINGS[value.strip().lower()]
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        raise invalid(f"Invalid value {value!r} for parameter '{path}': a double (64-bit float).")
    return metric_or_nan(float(value))


def metric_or_nan(value: float) -> float | None:
    """A metric value as Labbook stores it: NaN is None."""
    return None if math.isnan(value) else value


def _text(value: Any, path: str, limit: int) -> str:
    value = "" if value is None else str(value)
    if len(value) > limit:
        raise invalid(f"'{path}' exceeds the maximum length of {limit} characters.")
    if "\x00" in value:
        raise invalid(f"'{path}' may not contain NUL characters.")
    return value


def _limits(metrics: list, params: list, tags: list) -> None:
    for what, items, limit in (
        ("metrics", metrics, MAX_METRICS),
        ("params", params, MAX_PARAMS_TAGS),
        ("tags", tags, MAX_PARAMS_TAGS),
        ("metrics, params, and tags", [*metrics, *params, *tags], MAX_ENTITIES),
    ):
        if len(items) > limit:
            raise invalid(
                f"A batch logging request can contain at most {limit} {what}. Got"
                f" {len(items)} {what}. Please split up {what} across multiple requests"
                " and try again."
            )


def _list(value: Any, path: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid(f"Invalid value for parameter '{path}': a list of objects.")
    return value


# --- Creating and updating -------------------------------------------------------------------


def create(
    user: AbstractBaseUser,
    project: Project,
    *,
    run_name: Any,
    start_time: Any,
    tags: Any,
) -> Run:
    services.require_write(project.role)
    if project.deleted_at is not None:
        raise invalid(f"The experiment {project.pk} must be in the 'active' state.")
    tag_values = _tags(_list(tags, "tags"))
    name = _text(run_name or tag_values.get(convert.RUN_NAME_TAG, ""), "run_name", 200)
    started = _integer(start_time, "start_time", default=0)
    with transaction.atomic():
        run = services.run_create(user=user, project=project, name=name)
        tag_values[convert.RUN_NAME_TAG] = run.name
        apply_tags(run, tag_values)
        if started > 0:
            run.created_at = convert.from_millis(started)
            run.save(update_fields=["created_at"])
    return run


def update(run: Run, *, status: Any, end_time: Any, run_name: Any) -> Run:
    data: dict[str, Any] = {}
    if run_name:
        data["name"] = _text(run_name, "run_name", 200)
    if status:
        if status not in convert.FROM_MLFLOW_STATUS:
            raise invalid(f"Invalid value {status!r} for parameter 'status'.")
        data["status"] = convert.FROM_MLFLOW_STATUS[status]
    with transaction.atomic():
        if data:
            services.run_update(run=run, data=data)
        if "name" in data:
            _set_tags(run, {convert.RUN_NAME_TAG: run.name})
        if end_time is not None and run.is_terminal:
            run.ended_at = convert.from_millis(_integer(end_time, "end_time"))
            run.save(update_fields=["ended_at"])
    return run


def set_deleted(run: Run, deleted: bool) -> None:
    services.require_write(run.role)
    run.deleted_at = timezone.now() if deleted else None
    run.save(update_fields=["deleted_at"])


# --- Tags and params --------------------------------------------------------------------------


def _tags(items: list[dict[str, Any]]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for index, item in enumerate(items):
        key = check_name(item.get("key"), f"tags[{index}].key")
        tags[key] = _text(item.get("value"), f"tags[{index}].value", MAX_TAG_VALUE)
    return tags


def apply_tags(run: Run, tags: dict[str, str]) -> None:
    """Store every tag; the name, notes and Labbook tags follow the ones that map to them."""
    old_labels = set(convert.labels(run.metadata.get(convert.TAGS, {})))
    run.metadata = {**run.metadata, convert.TAGS: tags}
    fields = ["metadata"]
    if tags.get(convert.RUN_NAME_TAG) and tags[convert.RUN_NAME_TAG] != run.name:
        run.name = _text(tags[convert.RUN_NAME_TAG], "tags.mlflow.runName", 200)
        fields.append("name")
    if tags.get(convert.NOTE_TAG, run.notes) != run.notes:
        run.notes = tags.get(convert.NOTE_TAG, "")
        fields.append("notes")
    git = {field: tags[tag] for tag, field in convert.GIT_TAGS.items() if tags.get(tag)}
    if git and git != run.git:
        run.git = git
        fields.append("git")
    run.save(update_fields=fields)
    services.run_annotate(run=run, tags=_labbook_tags(run, old_labels, convert.labels(tags)))


def _labbook_tags(run: Run, old_labels: set[str], new_labels: list[str]) -> list[str]:
    """The labels of MLflow tags replace their old ones; tags from the run page or SDK stay."""
    replaced = old_labels | set(new_labels)
    kept = [tag for tag in services.run_tags(run) if tag not in replaced]
    return [*kept, *new_labels][:MAX_TAGS]


def _set_tags(run: Run, changes: dict[str, str | None]) -> None:
    """Set (or, for ``None``, delete) tags of a run."""
    tags = {**run.metadata.get(convert.TAGS, {})}
    for key, value in changes.items():
        if value is None:
            tags.pop(key, None)
        else:
            tags[key] = value
    apply_tags(run, tags)


def delete_tag(run: Run, key: Any) -> None:
    key = check_name(key, "key")
    if key not in run.metadata.get(convert.TAGS, {}):
        raise MlflowError(NOT_FOUND, f"No tag with name: {key} in run with id {run.pk}")
    with transaction.atomic():
        if key == convert.NOTE_TAG:  # apply_tags keeps notes a tag does not mention
            services.run_annotate(run=run, notes="")
        _set_tags(run, {key: None})


def _params(run: Run, items: list[dict[str, Any]]) -> dict[str, str]:
    """New params to store; the same key with another value is refused (params are immutable)."""
    current = convert.params(run)
    new: dict[str, str] = {}
    for index, item in enumerate(items):
        key = check_name(item.get("key"), f"params[{index}].key")
        value = _text(item.get("value"), f"params[{index}].value", MAX_PARAM_VALUE)
        if key in new:
            raise invalid(
                f"Duplicate parameter keys have been submitted: ['{key}']. Please ensure the"
                " request contains only one param value per param key."
            )
        if key in current and current[key] != value:
            raise invalid(
                f"Changing param values is not allowed. Param with key='{key}' was already"
                f" logged with value='{current[key]}' for run ID='{run.pk}'. Attempted logging"
                f" new value '{value}'."
            )
        if key not in current:
            new[key] = value
    return new


# --- Metrics ----------------------------------------------------------------------------------


MAX_TIMESTAMP_MS = 1e14 - 1000  # Labbook stores Unix seconds below 1e11


def _points(items: list[dict[str, Any]]) -> list[ingest.Point]:
    """The batch's metrics as points; the first bad one raises naming ``metrics[i].<field>``."""
    checked_keys: set[str] = set()
    points = []
    for index, item in enumerate(items):
        point = _plain_point(item, checked_keys)
        if point is None:
            point = _checked_point(item, f"metrics[{index}]")
            checked_keys.add(point.key)
        points.append(point)
    return points


def _plain_point(item: dict[str, Any], checked_keys: set[str]) -> ingest.Point | None:
    """The usual point (a known key, a float, int step and timestamp) in a few operations.

    ``None`` means "look closer": ``_checked_point`` validates and explains.
    """
    key, value, timestamp, step = (
        item.get("key"), item.get("value"), item.get("timestamp"), item.get("step", 0)
    )  # fmt: skip
    if (
        key not in checked_keys
        or type(value) is not float
        or type(timestamp) is not int
        or type(step) is not int
        or not 0 <= timestamp <= MAX_TIMESTAMP_MS
        or not -(2**63) < step < 2**63
    ):
        return None
    return ingest.Point(key, step, None if value != value else value, timestamp / 1000)


def _checked_point(item: dict[str, Any], path: str) -> ingest.Point:
    key = check_name(item.get("key"), f"{path}.key")
    value = _metric_value(item.get("value"), f"{path}.value")
    timestamp = _integer(item.get("timestamp"), f"{path}.timestamp")
    if timestamp < 0:
        raise invalid(f"Invalid value {timestamp} for '{path}.timestamp': not negative.")
    step = _integer(item.get("step"), f"{path}.step", default=0)
    return ingest.Point(key, step, value, min(timestamp, MAX_TIMESTAMP_MS) / 1000)


def _auto_steps(run: Run, points: list[ingest.Point]) -> list[ingest.Point]:
    """Points at step 0 of a key that already has points go after its last step.

    A step-0 point equal (value and timestamp) to a stored point of its key or
    to one earlier in the batch is a repeat — a retried request — and is dropped,
    as MLflow drops an exact repeat.
    """
    at_zero = {p.key for p in points if p.step == 0}
    if not at_zero:
        return points
    series = MetricSeries.objects.filter(run=run, key__in=at_zero, count__gt=0)
    latest = {s.key: (s.last_step, (s.last_value, s.last_timestamp)) for s in series}
    known = _stored_repeats(run, points, latest)
    placed = []
    for point in points:
        seen = (point.value, point.timestamp)
        if point.key not in latest:
            placed.append(point)
            if point.key in at_zero:
                latest[point.key] = (point.step, seen)
                if point.step == 0:
                    known.add((point.key, *seen))
            continue
        last_step, last_seen = latest[point.key]
        if point.step != 0:
            placed.append(point)
            if point.step > last_step:
                latest[point.key] = (point.step, seen)
            continue
        if seen == last_seen or (point.key, *seen) in known:
            continue
        moved = point._replace(step=max(last_step, 0) + 1)
        latest[point.key] = (moved.step, seen)
        known.add((point.key, *seen))
        placed.append(moved)
    return placed


def _stored_repeats(
    run: Run, points: list[ingest.Point], latest: dict[str, tuple[int, tuple]]
) -> set[tuple[str, float | None, float]]:
    """``(key, value, timestamp)`` of stored points the step-0 ``points`` may repeat.

    Those at step 0, and those at the timestamps of points no later than their
    key's latest one (a retried batch). Live logging moves forward in time, so
    it reads step 0 only.
    """
    last_stamps = {key: seen[1] for key, (_, seen) in latest.items()}
    stamps = sorted(
        {
            p.timestamp
            for p in points
            if p.step == 0 and p.key in latest and p.timestamp <= (last_stamps[p.key] or math.inf)
        }
    )
    rows = MetricPoint.objects.filter(series__run=run, series__key__in=list(latest))
    rows = rows.filter(Q(step=0) | Q(timestamp__in=stamps))
    return set(rows.values_list("series__key", "value", "timestamp"))


def log_batch(run: Run, *, metrics: Any, params: Any, tags: Any) -> None:
    metric_items = _list(metrics, "metrics")
    param_items = _list(params, "params")
    tag_items = _list(tags, "tags")
    _limits(metric_items, param_items, tag_items)
    points = _points(metric_items)
    tag_values = _tags(tag_items)
    with transaction.atomic():
        if param_items or tag_values:  # read-modify-write of config/metadata: lock the row
            locked = Run.objects.select_for_update().get(pk=run.pk)
            run.config, run.metadata = locked.config, locked.metadata
        new_params = _params(run, param_items) if param_items else {}
        if new_params:
            run.config = {**run.config, **new_params}
            run.save(update_fields=["config"])
        if tag_values:
            _set_tags(run, tag_values)
        if points:
            ingest.metrics_ingest(run=run, points=_auto_steps(run, points))


# --- History ----------------------------------------------------------------------------------


def history(run: Run, key: Any, *, max_results: Any, page_token: Any) -> dict[str, Any]:
    """Points of ``key`` by step, a page at a time; the token is the next step to read."""
    key = check_name(key, "metric_key")
    limit = _integer(max_results, "max_results", default=MAX_HISTORY_PAGE)
    if not 0 < limit <= MAX_HISTORY_PAGE:
        raise invalid(f"max_results must be between 1 and {MAX_HISTORY_PAGE}.")
    start = _integer(page_token, "page_token") if page_token else None
    series = MetricSeries.objects.filter(run=run, key=key).first()
    if series is None:
        return {"metrics": []}
    rows = series.points.order_by("step").values_list("step", "value", "timestamp")
    if start is not None:
        rows = rows.filter(step__gte=start)
    page = list(rows[: limit + 1])
    answer: dict[str, Any] = {
        "metrics": [
            {
                "key": key,
                "value": float_to_json(value),
                "timestamp": int(timestamp * 1000),
                "step": step,
            }
            for step, value, timestamp in page[:limit]
        ]
    }
    if len(page) > limit:
        answer["next_page_token"] = str(page[limit][0])
    return answer
