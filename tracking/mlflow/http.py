"""MLflow's wire conventions for our views: auth, arguments, answers and errors.

* Auth: ``Authorization: Bearer <labbook token>`` (what ``MLFLOW_TRACKING_TOKEN``
  sends), or HTTP Basic with the token as the password (what
  ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` send). Anything else is 401
  ``UNAUTHENTICATED``, whose message says what the REST API's would: no token
  (send one), a header without a token in it, a token that is not valid or was
  revoked, or one that expired (and when).
* Arguments: a GET reads the query string (repeated keys are lists); a POST,
  PATCH or DELETE reads a JSON object body — MLflow refuses other content types
  with 400, and so do we. An endpoint's ``schema`` (``Arg``s, MLflow's request
  message and handler schema in one) checks and converts them before the handler
  runs, with the messages of MLflow's ``_validate_param_against_schema``.
* Answers: a JSON object; ``{}`` when there is nothing to say.
* Errors: ``{"error_code": ..., "message": ...}`` with the status MLflow uses, so
  the client raises its usual ``MlflowException``/``RestException``. The client
  retries 429 and 5xx, so a bad input must never become a 5xx.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from kernel.errors import ApplicationError
from tracking import scopes, throttling
from tracking.services import TOKEN_NOT_VALID, token_authenticate, token_in_header
from tracking.validation import json_loads

logger = logging.getLogger(__name__)

INVALID = "INVALID_PARAMETER_VALUE"
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
# Labbook's ApplicationError status -> MLflow's error code.
CODES = {
    400: INVALID,
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: NOT_FOUND,
    405: "ENDPOINT_NOT_FOUND",
    409: "RESOURCE_CONFLICT",
    413: INVALID,
    429: "REQUEST_LIMIT_EXCEEDED",
}
STATUSES = {INVALID: 400, NOT_FOUND: 404, ALREADY_EXISTS: 400, "BAD_REQUEST": 400}

# Where labbook.urls serves MLflow's protocols (tracking, its artifact store, and the artifact
# download at the root): an error on these paths answers in MLflow's shape, whoever answers it.
PATH_PREFIXES = ("/api/2.0/", "/ajax-api/2.0/", "/get-artifact")


def is_mlflow_path(path: str) -> bool:
    return path.startswith(PATH_PREFIXES)


Arguments = dict[str, Any]
Handler = Callable[..., dict[str, Any] | HttpResponseBase]


class MlflowError(Exception):
    """An error in MLflow's own terms (``RESOURCE_ALREADY_EXISTS``, ...)."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUSES.get(code, 400)


def invalid(message: str) -> MlflowError:
    return MlflowError(INVALID, message)


# MLflow's message templates (mlflow/utils/validation.py), for every check that quotes them.
def invalid_value(path: str, value: Any, message: str | None = None) -> str:
    shown = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if message:
        return f"Invalid value {shown} for parameter '{path}' supplied: {message}"
    return f"Invalid value {shown} for parameter '{path}' supplied."


def missing_value(path: str) -> str:
    return f"Missing value for required parameter '{path}'."


def exceeds_maximum_length(path: str, limit: int) -> str:
    return f"'{path}' exceeds the maximum length of {limit} characters"


def not_active(kind: str, pk: Any) -> str:
    """A write to a deleted experiment or run (MLflow's ``_check_*_is_active``)."""
    return f"The {kind} {pk} must be in the 'active' state. Current state is deleted."


def json_response(answer: dict[str, Any], status: int = 200) -> HttpResponse:
    """``answer`` as JSON, encoded by orjson (a 25,000-point history page in a few ms)."""
    return HttpResponse(orjson.dumps(answer), status=status, content_type="application/json")


def error_response(code: str, message: str, status: int) -> HttpResponse:
    return json_response({"error_code": code, "message": message}, status=status)


def _from_application_error(error: ApplicationError) -> HttpResponse:
    code = "RESOURCE_ALREADY_EXISTS" if error.code == "already_exists" else None
    message = f"{error.field}: {error.message}" if error.field else error.message
    status = 400 if code else error.status
    return error_response(code or CODES.get(status, INVALID), message, status)


