"""Per-worker isolation under pytest-xdist, loaded with ``-p tests.parallel`` (pyproject addopts).

Every xdist worker (``PYTEST_XDIST_WORKER=gw0``, ``gw1``...) is a test run of its own
on one machine, so whatever a run keeps outside its tmp dirs is made the worker's own
here, at import time: before pytest-django loads the settings, which read the
environment once.

- ``LABBOOK_HOME`` (the SQLite file, the filesystem queue, static files, artifacts):
  ``<LABBOOK_HOME or var>/xdist/<worker>``. Celery workers and servers the tests start
  inherit it, or get homes of their own under tmp_path.
- ``REDIS_URL``: database ``n + i`` for worker ``gw<i>`` of ``redis://host/<n>``. Tests
  flush the cache (``cache.clear()`` is a FLUSHDB), join channel-layer groups and run
  Celery workers that consume the broker's queue: on one database a worker's tests
  would lose each other's keys and take each other's tasks.
- PostgreSQL: pytest-django already suffixes the test database with the worker id
  (``test_<name>_gw0``); nothing to do here.

Without xdist (``-n 0``, ``-p no:xdist``) nothing changes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDIS_DATABASES = 16  # redis-server's default `databases`


def worker_index(worker: str) -> int:
    match = re.fullmatch(r"gw(\d+)", worker)
    if match is None:
        raise RuntimeError(f"unexpected PYTEST_XDIST_WORKER={worker!r}")
    return int(match.group(1))


def worker_home(base: str, worker: str) -> str:
    return str(Path(base).expanduser().resolve() / "xdist" / worker)


def worker_redis_url(url: str, index: int) -> str:
    """The same server, database ``n + index``; ``n`` from the path or ``?db=`` (unix)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "unix" or "db" in query:
        database = int(query.get("db", 0)) + index
        query["db"] = str(database)
        moved = parts._replace(query=urlencode(query))
    else:
        database = int(parts.path.strip("/") or 0) + index
        moved = parts._replace(path=f"/{database}")
    if database >= REDIS_DATABASES:
        raise RuntimeError(
            f"xdist worker gw{index} would need Redis database {database} of {url!r}, but "
            f"Redis has {REDIS_DATABASES}: run fewer workers (-n) or use a lower database"
        )
    return urlunsplit(moved)


def isolate(environ: os._Environ[str] | dict[str, str]) -> None:
    worker = environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    environ["LABBOOK_HOME"] = worker_home(environ.get("LABBOOK_HOME") or "var", worker)
    if environ.get("REDIS_URL"):
        environ["REDIS_URL"] = worker_redis_url(environ["REDIS_URL"], worker_index(worker))


isolate(os.environ)
