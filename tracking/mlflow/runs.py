"""MLflow runs on Labbook's run store: create, update, log, delete, read history.

Everything goes through ``tracking.services`` and ``tracking.ingest``, so a run
logged by the mlflow client is an ordinary Labbook run: charts, reports and
alerts see it the same way (a FAILED ``runs/update`` fires ``run_failed``).

MLflow's rules kept here (``mlflow/utils/validation.py``): key names, the
batch limits, immutable params (the same value again is fine), a deleted run
refuses writes. Metric points are kept as MLflow keeps them: every point at
the step it was sent with (0 when none is given: the client logs every point
without a step at step 0, and so does a request without one), several points
per step, and an exact repeat (same key, step, timestamp and value) dropped.
"""

from __future__ import annotations

import math
import numbers
import posixpath
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from kernel.errors import NotFound
from kernel.ids import is_id
from tracking import history as point_reads
from tracking import ingest, selectors, services
from tracking.mlflow import convert
from tracking.mlflow.http import NOT_FOUND, MlflowError, invalid
from tracking.models import MetricSeries, Project, Run
from tracking.validation import MAX_KEY_LENGTH, MAX_TAGS, float_to_json

if TYPE_CHECKING:
    from tracking.models import ProjectWithRole, RunWithRole

MAX_METRICS = 1000
MAX_PARAMS_TAGS = 100
MAX_ENTITIES = 1000
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_HISTORY_PAGE = 25_000
# What a write reads only when params or tags change (and then under a row lock).
HEAVY_FIELDS = ("config", "summary", "metadata", "git", "traceback", "command", "notes")
NAME_RE = re.compile(r"^[/\w.\- :]*$")
NAN_STRINGS = {"nan": None, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf}


# --- Finding runs -----------------------------------------------------------------------------


def get(user: User, run_id: Any, *, write: bool = False) -> RunWithRole:
    """The run (``role`` annotated); 404 in MLflow's terms for unknown or foreign ids."""
    try:
        pk = int(str(run_id))
    except ValueError:
        pk = 0
    if not is_id(pk):
        raise MlflowError(NOT_FOUND, f"Run '{run_id}' not found")
    try:
        run = selectors.run_get_for_user(user, pk, write=write, defer=HEAVY_FIELDS if write else ())
    except NotFound:
        raise MlflowError(NOT_FOUND, f"Run '{run_id}' not found") from None
    if write and run.deleted_at is not None:
        raise invalid(f"The run {run_id} must be in the 'active' state. Current state is deleted.")
    return run


def with_data(user: User, run_id: Any) -> convert.RunRow:
    run = get(user, run_id)
    return convert.with_data(Run.objects.filter(pk=run.pk))[0]


# --- Checks -----------------------------------------------------------------------------------


def check_name(name: Any, path: str) -> str:
    if not isinstance(name, str) or not name:
        raise invalid(f"Missing value for parameter '{path}'.")
    if len(name) > MAX_KEY_LENGTH:
        raise invalid(f"'{path}' exceeds the maximum length of {MAX_KEY_LENGTH} characters.")
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
    number: int = value
    return number


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
    text = "" if value is None else str(value)
    if len(text) > limit:
        raise invalid(f"'{path}' exceeds the maximum length of {limit} characters.")
    if "\x00" in text:
        raise invalid(f"'{path}' may not contain NUL characters.")
    return text


def _limits(metrics: list[Any], params: list[Any], tags: list[Any]) -> None:
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
    user: User,
    project: ProjectWithRole,
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
        retried = _created_already(user, project, name=name, started=started, tags=tag_values)
        if retried is not None:
            return retried
        run = services.run_create(user=user, project=project, name=name)
        tag_values[convert.RUN_NAME_TAG] = run.name
        apply_tags(run, tag_values)
        if started > 0:
            run.created_at = convert.from_millis(started)
            run.save(update_fields=["created_at"])
    return run


# How long after its start_time a runs/create can be a retry of an earlier one.
RETRY_WINDOW = timedelta(minutes=10)


def _created_already(
    user: User, project: Project, *, name: str, started: int, tags: dict[str, str]
) -> Run | None:
    """The run an identical earlier runs/create made, when this one is its retry.

    The mlflow client resends a request whose answer it lost (a web process
    restarted after the commit): MLflow would make a second run, and the
    client log into one while the other stays "running" until it is reported
    crashed. A retry carries the same body: same user, experiment, start_time
    (to the millisecond), tags and name, if one was given; nothing else does.
    """
    if started <= 0:
        return None
    moment = convert.from_millis(started)
    if abs(timezone.now() - moment) > RETRY_WINDOW:
        return None
    sent = {key: value for key, value in tags.items() if key != convert.RUN_NAME_TAG}
    for run in Run.objects.filter(project=project, created_by=user, created_at=moment):
        stored = run.metadata.get(convert.TAGS, {})
        same_tags = {k: v for k, v in stored.items() if k != convert.RUN_NAME_TAG} == sent
        if same_tags and (not name or run.name == name):
            return run
    return None


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


def set_deleted(run: RunWithRole, deleted: bool) -> None:
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


def _set_tags(run: Run, changes: Mapping[str, str | None]) -> None:
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
        type(key) is not str  # before the set lookup: a dict or list key is unhashable
        or key not in checked_keys
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
            ingest.metrics_ingest(run=run, points=points)


# --- History ----------------------------------------------------------------------------------


def history(run: Run, key: Any, *, max_results: Any, page_token: Any) -> dict[str, Any]:
    """Points of ``key`` in step order, a page at a time; the token names the next point."""
    key = check_name(key, "metric_key")
    limit = _integer(max_results, "max_results", default=MAX_HISTORY_PAGE)
    if not 0 < limit <= MAX_HISTORY_PAGE:
        raise invalid(f"max_results must be between 1 and {MAX_HISTORY_PAGE}.")
    start = _page_start(page_token)
    series = MetricSeries.objects.filter(run=run, key=key).first()
    if series is None:
        return {"metrics": []}
    rows, after = point_reads.points_page(series, limit=limit, start=start)
    answer: dict[str, Any] = {
        "metrics": [
            {
                "key": key,
                "value": float_to_json(value),
                "timestamp": convert.to_millis(timestamp),
                "step": step,
            }
            for step, timestamp, _seq, value in rows
        ]
    }
    if after is not None:
        answer["next_page_token"] = point_reads.cursor_token(after)
    return answer


def _page_start(page_token: Any) -> point_reads.PointKey | None:
    if not page_token:
        return None
    try:
        return point_reads.parse_cursor(str(page_token))
    except ValueError:
        raise invalid(f"Invalid page token {page_token!r}.") from None
