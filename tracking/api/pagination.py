"""Keyset pages whose cursor a client may forge without causing a 500."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import DataError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination


class ForgivingCursorPagination(CursorPagination):
    """A cursor is base64 the client can rewrite; DRF checks its shape, not its position.

    A position that is no value of the ordering field ("garbage" for a date)
    would fail in the query; it is an invalid cursor (404), as a malformed one is.
    """

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValidationError, ValueError, TypeError, OverflowError, DataError) as error:
            if not request.query_params.get(self.cursor_query_param):
                raise
            raise NotFound(self.invalid_cursor_message) from error
