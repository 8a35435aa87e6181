"""The one form helper of the server-rendered pages: run a write, or show the form again.

Pages validate nothing themselves: the service does, and raises an
``ApplicationError`` naming the field. :func:`submit` runs the write and, on an
input error (400), puts the message next to that field of the posted form, so
the page shows it again with what was typed. A 403 or a 404 propagates to the
view, which answers with that status.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from django.http import QueryDict

from kernel.errors import ApplicationError

T = TypeVar("T")


@dataclass
class Form:
    """A form as the template shows it: the values to fill in and an error per field."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def posted(cls, data: QueryDict, fields: Sequence[str]) -> Form:
        return cls(values={name: data.get(name, "") for name in fields})

    def place(self, error: ApplicationError, fields: Sequence[str]) -> None:
        """Put ``error`` next to the field it names (else next to the first one)."""
        name = error.field if error.field is not None and error.field in fields else fields[0]
        self.errors[name] = error.message

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    @property
    def message(self) -> str:
        return " ".join(self.errors.values())


F = TypeVar("F", bound=Form)


# A posted form comes back as its own class (an empty one on success): a page's subclass
# keeps its extra fields (alerts.pages.Form's trigger parameters).
@overload
def submit(action: Callable[[], T], posted: F, *, fields: Sequence[str]) -> tuple[T | None, F]: ...
@overload
def submit(
    action: Callable[[], T], posted: QueryDict, *, fields: Sequence[str]
) -> tuple[T | None, Form]: ...
def submit(
    action: Callable[[], T], posted: QueryDict | Form, *, fields: Sequence[str]
) -> tuple[T | None, Form]:
    """Run a write: its result and an empty form, or None and the posted form with the error.

    ``posted`` is the request's data, or a form already filled from it (a page
    whose form holds more than strings, such as an alert rule's trigger).
    """
    try:
        return action(), type(posted)() if isinstance(posted, Form) else Form()
    except ApplicationError as error:
        if error.status != 400:
            raise
        form = posted if isinstance(posted, Form) else Form.posted(posted, fields)
        form.place(error, fields)
        return None, form


def status(*forms: Form) -> int:
    """The page's status: 400 when a form shows an error, else 200."""
    return 400 if any(form.failed for form in forms) else 200
