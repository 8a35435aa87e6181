"""MLflow runs on Labbook's run store: create, update, log, delete, read history.

Everything goes through ``tracking.services`` and ``tracking.ingest``, so a run
logged by the mlflow client is an ordinary Labbook run: charts, reports and
alerts see it the same way (a FAILED ``runs/update`` fires ``run_failed``).

MLflow's rules kept here, in its words and order (``mlflow/utils/validation.py``,
the SQL store's ``log_batch``): key names, metric values, the batch limits,
unique param keys in a batch, immutable params (the same value again is fine),
long param and tag values cut to MLflow's limits, a deleted run refuses writes.
Metric points are kept as MLflow keeps them: every point at the step it was sent
with (0 when none is given: the client logs every point without a step at step 0,
and so does a request without one), several points per step, and an exact repeat
(same key, step, timestamp and value) dropped.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from kernel.errors import NotFound
from kernel.ids import is_id
from tracking import history as point_reads
from tracking import ingest, selectors, services
from tracking.mlflow import convert, media_artifacts
from tracking.mlflow.http import (
    API_DOCS,
    NOT_FOUND,
    MlflowError,
    as_double,
    as_int,
    exceeds_maximum_length,
    invalid,
    invalid_value,
    missing_value,
    not_active,
)
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
BAD_CHARACTERS = (
    "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.),"
    " spaces ( ), colon(:) and slashes (/)."
)


# --- Finding runs -----------------------------------------------------------------------------


def get(user: User, run_id: Any, *, write: bool = False) -> RunWithRole:
    """The run (``role`` annotated); 404 in MLflow's terms for unknown or foreign ids."""
    try:
        pk = int(str(run_id))
    except ValueError:
        pk = 0
    if not is_id(pk):
        raise MlflowError(NOT_FOUND, f"Run with id={run_id} not found")
    try:
        run = selectors.run_get_for_user(user, pk, write=write, defer=HEAVY_FIELDS if write else ())
    except NotFound:
        raise MlflowError(NOT_FOUND, f"Run with id={run_id} not found") from None
    if write and run.deleted_at is not None:
        raise invalid(not_active("run", run_id))
    return run


def with_data(user: User, run_id: Any) -> convert.RunRow:
    run = get(user, run_id)
    return convert.with_data(Run.objects.filter(pk=run.pk))[0]


# --- Checks ---------------------------------------------------------------------------------


def check_name(name: Any, path: str) -> str:
    """A metric, param or tag key, by MLflow's rule for names (the message names ``path``)."""
    if name is None:
        raise invalid(missing_value(path))
    if not isinstance(name, str):
        hint = f" Hint: Value was of type '{type(name).__name__}'."
        raise invalid(invalid_value(path, name, hint) + API_DOCS)
    if not NAME_RE.match(name):
        raise invalid(invalid_value(path, name, BAD_CHARACTERS))
    normal = posixpath.normpath(name)
    if normal != name or normal == "." or normal.startswith(("..", "/")):
        raise invalid(
            invalid_value(
                path,
                name,
                "Names may be treated as files in certain cases, and must not resolve to other"
                f" names when treated as such. This name would resolve to {normal!r}",
            )
        )
    return name


def _key(name: Any, path: str, length_name: str) -> str:
    """``check_name``, then MLflow's length limit, whose message says ``length_name``."""
    key = check_name(name, path)
    if len(key) > MAX_KEY_LENGTH:
        raise invalid(exceeds_maximum_length(length_name, MAX_KEY_LENGTH))
    return key


def metric_or_nan(value: float) -> float | None:
    """A metric value as Labbook stores it: NaN is None."""
    return None if math.isnan(value) else value


