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

from kernel.http import AuthenticatedHttpRequest
from tracking.mlflow import convert, experiments, runs, search
from tracking.mlflow.http import Arguments, endpoint, invalid
from tracking.models import Run

DEFAULT_MAX_RESULTS = 1000
MAX_RESULTS = 50_000


def _run_id(args: Arguments) -> Any:
    return args.get("run_id") or args.get("run_uuid")


def _required(args: Arguments, name: str) -> Any:
    value = args.get(name)
    if value in (None, ""):
        raise invalid(f"Missing value for required parameter '{name}'.")
    return value


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _page(args: Arguments, *, default: int) -> tuple[int, int]:
    """``(offset, limit)`` from ``page_token`` (opaque to clients) and ``max_results``."""
    raw_limit = args.get("max_results", default)
    try:
        limit = int(raw_limit)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value {raw_limit!r} for parameter 'max_results'.") from None
    if not 0 < limit <= MAX_RESULTS:
        raise invalid(f"Invalid value {limit} for parameter 'max_results': 1 to {MAX_RESULTS}.")
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


@endpoint("POST")
def experiment_create(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.create(request.user, _required(args, "name"), args.get("tags"))
    return {"experiment_id": str(project.pk)}


@endpoint("GET")
def experiment_get(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, _required(args, "experiment_id"))
    return {"experiment": convert.experiment(project)}


@endpoint("GET")
def experiment_get_by_name(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_name(request.user, _required(args, "experiment_name"))
    return {"experiment": convert.experiment(project)}


@endpoint("GET", "POST")
def experiment_search(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    offset, limit = _page(args, default=DEFAULT_MAX_RESULTS)
    found = experiments.search(
        request.user,
        view_type=args.get("view_type", ""),
        filter_string=args.get("filter", ""),
        order_by=_as_list(args.get("order_by")),
    )
    page = list(found[offset : offset + limit + 1])
    return _paged(page, offset, limit, "experiments", convert.experiment)


@endpoint("POST")
def experiment_update(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, _required(args, "experiment_id"), create_default=True)
    if args.get("new_name"):
        experiments.rename(request.user, project, args["new_name"])
    return {}


@endpoint("POST")
def experiment_delete(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, _required(args, "experiment_id"), create_default=True)
    experiments.set_deleted(project, True)
    return {}


@endpoint("POST")
def experiment_restore(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, _required(args, "experiment_id"), create_default=True)
    experiments.set_deleted(project, False)
    return {}


@endpoint("POST")
def experiment_set_tag(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    project = experiments.by_id(request.user, _required(args, "experiment_id"), create_default=True)
    experiments.set_tag(project, _required(args, "key"), args.get("value"))
    return {}


# --- Runs -------------------------------------------------------------------------------------


@endpoint("POST")
def run_create(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    experiment_id = args.get("experiment_id") or convert.DEFAULT_EXPERIMENT_ID
    project = experiments.by_id(request.user, experiment_id, create_default=True)
    run = runs.create(
        request.user,
        project,
        run_name=args.get("run_name"),
        start_time=args.get("start_time"),
        tags=args.get("tags"),
    )
    return {"run": convert.run(runs.with_data(request.user, run.pk))}


@endpoint("GET")
def run_get(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    run_id = _required({"run_id": _run_id(args)}, "run_id")
    return {"run": convert.run(runs.with_data(request.user, run_id))}


@endpoint("POST")
def run_update(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    run = runs.get(request.user, _required({"run_id": _run_id(args)}, "run_id"), write=True)
    runs.update(
        run,
        status=args.get("status"),
        end_time=args.get("end_time"),
        run_name=args.get("run_name"),
    )
    return {"run_info": convert.run_info(runs.with_data(request.user, run.pk))}


@endpoint("POST")
def run_delete(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    run = runs.get(request.user, _required(args, "run_id"))
    runs.set_deleted(run, True)
    return {}


@endpoint("POST")
def run_restore(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    run = runs.get(request.user, _required(args, "run_id"))
    runs.set_deleted(run, False)
    return {}


def _writable(request: AuthenticatedHttpRequest, args: Arguments) -> Run:
    return runs.get(request.user, _required({"run_id": _run_id(args)}, "run_id"), write=True)


@endpoint("POST")
def log_batch(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    runs.log_batch(
        _writable(request, args),
        metrics=args.get("metrics"),
        params=args.get("params"),
        tags=args.get("tags"),
    )
    return {}


@endpoint("POST")
def log_metric(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    _required(args, "key")
    metric = {name: args.get(name) for name in ("key", "value", "timestamp", "step")}
    runs.log_batch(_writable(request, args), metrics=[metric], params=None, tags=None)
    return {}


@endpoint("POST")
def log_param(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    param = {"key": _required(args, "key"), "value": args.get("value")}
    runs.log_batch(_writable(request, args), metrics=None, params=[param], tags=None)
    return {}


@endpoint("POST")
def set_tag(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    tag = {"key": _required(args, "key"), "value": args.get("value")}
    runs.log_batch(_writable(request, args), metrics=None, params=None, tags=[tag])
    return {}


@endpoint("POST")
def delete_tag(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    runs.delete_tag(_writable(request, args), _required(args, "key"))
    return {}


@endpoint("POST")
def accepted(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    """Calls Labbook takes and does not keep (dataset inputs, model outputs): ``{}``.

    Only from someone who may write to the run, as if it were kept.
    """
    _writable(request, args)
    return {}


@endpoint("POST", "GET")
def nothing_found(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    """Searches of what Labbook does not have (logged models): an empty answer."""
    return {}


@endpoint("GET")
def metric_history(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    run = runs.get(request.user, _required({"run_id": _run_id(args)}, "run_id"))
    return runs.history(
        run,
        _required(args, "metric_key"),
        max_results=args.get("max_results"),
        page_token=args.get("page_token"),
    )


@endpoint("GET", "POST")
def run_search(request: AuthenticatedHttpRequest, args: Arguments) -> dict[str, Any]:
    offset, limit = _page(args, default=DEFAULT_MAX_RESULTS)
    ids = _as_list(args.get("experiment_ids"))
    projects = experiments.searched(request.user, ids)
    found = Run.objects.filter(project__in=projects)
    found = convert.in_stage(found, args.get("run_view_type"), name="run_view_type")
    found = search.filter_runs(found, args.get("filter") or "")
    found = search.order_runs(found, _as_list(args.get("order_by")))
    page = convert.with_data(found[offset : offset + limit + 1])
    return _paged(page, offset, limit, "runs", convert.run)
