"""Request guards that belong to no single view."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse


class RejectNulCharactersMiddleware:
    """Answer 400 to a NUL character in the path or query string.

    PostgreSQL cannot hold NUL in text, so such a value would otherwise fail
    deep in a query as a 500; no legitimate client sends one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            return self._reject("path")
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return self._reject(name.replace("\x00", ""))
        return self.get_response(request)

    @staticmethod
    def _reject(field: str) -> JsonResponse:
        body = {
            "error": {
                "code": "invalid",
                "message": "NUL characters are not allowed.",
                "field": field,
            }
        }
        return JsonResponse(body, status=400)