# The 401 messages (``UNAUTHENTICATED``), in MLflow's terms: what to set, not which header.
NONE_SENT = "Send a Labbook API token: MLFLOW_TRACKING_TOKEN=<token>."
NONE_IN_HEADER = (
    "The Authorization header carries no token: send 'Bearer <token>'"
    " (MLFLOW_TRACKING_TOKEN=<token>) or HTTP Basic with the token as the password"
    " (MLFLOW_TRACKING_PASSWORD=<token>)."
)
NOT_VALID = f"{TOKEN_NOT_VALID} Check {{setting}} (tokens are created under Settings → API tokens)."


def unauthenticated(authorization: str, raw: str | None) -> str:
    """Why the ``Authorization`` header (``raw``, the token in it) authenticates nobody.

    An expired token is not among these: ``token_authenticate`` raises it
    (``TokenExpired``), with the date it expired.
    """
    if not authorization.strip():
        return NONE_SENT
    if not raw:
        return NONE_IN_HEADER
    basic = authorization.lstrip().lower().startswith("basic ")
    setting = "MLFLOW_TRACKING_PASSWORD" if basic else "MLFLOW_TRACKING_TOKEN"
    return NOT_VALID.format(setting=setting)


def authenticate(request: HttpRequest) -> HttpResponse | None:
    """Set ``request.user`` from the token, or answer the refusal.

    401 without a token, with one that is not valid (``unauthenticated`` says
    which) or with an expired one; 403 when the token's scope does not cover the
    endpoint (``tracking.scopes``); 429 with ``Retry-After`` when the token's
    rate budget is spent (``tracking.throttling``).
    """
    authorization = request.headers.get("Authorization", "")
    raw = token_in_header(authorization)
    try:
        token = token_authenticate(raw) if raw else None
        if token is None:
            return error_response("UNAUTHENTICATED", unauthenticated(authorization, raw), 401)
        endpoint, method = scopes.endpoint_of(request), request.method
        scopes.require(token, endpoint=endpoint, method=method, path=request.path)
        throttling.require_capacity(token, endpoint=endpoint, method=method)
    except ApplicationError as error:
        response = _from_application_error(error)
        if isinstance(error, throttling.RateLimited):
            response["Retry-After"] = str(error.retry_after)
        return response
    request.user = token.user
    return None


# --- Arguments: MLflow's request schemas ------------------------------------------------------

API_DOCS = " See the API docs for more information about request parameters."
INT64 = 2**63
Kind = Literal["string", "int", "double", "list", "enum", "any"]


@dataclass(frozen=True)
class Arg:
    """One argument of an MLflow request: its proto type and whether the handler requires it.

    ``items`` types a list: a kind for its items (``"string"``) or the fields of its objects.
    ``at_most`` is a bound MLflow's schema checks without a reason (runs/search's
    ``max_results``), so its refusal reads as a type error.
    """

    kind: Kind
    required: bool = False
    items: Kind | Mapping[str, Arg] | None = None
    at_most: int | None = None


Schema = Mapping[str, Arg]
STRING = Arg("string")
REQUIRED_STRING = Arg("string", required=True)
INT = Arg("int")
STRINGS = Arg("list", items="string")
ENUM = Arg("enum")  # a name or a number; the handler checks which


def objects(**fields: Arg) -> Arg:
    return Arg("list", items=fields)


def read(args: Arguments, schema: Schema, *, query: bool = False) -> Arguments:
    """``args`` checked against ``schema`` in its order, numbers converted; the first bad one
    raises MLflow's message. ``run_id`` falls back to ``run_uuid``, as in MLflow.

    MLflow parses the body into its proto message and, where that fails, checks the
    types its handler's schema names: a value either accepts is taken (``"1.5"`` as a
    double, ``2.0`` as an integer). Labbook refuses the rest, also where MLflow's
    schema names no type and it keeps the field's default instead (``user_id: 5``).
    """
    cleaned = dict(args)
    if "run_id" in schema and args.get("run_id") is None:
        cleaned["run_id"] = args.get("run_uuid")
    for name, arg in schema.items():
        value = cleaned.get(name)
        if query and arg.kind == "list" and value is not None and not isinstance(value, list):
            value = [value]  # a query string's single value of a repeated field
        cleaned[name] = _checked(value, arg, name)
    return cleaned


def _checked(value: Any, arg: Arg, path: str) -> Any:
    if value is None or (arg.required and value == ""):
        if arg.required:
            raise invalid(missing_value(path) + API_DOCS)
        return None
    converted = _CONVERTERS[arg.kind](value)
    if converted is None or (arg.at_most is not None and converted > arg.at_most):
        hint = f" Hint: Value was of type '{type(value).__name__}'."
        raise invalid(invalid_value(path, value, hint) + API_DOCS)
    if arg.kind == "list" and arg.items is not None:
        return _checked_items(converted, arg.items, path)
    return converted


