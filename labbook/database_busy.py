"""A database too busy to take a write in time answers 503 with Retry-After, never 500.

On SQLite one writer holds the lock at a time; the others wait up to
``SQLITE_BUSY_TIMEOUT`` seconds, then SQLite gives up with "database is
locked". The transaction has been rolled back by then (nothing half-written),
so the honest answer is "try again shortly": the SDK and the mlflow client
both retry a 503 and honour Retry-After.
"""

from __future__ import annotations

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from tracking.api.errors import error_body
from tracking.mlflow.http import error_response, is_mlflow_path

RETRY_AFTER_SECONDS = 2
MESSAGE = "The database is busy with other writes; nothing was saved. Retry in a moment."


def is_database_busy(error: BaseException) -> bool:
    return isinstance(error, OperationalError) and "is locked" in str(error)


def busy_response(request: HttpRequest) -> HttpResponse:
    if is_mlflow_path(request.path):
        response = error_response("TEMPORARILY_UNAVAILABLE", MESSAGE, 503)
    elif request.path.startswith("/api/"):
        response = JsonResponse(error_body("database_busy", MESSAGE), status=503)
    else:
        response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseBusyMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return busy_response(request) if is_database_busy(exception) else None
