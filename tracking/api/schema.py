"""The OpenAPI schema's error answers: every operation documents the JSON error shape.

drf-spectacular documents only the success answer of a view; the API also
answers 400 (bad input, named by ``field``), 401 (no or a bad token), 403 (a
role that may not write) and 404 (absent or invisible) in one JSON shape
(``tracking.api.errors``). Declaring them here, once, keeps clients and the
schema fuzzer (``tests/reliability``) honest about every status a client sees.
A view adds rarer ones (409, 413) next to its success answer with ``ERRORS``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import Direction, OpenApiResponse
from rest_framework import serializers

ERROR_DESCRIPTIONS = {
    400: "Bad input: `error.field` names it.",
    401: "No token, or one that is not valid.",
    403: "Your role in the team may not do this.",
    404: "Not found, or not visible to you.",
}
READ_ERRORS = (400, 401, 404)
WRITE_ERRORS = (400, 401, 403, 404)


class ErrorDetailSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="For machines: invalid, not_found, conflict, ...")
    message = serializers.CharField(help_text="For people.")
    field = serializers.CharField(allow_null=True, help_text="The offending input, if one.")
    details = serializers.JSONField(required=False, help_text="More for machines, if any.")


class ErrorSerializer(serializers.Serializer[Any]):
    error = ErrorDetailSerializer()


def error_response(description: str) -> OpenApiResponse:
    """``extend_schema(responses={409: error_response("...")})`` for a rarer error status."""
    return OpenApiResponse(ErrorSerializer, description=description)


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the error statuses every API operation can answer."""

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        bodies = super()._get_response_bodies(direction)
        codes = READ_ERRORS if self.method in ("GET", "HEAD") else WRITE_ERRORS
        for code in codes:
            if str(code) not in bodies:
                response = error_response(ERROR_DESCRIPTIONS[code])
                # drf-spectacular's own (untyped) method, inherited: untyped_calls_exclude
                # matches drf_spectacular's names, not ours.
                bodies[str(code)] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    response, str(code), direction=direction
                )
        return bodies
