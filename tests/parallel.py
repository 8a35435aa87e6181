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
- PostgreSQL: pytest-django suffixes the test database with the worker id
  (``test_<name>_gw0``; tests/conftest.py knows the in-memory SQLite one).

It also schedules ``--dist loadgroup`` itself (``ModuleGroupScheduling``): tests marked
``xdist_group`` (tests/conftest.py marks the modules that share a module- or
package-scoped fixture, and the soak tests) go to one worker together, the others one
by one. pytest-xdist 3.8 does this by appending ``@group`` to node ids, which pytest
9.2's structured node ids no longer allow: its groups are silently ignored
(pytest-xdist issue #1386). Here the workers write down each grouped test's group
and the controller's scheduler reads it, through xdist's public hooks.

Without xdist (``-n 0``) nothing changes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

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


# --- Scheduling --dist loadgroup -------------------------------------------------------------

GROUPS_KEY = "labbook_xdist_groups"  # workerinput: the folder the workers write groups to


def pytest_configure(config: pytest.Config) -> None:
    """On the controller: a folder for the workers' groups, removed at the end."""
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.stash[_groups_folder] = Path(tempfile.mkdtemp(prefix="labbook-xdist-groups-"))


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_groups_folder, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


_groups_folder = pytest.StashKey[Path]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, on the controller: tell each worker where to write its groups."""
    node.workerinput[GROUPS_KEY] = str(node.config.stash[_groups_folder])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker, after every other hook: ``{node id: group}`` of the grouped tests."""
    folder = getattr(config, "workerinput", {}).get(GROUPS_KEY)
    if folder is None:
        return
    groups = {item.nodeid: group for item in items if (group := group_of(item)) is not None}
    path = Path(folder) / f"{config.workerinput['workerid']}.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(groups))
    partial.replace(path)  # whole, or not there


def group_of(item: pytest.Item) -> str | None:
    """The test's xdist groups joined, as pytest-xdist joins them; None without any."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    return "_".join(sorted(names)) or None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    folder = config.stash[_groups_folder]

    class ModuleGroupScheduling(LoadScopeScheduling):
        """LoadScopeScheduling whose scope is a test's group, or the test alone."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first called once every worker has collected
                self.groups = {}
                for path in sorted(folder.glob("*.json")):
                    self.groups.update(json.loads(path.read_text()))
            group = self.groups.get(nodeid)
            return f"group:{group}" if group is not None else nodeid

    return ModuleGroupScheduling(config, log)