def _checked_items(items: list[Any], of: Kind | Mapping[str, Arg], path: str) -> list[Any]:
    if isinstance(of, str):
        if any(_CONVERTERS[of](item) is None for item in items):
            hint = f" Hint: Value was of type '{type(items).__name__}'."
            raise invalid(invalid_value(path, items, hint) + API_DOCS)
        return items
    checked = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            hint = f" Hint: Value was of type '{type(item).__name__}'."
            raise invalid(invalid_value(f"{path}[{index}]", item, hint) + API_DOCS)
        changes = {}
        for name, arg in of.items():
            value = item.get(name)
            fixed = _checked(value, arg, f"{path}[{index}].{name}")
            if fixed is not value:
                changes[name] = fixed
        checked.append({**item, **changes} if changes else item)
    return checked


# Each converter answers None for a value its kind does not take (None itself never gets here).
def _as_string(value: Any) -> Any:
    return value if isinstance(value, str) else None


def as_int(value: Any) -> int | None:
    """What MLflow takes for an int64: a number (a fraction cut off) or its text."""
    if isinstance(value, str):
        number = _int_text(value)
    elif isinstance(value, float):
        number = int(value) if math.isfinite(value) else None
    elif isinstance(value, int):  # and bool, which MLflow's schema takes as 0 or 1
        number = int(value)
    else:
        return None
    return number if number is not None and -INT64 <= number < INT64 else None


def _int_text(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)  # "1e3", as protobuf reads it
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def as_double(value: Any) -> float | None:
    """What MLflow takes for a double: a number, or text float() reads ("NaN", "1e-3")."""
    if isinstance(value, int | float | str):
        try:
            return float(value)
        except (ValueError, OverflowError):
            return None
    return None


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else None


def _as_enum(value: Any) -> Any:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": _as_string,
    "int": as_int,
    "double": as_double,
    "list": _as_list,
    "enum": _as_enum,
    "any": lambda value: value,
}


def _arguments(request: HttpRequest) -> Arguments:
    if request.method == "GET":
        query = request.GET.lists()
        return {key: values if len(values) > 1 else values[0] for key, values in query}
    if request.content_type != "application/json":
        raise invalid(
            f"Send a JSON body with Content-Type application/json, not {request.content_type!r}."
        )
    try:
        body = json_loads(request.body or b"{}")
    except (ValueError, RecursionError) as error:
        raise invalid(f"The body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object.")
    return body


def endpoint(
    *methods: str, raw_body: bool = False, schema: Schema | None = None
) -> Callable[[Handler], Callable[..., HttpResponseBase]]:
    """An MLflow REST endpoint answering ``methods``; the handler gets the arguments,
    checked against ``schema`` (``read``) when it has one.

    With ``raw_body`` (artifact uploads: bytes, not JSON) the handler reads the
    request itself and gets no arguments.
    """

    def decorate(handler: Handler) -> Callable[..., HttpResponseBase]:
        @csrf_exempt
        @functools.wraps(handler)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                message = f"{request.method} is not allowed here; use {' or '.join(methods)}."
                return error_response("ENDPOINT_NOT_FOUND", message, 405)
            refusal = authenticate(request)
            if refusal is not None:
                return refusal
            try:
                if not raw_body:
                    arguments = _arguments(request)
                    if schema is not None:
                        arguments = read(arguments, schema, query=request.method == "GET")
                    args = (arguments, *args)
                answer = handler(request, *args, **kwargs)
            except MlflowError as error:
                return error_response(error.code, error.message, error.status)
            except ApplicationError as error:
                return _from_application_error(error)
            return answer if isinstance(answer, HttpResponseBase) else json_response(answer)

        return view

    return decorate


@csrf_exempt  # a client's POST to a path we lack gets MLflow's 404, never the CSRF page
def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any other path under the MLflow prefixes: JSON, never an HTML page.

    The client relies on this 404 (``ENDPOINT_NOT_FOUND``) to fall back, for example
    from ``logged-models`` or ``traces``, on servers without them.
    """
    return error_response("ENDPOINT_NOT_FOUND", f"No MLflow endpoint {request.path}.", 404)
