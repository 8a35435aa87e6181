"""Bulk loading on PostgreSQL: binary COPY into a per-session staging table.

Rendering 10,000-element arrays or VALUES lists as SQL text costs more than
the insert itself; COPY in binary hands psycopg's C code the rows as they
are. The staging tables are temporary (one per connection, emptied on commit
and before each use), so concurrent requests never see each other's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection


def stage(table: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]) -> None:
    """Fill the temporary table ``table`` (created when missing) with ``rows``."""
    spec = ", ".join(f"{name} {kind}" for name, kind in columns)
    with connection.cursor() as cursor:
        # Not remembered per connection: a rolled-back transaction takes the table with it.
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({spec}) ON COMMIT DELETE ROWS")
        cursor.execute(f"TRUNCATE {table}")
        with cursor.cursor.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([kind for _, kind in columns])
            for row in rows:
                copy.write_row(row)
