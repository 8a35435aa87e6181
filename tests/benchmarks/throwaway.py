"""A throwaway LABBOOK_HOME, and optionally a throwaway PostgreSQL database, for benchmarks."""

from __future__ import annotations

import os
import tempfile
import uuid


def configure(database_url: str | None, *, prefix: str) -> str | None:
    """Point Django at a fresh home (and database); answers the database's name, if any."""
    os.environ["LABBOOK_HOME"] = tempfile.mkdtemp(prefix=f"labbook-{prefix}-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
    os.environ.pop("REDIS_URL", None)
    if not database_url:
        os.environ.pop("DATABASE_URL", None)
        return None
    import psycopg

    name = f"labbook_{prefix}_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = database_url.rsplit("/", 1)[0] + f"/{name}"
    return name


def drop(database_url: str | None, name: str | None) -> None:
    """Drop what ``configure`` created, closing Django's connections first."""
    if not name:
        return
    import psycopg
    from django.db import connection

    connection.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # the pool holds connections
