"""The MLflow tracking REST endpoints (``/api/2.0/mlflow/...``): thin, over the modules here.

Each view reads MLflow's arguments, calls ``experiments``/``runs``/``search``
and answers MLflow's JSON shape. Auth, argument parsing and errors are
``http.endpoint``'s job.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from django.http.response import HttpResponseBase

from kernel.http import AuthenticatedHttpRequest
from tracking.mlflow import artifacts, convert, experiments, history_bulk, inputs, runs, search
from tracking.mlflow.http import (
    ENUM,
    INT,
    REQUIRED_STRING,
    STRING,
    STRINGS,
    Arg,
    Arguments,
    endpoint,
    invalid,
    invalid_value,
    missing_value,
    objects,
)
from tracking.models import Run

DEFAULT_MAX_RESULTS = 1000
MAX_RESULTS = 50_000
# MLflow's request schemas (server/handlers.py), in the order its handlers check them.
TAGS = objects(key=REQUIRED_STRING, value=STRING)
RUN_ID = {"run_id": REQUIRED_STRING}


def _page(args: Arguments, *, default: int) -> tuple[int, int]:
    """``(offset, limit)`` from ``page_token`` (opaque to clients) and ``max_results``,
    which the schema made an integer (at most MAX_RESULTS for runs/search)."""
    limit = default if args.get("max_results") is None else args["max_results"]
    if limit < 1:  # MLflow's store's words, without a final period
        raise invalid(invalid_value("max_results", limit) + " It must be a positive integer")
    if limit > MAX_RESULTS:
        raise invalid(invalid_value("max_results", limit) + f" It must be at most {MAX_RESULTS}")
    token = args.get("page_token")
    if not token:
        return 0, limit
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(token)))["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise invalid("Invalid page token.") from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid("Invalid page token.")
    return offset, limit


def _next_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _paged(
    items: list[Any], offset: int, limit: int, key: str, shape: Callable[[Any], Any]
) -> dict[str, Any]:
    answer: dict[str, Any] = {key: [shape(item) for item in items[:limit]]} if items else {}
    if len(items) > limit:
        answer["next_page_token"] = _next_token(offset + limit)
    return answer


# --- Experiments ------------------------------------------------------------------------------


@endpoint("POST", schema={"name": REQUIRED_STRING, "artifact_location": STRING, "tags": TAGS})
def experiment_create(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.create(request.user, args["name"], args["tags"])
    return {"experiment_id": str(project.pk)}


@endpoint("GET", schema={"experiment_id": REQUIRED_STRING})
def experiment_get(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, args["experiment_id"])
    return {"experiment": convert.experiment(project)}


@endpoint("GET", schema={"experiment_name": REQUIRED_STRING})
def experiment_get_by_name(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_name(request.user, args["experiment_name"])
    return {"experiment": convert.experiment(project)}


@endpoint(
    "GET",
    "POST",
    schema={
        "view_type": ENUM,
        "max_results": INT,
        "order_by": STRINGS,
        "filter": STRING,
        "page_token": STRING,
    },
)
def experiment_search(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    offset, limit = _page(args, default=DEFAULT_MAX_RESULTS)
    found = experiments.search(
        request.user,
        view_type=args["view_type"],
        filter_string=args["filter"] or "",
        order_by=args["order_by"] or [],
    )
    page = list(found[offset : offset + limit + 1])
    return _paged(page, offset, limit, "experiments", convert.experiment)


@endpoint("POST", schema={"experiment_id": REQUIRED_STRING, "new_name": REQUIRED_STRING})
def experiment_update(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, args["experiment_id"], create_default=True)
    experiments.rename(request.user, project, args["new_name"])
    return {}


@endpoint("POST", schema={"experiment_id": REQUIRED_STRING})
def experiment_delete(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, args["experiment_id"], create_default=True)
    experiments.set_deleted(project, True)
    return {}


@endpoint("POST", schema={"experiment_id": REQUIRED_STRING})
def experiment_restore(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, args["experiment_id"], create_default=True)
    experiments.set_deleted(project, False)
    return {}


@endpoint(
    "POST", schema={"experiment_id": REQUIRED_STRING, "key": REQUIRED_STRING, "value": STRING}
)
def experiment_set_tag(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, args["experiment_id"], create_default=True)
    experiments.set_tag(project, args["key"], args["value"])
    return {}


@endpoint("POST", schema={"experiment_id": REQUIRED_STRING, "key": REQUIRED_STRING})
def experiment_delete_tag(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, args["experiment_id"], create_default=True)
    experiments.delete_tag(project, args["key"], experiment_id=args["experiment_id"])
    return {}


# --- Runs -------------------------------------------------------------------------------------


@endpoint(
    "POST",
    schema={
        "experiment_id": STRING,
        "start_time": INT,
        "run_name": STRING,
        "user_id": STRING,
        "tags": TAGS,
    },
)
def run_create(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    experiment_id = args["experiment_id"] or convert.DEFAULT_EXPERIMENT_ID
    project = experiments.by_id(request.user, experiment_id, create_default=True)
    run = runs.create(
        request.user,
        project,
        run_name=args["run_name"],
        start_time=args["start_time"],
        tags=args["tags"],
        user_id=args["user_id"],
    )
    return {"run": convert.run(runs.with_data(request.user, run.pk))}


@endpoint("GET", schema=RUN_ID)
def run_get(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    return {"run": convert.run(runs.with_data(request.user, args["run_id"]))}


@endpoint("POST", schema={**RUN_ID, "end_time": INT, "status": STRING, "run_name": STRING})
def run_update(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    run = runs.get(request.user, args["run_id"], write=True)
    runs.update(run, status=args["status"], end_time=args["end_time"], run_name=args["run_name"])
    return {"run_info": convert.run_info(runs.with_data(request.user, run.pk))}


@endpoint("POST", schema=RUN_ID)
def run_delete(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    run = runs.get(request.user, args["run_id"])
    runs.set_deleted(run, True)
    return {}


@endpoint("POST", schema=RUN_ID)
def run_restore(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    run = runs.get(request.user, args["run_id"])
    runs.set_deleted(run, False)
    return {}


def _writable(request: AuthenticatedHttpRequest, args: Arguments) -> Run:
    return runs.get(request.user, args["run_id"], write=True)


# log-batch's items: MLflow's schema requires these fields; runs.checked_batch checks the rest.
REQUIRED = Arg("any", required=True)
METRICS = objects(key=REQUIRED, value=REQUIRED, timestamp=REQUIRED)
PARAMS = objects(key=REQUIRED)


@endpoint("POST", schema={**RUN_ID, "metrics": METRICS, "params": PARAMS, "tags": PARAMS})
def log_batch(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    batch = runs.checked_batch(metrics=args["metrics"], params=args["params"], tags=args["tags"])
    runs.write_batch(_writable(request, args), batch)
    return {}


LOG_METRIC = {
    **RUN_ID,
    "key": REQUIRED_STRING,
    "value": Arg("double", required=True),
    "timestamp": Arg("int", required=True),
    "step": INT,
    "model_id": STRING,
    "dataset_name": STRING,
    "dataset_digest": STRING,
}


@endpoint("POST", schema=LOG_METRIC)
def log_metric(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    metric = {name: args[name] for name in ("key", "value", "timestamp", "step")}
    batch = runs.checked_batch(metrics=[metric], params=None, tags=None, single=True)
    runs.write_batch(_writable(request, args), batch)
    return {}


@endpoint("POST", schema={**RUN_ID, "key": REQUIRED_STRING, "value": STRING})
def log_param(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    param = {"key": args["key"], "value": args["value"]}
    batch = runs.checked_batch(metrics=None, params=[param], tags=None, single=True)
    runs.write_batch(_writable(request, args), batch)
    return {}


@endpoint("POST", schema={**RUN_ID, "key": REQUIRED_STRING, "value": STRING})
def set_tag(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    tag = {"key": args["key"], "value": args["value"]}
    batch = runs.checked_batch(metrics=None, params=None, tags=[tag], single=True)
    runs.write_batch(_writable(request, args), batch)
    return {}


@endpoint("POST", schema={**RUN_ID, "key": REQUIRED_STRING})
def delete_tag(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    runs.delete_tag(_writable(request, args), args["key"])
    return {}


@endpoint("POST", schema={**RUN_ID, "datasets": Arg("list"), "models": Arg("list")})
def log_inputs(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    """Datasets the run used (``tracking.mlflow.inputs``); logged-model inputs are dropped."""
    entries = inputs.parse(args["datasets"])
    inputs.log_inputs(_writable(request, args), entries=entries)
    return {}


@endpoint("POST", schema={**RUN_ID, "models": Arg("list")})
def accepted(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    """Calls Labbook takes and does not keep (model outputs): ``{}``.

    Only from someone who may write to the run, as if it were kept.
    """
    _writable(request, args)
    return {}


@endpoint("POST", "GET")
def nothing_found(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    """Searches of what Labbook does not have (logged models): an empty answer."""
    return {}


@endpoint(
    "GET",
    schema={**RUN_ID, "metric_key": REQUIRED_STRING, "page_token": STRING, "max_results": INT},
)
def metric_history(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    limit = runs.history_limit(args["max_results"])
    run = runs.get(request.user, args["run_id"])
    return runs.history(run, args["metric_key"], limit=limit, page_token=args["page_token"])


@endpoint("GET")
def metric_history_bulk_interval(
    request: AuthenticatedHttpRequest, args: Arguments
) -> dict[str, Any]:
    return history_bulk.sampled(request.user, args)


# --- A run's artifacts, by run id (the tracking API's view of the mlflow-artifacts store) -----


def _artifact_path(args: Arguments) -> str:
    """The run-relative ``path`` argument, checked as MLflow checks it; "" when not sent."""
    return artifacts.mlflow_path(args.get("path") or "")


@endpoint("GET", schema={**RUN_ID, "path": STRING, "page_token": STRING})
def artifact_list(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    """One folder's files, named from the run's root; in one page (MLflow ignores page_token)."""
    path = _artifact_path(args)
    run = runs.get(request.user, args["run_id"])
    answer: dict[str, Any] = {"root_uri": convert.artifact_uri(run.project_id, run.pk)}
    files = artifacts.run_listing(run, path)
    return {**answer, "files": files} if files else answer


@endpoint("GET", schema={"path": STRING})  # MLflow reads its query string without a schema
def get_artifact(request: AuthenticatedHttpRequest, args: Arguments) -> HttpResponseBase:
    """One file's bytes, as an attachment (``/get-artifact``, outside the API prefix)."""
    if args["path"] is None:
        raise invalid(missing_value("path"))
    path = _artifact_path(args)
    run = runs.get(request.user, args.get("run_id") or args.get("run_uuid"))
    file = artifacts.run_file(run, path)
    return artifacts.file_response(file, artifacts.mlflow_type(file))


@endpoint(
    "GET",
    "POST",
    schema={
        "experiment_ids": STRINGS,
        "filter": STRING,
        "max_results": Arg("int", at_most=MAX_RESULTS),
        "order_by": STRINGS,
        "run_view_type": ENUM,
        "page_token": STRING,
    },
)
def run_search(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    offset, limit = _page(args, default=DEFAULT_MAX_RESULTS)
    projects = experiments.searched(request.user, args["experiment_ids"] or [])
    found = Run.objects.filter(project__in=projects)
    found = convert.in_stage(found, args["run_view_type"], name="run_view_type")
    found = search.filter_runs(found, args["filter"] or "")
    found = search.order_runs(found, args["order_by"] or [])
    page = convert.with_data(found[offset : offset + limit + 1])
    return _paged(page, offset, limit, "runs", convert.run)
