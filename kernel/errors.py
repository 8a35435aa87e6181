"""The one error type services and selectors raise; the API maps it to JSON."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A failure the caller can act on: ``code`` for machines, ``message`` for people.

    ``field`` names the offending input (``points[3].value``) when there is one.
    """

    status = 400

    def __init__(
        self, code: str, message: str, *, field: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.details = details  # more for machines, e.g. the current revision after a conflict


def invalid(field: str, message: str) -> ApplicationError:
    """Bad input in ``field`` (400)."""
    return ApplicationError("invalid", message, field=field)


class NotFound(ApplicationError):
    status = 404

    def __init__(self, what: str, *, field: str | None = None) -> None:
        super().__init__("not_found", f"{what} not found", field=field)


class PermissionDenied(ApplicationError):
    status = 403

    def __init__(self, message: str) -> None:
        super().__init__("permission_denied", message)


class Conflict(ApplicationError):
    status = 409
