"""One JSON error shape for the whole API: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from kernel.errors import ApplicationError

_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "invalid_token",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed_json",
    exceptions.Throttled: "throttled",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def _first_field_error(detail: Any, path: str = "") -> tuple[str | None, str]:
    """Walk DRF's nested error detail to the first message and its dotted field path."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                return _first_field_error(value, path)
            sub = f"{path}.{key}" if path else str(key)
            return _first_field_error(value, sub)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list) and value:
                return _first_field_error(value, f"{path}[{index}]")
            if not isinstance(value, dict | list):
                return path or None, str(value)
    return path or None, str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        body = error_body(exc.code, exc.message, exc.field)
        if exc.details is not None:
            body["error"]["details"] = exc.details
        return Response(body, status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_field_error(exc.detail)
        body = error_body("invalid", message, field)
        body["error"]["details"] = exc.detail
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, exceptions.APIException):
        code = _CODES.get(type(exc), exc.default_code)
        response = Response(error_body(code, str(exc.detail)), status=exc.status_code)
        # NotAuthenticated and Throttled carry these (set by DRF's views, not declared).
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            response["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if wait:
            response["Retry-After"] = str(int(wait))
        return response
    return None


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 handler: a path no API view matches (``runs/abc``) still answers JSON."""
    if request.path.startswith("/api/v1/"):
        body = error_body("not_found", "No such endpoint: check the path and its ids.")
        return JsonResponse(body, status=404)
    return defaults.page_not_found(request, exception)
