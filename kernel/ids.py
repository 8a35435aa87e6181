"""Database ids as they come from URLs and bodies: bounded before they reach a query.

An id beyond the database's bigint would overflow the query (a 500 on
PostgreSQL) instead of finding nothing, so every lookup by a client's id goes
through :func:`is_id` or :func:`by_id`, and URL paths take ids with the
``<id:...>`` converter, which answers 404 to anything no row can have.
"""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet

MAX_DB_INT = 2**63 - 1  # the largest value of a bigint column
M = TypeVar("M", bound=Model)


def is_id(value: int) -> bool:
    """Could ``value`` be a row's id?"""
    return 0 < value <= MAX_DB_INT


def by_id(queryset: QuerySet[M], pk: int) -> M | None:
    """The row of ``queryset`` with id ``pk``, or None (also for an id no row can have)."""
    return queryset.filter(pk=pk).first() if is_id(pk) else None


class IdConverter:
    """``<id:run_id>`` in a URL pattern: 1 to 2**63 - 1; anything else matches no route."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not is_id(number):
            raise ValueError(value)  # Django tries the next pattern, then answers 404
        return number

    def to_url(self, value: int) -> str:
        return str(value)