def _text(value: Any, path: str, limit: int, *, cut: bool = False) -> str:
    """A string value; over ``limit`` it is cut (``cut``, as MLflow cuts param and tag
    values) or refused."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        if not cut:
            raise invalid(exceeds_maximum_length(path, limit))
        text = text[:limit]
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


def _unique_keys(params: list[tuple[str, str]]) -> None:
    seen: set[str] = set()
    duplicates = []
    for key, _value in params:
        if key in seen:
            duplicates.append(key)
        seen.add(key)
    if duplicates:
        raise invalid(
            f"Duplicate parameter keys have been submitted: {duplicates}. Please ensure the"
            " request contains only one param value per param key."
        )


# --- Creating and updating -------------------------------------------------------------------


def create(
    user: User,
    project: ProjectWithRole,
    *,
    run_name: str | None,
    start_time: int | None,
    tags: list[dict[str, Any]] | None,
    user_id: str | None = None,
) -> Run:
    """A run of ``user`` (its Labbook author) with MLflow's ``user_id`` as the client sent it
    (MLflow keeps that, even empty; the ``mlflow.user`` tag is the client's too)."""
    services.require_write(project.role)
    if project.deleted_at is not None:
        raise invalid(not_active("experiment", project.pk))
    tag_values = _tags(tags or [], single=False)
    name = _run_name(run_name or "", tag_values.get(convert.RUN_NAME_TAG, ""))
    started = start_time or 0
    user_id = user_id or ""
    with transaction.atomic():
        retried = _created_already(
            user, project, name=name, started=started, tags=tag_values, user_id=user_id
        )
        if retried is not None:
            return retried
        run = services.run_create(user=user, project=project, name=name)
        run.metadata = {**run.metadata, convert.USER_ID: user_id}
        tag_values[convert.RUN_NAME_TAG] = run.name
        apply_tags(run, tag_values)
        if started > 0:
            run.created_at = convert.from_millis(started)
            run.save(update_fields=["created_at"])
    return run


def _run_name(argument: str, tag: str) -> str:
    if argument and tag and argument != tag:
        raise invalid(
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different"
            f" values (run_name='{argument}', mlflow.runName='{tag}')."
        )
    return _text(argument or tag, "run_name", 200)


# How long after its start_time a runs/create can be a retry of an earlier one.
RETRY_WINDOW = timedelta(minutes=10)


def _created_already(
    user: User, project: Project, *, name: str, started: int, tags: dict[str, str], user_id: str
) -> Run | None:
    """The run an identical earlier runs/create made, when this one is its retry.

    The mlflow client resends a request whose answer it lost (a web process
    restarted after the commit): MLflow would make a second run, and the
    client log into one while the other stays "running" until it is reported
    crashed. A retry carries the same body: same user, experiment, start_time
    (to the millisecond), user_id, tags and name, if one was given; nothing else does.
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
        same_user = run.metadata.get(convert.USER_ID, "") == user_id
        if same_tags and same_user and (not name or run.name == name):
            return run
    return None


def update(run: Run, *, status: str | None, end_time: int | None, run_name: str | None) -> Run:
    data: dict[str, Any] = {}
    if run_name:
        data["name"] = _text(run_name, "run_name", 200)
    if status:
        if status not in convert.FROM_MLFLOW_STATUS:  # MLflow would keep the status it had
            raise invalid(invalid_value("status", status))
        data["status"] = convert.FROM_MLFLOW_STATUS[status]
    with transaction.atomic():
        if data:
            services.run_update(run=run, data=data)
        if "name" in data:
            _set_tags(run, {convert.RUN_NAME_TAG: run.name})
        if end_time is not None and run.is_terminal:
            run.ended_at = convert.from_millis(end_time)
            run.save(update_fields=["ended_at"])
    return run


def set_deleted(run: RunWithRole, deleted: bool) -> None:
    services.require_write(run.role)
    run.deleted_at = timezone.now() if deleted else None
    run.save(update_fields=["deleted_at"])


# --- Tags and params --------------------------------------------------------------------------


def _tags(items: list[dict[str, Any]], *, single: bool) -> dict[str, str]:
    """MLflow's ``_validate_tag``: a bad key is named ``tags[i].key`` (``key`` for set-tag)."""
    tags: dict[str, str] = {}
    for index, item in enumerate(items):
        path = "" if single else f"tags[{index}]."
        key = _key(item.get("key"), f"{path}key", f"{path}key")
        tags[key] = _text(item.get("value"), f"{path}value", MAX_TAG_VALUE, cut=True)
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


def delete_tag(run: Run, key: str) -> None:
    if key not in run.metadata.get(convert.TAGS, {}):
        raise MlflowError(NOT_FOUND, f"No tag with name: {key} in run with id {run.pk}")
    with transaction.atomic():
        if key == convert.NOTE_TAG:  # apply_tags keeps notes a tag does not mention
            services.run_annotate(run=run, notes="")
        _set_tags(run, {key: None})


def _checked_params(items: list[dict[str, Any]], *, single: bool) -> list[tuple[str, str]]:
    """MLflow's ``_validate_param``: a bad key is named ``params[i].key`` (``key`` alone for
    log-parameter); a value over MAX_PARAM_VALUE is cut."""
    params = []
    for index, item in enumerate(items):
        path = "key" if single else f"params[{index}].key"
        key = _key(item.get("key"), path, "Param key")
        value_path = "value" if single else f"params[{index}].value"
        params.append((key, _text(item.get("value"), value_path, MAX_PARAM_VALUE, cut=True)))
    return params


def _params(run: Run, params: list[tuple[str, str]], *, single: bool) -> dict[str, str]:
    """New params to store; the same key with another value is refused (params are immutable)."""
    current = convert.params(run)
    changed = [
        {"key": key, "old_value": current[key], "new_value": value}
        for key, value in params
        if key in current and current[key] != value
    ]
    if changed and single:
        key, old, new = changed[0]["key"], changed[0]["old_value"], changed[0]["new_value"]
        raise invalid(
            f"Changing param values is not allowed. Param with key='{key}' was already"
            f" logged with value='{old}' for run ID='{run.pk}'. Attempted logging"
            f" new value '{new}'."
        )
    if changed:
        raise invalid(
            f"Changing param values is not allowed. Params were already logged='{changed}'"
            f" for run ID='{run.pk}'."
        )
    return {key: value for key, value in params if key not in current}


# --- Metrics ----------------------------------------------------------------------------------


MAX_TIMESTAMP_MS = 1e14 - 1000  # Labbook stores Unix seconds below 1e11


def _points(items: list[dict[str, Any]], *, single: bool) -> list[ingest.Point]:
    """The batch's metrics as points; the first bad one raises naming ``metrics[i].<field>``
    (the field alone for log-metric)."""
    checked_keys: set[str] = set()
    points = []
    for index, item in enumerate(items):
        point = _plain_point(item, checked_keys)
        if point is None:
            point = _checked_point(item, "" if single else f"metrics[{index}].")
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
    """MLflow's ``_validate_metric``, in its order and words (it calls the key ``name``)."""
    key = check_name(item.get("key"), f"{path}name")
    raw_value, raw_timestamp, raw_step = item.get("value"), item.get("timestamp"), item.get("step")
    if raw_value is None:
        raise invalid(missing_value(f"{path}value"))
    value = as_double(raw_value)
    if value is None:
        raise invalid(
            invalid_value(
                f"{path}value",
                raw_value,
                f"(timestamp={raw_timestamp}). Please specify value as a valid double"
                " (64-bit floating point)",
            )
        )
    timestamp = None if raw_timestamp is None else as_int(raw_timestamp)
    if timestamp is None or timestamp < 0:
        raise invalid(
            invalid_value(
                f"{path}timestamp",
                raw_timestamp,
                f"metric '{key}' (value={value}). Timestamp must be a nonnegative long"
                " (64-bit integer) ",
            )
        )
    step = 0 if raw_step is None else as_int(raw_step)
    if step is None:
        raise invalid(
            invalid_value(
                f"{path}step",
                raw_step,
                f"metric '{key}' (value={value}). Step must be a valid long (64-bit integer).",
            )
        )
    if len(key) > MAX_KEY_LENGTH:
        raise invalid(exceeds_maximum_length("Metric name", MAX_KEY_LENGTH))
    return ingest.Point(key, step, metric_or_nan(value), min(timestamp, MAX_TIMESTAMP_MS) / 1000)


@dataclass(frozen=True)
class Batch:
    """A log-batch checked whole, before the run is looked up (MLflow's order)."""

    points: list[ingest.Point] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    single: bool = False  # log-metric, log-parameter or set-tag: MLflow words errors so


def checked_batch(
    *,
    metrics: list[dict[str, Any]] | None,
    params: list[dict[str, Any]] | None,
    tags: list[dict[str, Any]] | None,
    single: bool = False,
) -> Batch:
    """The items checked as MLflow's SQL store checks them: each metric, param and tag, then
    the batch limits, then unique param keys."""
    metric_items, param_items, tag_items = metrics or [], params or [], tags or []
    points = _points(metric_items, single=single)
    checked_params = _checked_params(param_items, single=single)
    tag_values = _tags(tag_items, single=single)
    _limits(metric_items, param_items, tag_items)
    _unique_keys(checked_params)
    return Batch(points, checked_params, tag_values, single)


def log_batch(run: Run, *, metrics: Any, params: Any, tags: Any) -> None:
    write_batch(run, checked_batch(metrics=metrics, params=params, tags=tags))


def write_batch(run: Run, batch: Batch) -> None:
    with transaction.atomic():
        if batch.params or batch.tags:  # read-modify-write of config/metadata: lock the row
            locked = Run.objects.select_for_update().get(pk=run.pk)
            run.config, run.metadata = locked.config, locked.metadata
        new_params = _params(run, batch.params, single=batch.single) if batch.params else {}
        if new_params:
            run.config = {**run.config, **new_params}
            run.save(update_fields=["config"])
        if batch.tags:
            _set_tags(run, batch.tags)
        if batch.points:
            ingest.metrics_ingest(run=run, points=batch.points)
    # --- the tag that lists MLflow's tables makes each listed file a media table
    if media_artifacts.TABLES_TAG in batch.tags:
        media_artifacts.tables_tagged(run, batch.tags[media_artifacts.TABLES_TAG])


# --- History ----------------------------------------------------------------------------------


def history_limit(max_results: int | None) -> int:
    """The page size for ``max_results``: at most MAX_HISTORY_PAGE points, even when more
    are asked for (MLflow answers them all at once; its client follows the token either way).
    """
    if max_results is not None and max_results < 1:
        raise invalid(invalid_value("max_results", max_results) + " It must be a positive integer.")
    return min(max_results or MAX_HISTORY_PAGE, MAX_HISTORY_PAGE)


def history(run: Run, key: str, *, limit: int, page_token: str | None) -> dict[str, Any]:
    """Points of ``key`` in step order, a page of ``limit``; the token names the next point."""
    start = _page_start(page_token)
    series = MetricSeries.objects.filter(run=run, key=key).first()
    if series is None:
        return {}
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
