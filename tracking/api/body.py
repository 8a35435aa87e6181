"""A request body read against the serializer that documents it.

The input serializer of an endpoint is its one declaration of shape: which
fields exist and which are required. ``request_body`` enforces exactly that
(an unknown field or a missing required one is a 400 naming it), so the
OpenAPI schema and what the server accepts cannot drift apart. The values are
then checked by the services, which the MLflow layer and the HTML forms also
call, against limits read from the model fields (``kernel.limits``): the
serializers state the same limits, and ``tests/api/test_schema_limits.py``
proves each stated limit is the enforced one.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from kernel.errors import ApplicationError, invalid


def writable_fields(shape: type[serializers.BaseSerializer[Any]]) -> dict[str, Any]:
    """The fields a client may send to ``shape``, by name."""
    fields = shape().fields  # type: ignore[attr-defined]  # every input shape here is a Serializer
    return {name: field for name, field in fields.items() if not field.read_only}


def request_body(
    request: Request, shape: type[serializers.BaseSerializer[Any]], *, partial: bool = False
) -> dict[str, Any]:
    """``request.data`` as a dict holding only ``shape``'s fields and, unless ``partial``
    (a PATCH), each of its required ones."""
    data = request.data
    if not isinstance(data, dict):
        raise ApplicationError("invalid", "The request body must be a JSON object.")
    fields = writable_fields(shape)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise invalid(unknown[0], "Unknown field.")
    if not partial:
        for name, field in fields.items():
            if field.required and name not in data:
                hint = f" ({field.help_text})" if field.help_text else ""
                raise invalid(name, f"This field is required{hint}.")
    return data
