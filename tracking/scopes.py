"""What each token scope may call: the one table the REST API and the MLflow API enforce.

* ``full`` — everything its user may do (what every token could before scopes).
* ``read`` — reads only: GET/HEAD/OPTIONS anywhere, plus MLflow's searches,
  which the mlflow client sends as POST although they change nothing.
* ``ingest`` — what a training job or a CI job needs to log, nothing more:
  create and update runs, send points, heartbeats, params, tags, status and
  artifacts, and the few reads the SDK and the mlflow client make while
  logging (one run by id, one experiment by id or name, a resumed run's
  metric keys). No lists, searches, reports, comments, members, tokens or
  alert rules.

An endpoint is named by ``request.resolver_match.view_name``: the URL name of a
REST view (``api-runs``), the dotted path of an MLflow view function
(``tracking.mlflow.views.log_batch``). Tokens never authenticate web pages (they
take a session login), so pages need no entry here.

Enforced by ``tracking.api.auth.TokenScopePermission`` (REST API) and
``tracking.mlflow.http.authenticate`` (MLflow API); both read the scope from the
token row ``token_authenticate`` already loaded, so a check costs no query.
The writes among the ``ingest`` scope's endpoints are also what
``INGEST_THROTTLE_RATE`` limits (``tracking.throttling``).
"""

from __future__ import annotations

from django.http import HttpRequest

from kernel.errors import ApplicationError
from tracking.models import ApiToken, TokenScope

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MLFLOW = "tracking.mlflow.views."
ARTIFACTS = "tracking.mlflow.artifact_views."

# MLflow searches arrive as POST with a JSON body; they only read.
READ_POSTS = frozenset(
    {f"{MLFLOW}experiment_search", f"{MLFLOW}run_search", f"{MLFLOW}nothing_found"}
)

GET, POST, PATCH, PUT = (frozenset({m}) for m in ("GET", "POST", "PATCH", "PUT"))
INGEST: dict[str, frozenset[str]] = {
    # The SDK and curl: sdk.init, run.log, run.config/summary/finish, resume, run.alert.
    "api-runs": POST,
    "api-run-detail": GET | PATCH,
    "api-run-metrics": GET | POST,
    "api-heartbeat": POST,
    "api-run-alerts": POST,
    "api-run-media": POST,  # sdk.Image, Table, Histogram
    "api-run-console": GET | POST,  # the console tee; resume reads how many lines are stored
    "api-run-artifact-versions": POST,  # run.log_artifact: announce, upload, commit
    "api-artifact-version-upload": PUT,
    "api-artifact-version-commit": POST,
    # The mlflow client: set_experiment, start_run, log_*, set_tag(s), end_run, log_artifact.
    f"{MLFLOW}experiment_get": GET,
    f"{MLFLOW}experiment_get_by_name": GET,
    f"{MLFLOW}experiment_create": POST,
    f"{MLFLOW}run_create": POST,
    f"{MLFLOW}run_get": GET,
    f"{MLFLOW}run_update": POST,
    f"{MLFLOW}log_batch": POST,
    f"{MLFLOW}log_metric": POST,
    f"{MLFLOW}log_param": POST,
    f"{MLFLOW}set_tag": POST,
    f"{MLFLOW}delete_tag": POST,
    f"{MLFLOW}log_inputs": POST,
    f"{MLFLOW}accepted": POST,  # outputs
    f"{MLFLOW}nothing_found": GET | POST,  # logged-models/search: always empty
    f"{ARTIFACTS}artifact": PUT,  # upload only: downloading reads other runs' files
}


class ScopeDenied(ApplicationError):
    status = 403

    def __init__(self, scope: str, *, allowed: list[str], method: str | None, path: str) -> None:
        super().__init__(
            "insufficient_scope",
            f"A token with the {scope!r} scope may not {method} {path};"
            f" this needs a token with the {' or '.join(map(repr, allowed))} scope.",
            details={"scope": scope, "allowed_scopes": allowed},
        )


def endpoint_of(request: HttpRequest) -> str | None:
    """The view name the tables above use; None for a request that no URL routed."""
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else None


def allows(scope: str, *, endpoint: str | None, method: str | None) -> bool:
    """Whether a token of ``scope`` may send ``method`` to ``endpoint`` (a view name)."""
    if scope == TokenScope.FULL:
        return True
    if scope == TokenScope.READ:
        return method in SAFE_METHODS or (method == "POST" and endpoint in READ_POSTS)
    if scope == TokenScope.INGEST:
        return is_ingest(endpoint=endpoint, method=method)
    return False  # an unknown scope grants nothing


def is_ingest(*, endpoint: str | None, method: str | None) -> bool:
    return method in INGEST.get(endpoint or "", ())


def require(token: ApiToken, *, endpoint: str | None, method: str | None, path: str) -> None:
    """Raise ``ScopeDenied`` (403, naming the scope) unless ``token`` may make this request."""
    if allows(token.scope, endpoint=endpoint, method=method):
        return
    allowed = [s for s in TokenScope.values if allows(s, endpoint=endpoint, method=method)]
    raise ScopeDenied(token.scope, allowed=allowed, method=method, path=path)
