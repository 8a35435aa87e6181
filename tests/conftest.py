"""Shared personas: a team 'acme' with an owner, an editor and a viewer, and an outsider.

The outsider owns a team of their own ('rival'), so isolation tests prove a
member of *some* team still sees nothing of another.
"""

from __future__ import annotations

import inspect
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.support import services_required, skip_or_fail
from tracking import services
from tracking.models import Project, Role, Team

# The SDK samples system/* metrics every 15 s (tracking/sdk/system_metrics.py): a run open that
# long on a busy machine would gain keys that tests comparing a run's exact keys (and the soaks'
# exact point counts) never sent. Off for every test and the processes they start;
# tests/sdk/test_system_metrics.py turns it on.
os.environ.setdefault("LABBOOK_SYSTEM_METRICS", "0")
# Likewise the console tee (tracking/sdk/console.py): pytest captures stdout, and a run's stored
# lines would depend on what the test printed; tests/sdk/test_console.py turns it on.
os.environ.setdefault("LABBOOK_CONSOLE", "0")


@dataclass
class Persona:
    name: str
    user: object
    token: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")
        return client


@dataclass
class World:
    team: Team
    rival: Team
    project: Project
    owner: Persona
    editor: Persona
    viewer: Persona
    outsider: Persona

    def persona(self, name: str) -> Persona:
        return getattr(self, name)


def make_persona(username: str) -> Persona:
    user, _ = services.user_get_or_create(username=username)
    _, raw = services.token_create(user=user, name=f"{username}'s laptop")
    return Persona(username, user, raw)


@pytest.fixture
def world(db) -> World:
    return make_world()


def make_world() -> World:
    """The personas and their teams (``world``); a module may build it once in a module-scoped
    transaction instead (``tests/tracking/mlflow/test_search.py``)."""
    owner = make_persona("alice")
    editor = make_persona("bob")
    viewer = make_persona("carol")
    outsider = make_persona("mallory")
    team = services.team_create(slug="acme", owner=owner.user)
    services.membership_set(team=team, user=editor.user, role=Role.EDITOR)
    services.membership_set(team=team, user=viewer.user, role=Role.VIEWER)
    rival = services.team_create(slug="rival", owner=outsider.user)
    project = services.project_create(user=owner.user, team_slug="acme", slug="mnist")
    return World(team, rival, project, owner, editor, viewer, outsider)


@pytest.fixture(autouse=True)
def mlflow_forgets_artifact_locations() -> None:
    """The mlflow client keeps each run's artifact location by run id for the whole process,
    whatever the tracking URI. Labbook's run ids are small integers, so run 1 of one test's
    server would send a later test's artifacts to a server long gone (docs/mlflow.md)."""
    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if utils is not None:
        utils._artifact_repos_cache.clear()


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


# --- Several xdist workers, soak tests, waits (README: Tests) ---------------------------


@pytest.fixture(scope="session")
def django_db_modify_db_settings_xdist_suffix(request: pytest.FixtureRequest) -> None:
    """pytest-django's per-worker test database (``test_<name>_gw0``), knowing SQLite's.

    pytest-django leaves a SQLite database alone only when its ENGINE is Django's own;
    Labbook's (``reports_app.sqlite``) would get a test file named after the path. Its
    test database is in memory, one per process: nothing to rename.
    """
    from django.db import connections

    worker = getattr(request.config, "workerinput", {}).get("workerid")
    if not worker:
        return
    for alias, database in settings.DATABASES.items():
        test = database.setdefault("TEST", {})
        name = test.get("NAME")
        if connections[alias].vendor == "sqlite" and name in (None, "", ":memory:"):
            continue
        test["NAME"] = f"{name or 'test_' + database['NAME']}_{worker}"


# Seconds a websocket test waits for what it expects (accepted, a message). Channels'
# communicators default to 1 s, which a test on a busy machine (xdist workers, CI) can
# miss; only a broken consumer comes near this. Unchanged: waits for *nothing* to arrive
# (``receive_nothing``), and ``disconnect()``'s second for the consumer to stop, after
# which it is cancelled without an error (a longer wait only lets errors of the
# consumer's own shutdown through, such as a Redis read cancelled on a busy machine).
SOCKET_CEILING = 60.0


def _generous_communicator_waits() -> None:
    from asgiref.testing import ApplicationCommunicator
    from channels.testing import WebsocketCommunicator

    waits = {
        ApplicationCommunicator: ("receive_output",),
        WebsocketCommunicator: ("connect", "receive_from", "receive_json_from"),
    }
    for cls, names in waits.items():
        for name in names:
            function = cls.__dict__[name]
            parameters = inspect.signature(function).parameters.values()
            function.__defaults__ = tuple(
                SOCKET_CEILING if parameter.name == "timeout" else parameter.default
                for parameter in parameters
                if parameter.default is not inspect.Parameter.empty
            )


_generous_communicator_waits()


def _asked_for_soak(config: pytest.Config, item: pytest.Item) -> bool:
    """``-m`` names soak (``-m soak``), or the test's file is named on the command line."""
    return "soak" in (config.option.markexpr or "") or _named(config, item)


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a module- or package-scoped fixture of the suite's own.

    Those are servers, browsers and data a module's tests share, in the order they are
    written: under ``--dist loadgroup`` such a module runs on one worker, in order,
    so its server starts once and its tests find what the ones before them made.
    """
    definitions = getattr(item, "_fixtureinfo", None)
    if definitions is None:
        return False
    for fixturedefs in definitions.name2fixturedefs.values():
        fixturedef = fixturedefs[-1]
        if fixturedef.scope in ("module", "package") and fixturedef.func.__module__.startswith(
            "tests."
        ):
            return True
    return False


# Fixtures through which a test reaches the test process's own database (django_db_blocker
# is not one: pytest-django's autouse fixtures request it for every test).
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_setup", "live_server"}


def _services_free(item: pytest.Item) -> bool:
    """Whether the test uses a fixture marked ``tests.support.services_free`` (a server of its
    own on the embedded default, ...) and nothing of this process's database."""
    if item.get_closest_marker("django_db") or DATABASE_FIXTURES & set(item.fixturenames):
        return False
    definitions = getattr(item, "_fixtureinfo", None)
    if definitions is None:
        return False
    return any(
        getattr(fixturedefs[-1].func, "services_free", False)
        for fixturedefs in definitions.name2fixturedefs.values()
    )


def _named(config: pytest.Config, item: pytest.Item) -> bool:
    """Whether the test's file is named on the command line."""
    named = {Path(config.invocation_params.dir, arg.split("::")[0]) for arg in config.args}
    return item.path in named


def _starts_processes(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(name) for name in ("subprocess", "browser"))


_SERVICES_FREE = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """How many tests the PostgreSQL + Redis pass left out (counted where tests are collected:
    in one process; under xdist, .ci/run says it instead). With -m, most are out anyway."""
    left_out = config.stash.get(_SERVICES_FREE, 0)
    if left_out and not config.option.markexpr:
        terminalreporter.write_line(
            f"{left_out} tests left out: they use neither PostgreSQL nor Redis (a server of"
            " their own on the embedded default), and the embedded pass runs them"
        )


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak tests left out unless asked for; xdist groups; the longest tests first.

    With LABBOOK_REQUIRE_SERVICES=1 (CI's PostgreSQL + Redis pass) the tests that use
    neither PostgreSQL nor Redis are left out too (``_services_free``): their servers run on
    the embedded default in either pass, so the embedded pass has already run them as they
    would run here. Naming a test's file runs it all the same.

    Soak tests (marker ``soak``) load the machine for minutes or time it
    (tests/security/test_worst_input_load.py holds /healthz to a p99), so ``pytest``
    leaves them out and CI runs them in a step of its own. Those that need the machine
    to themselves (marker ``alone``) never overlap each other, even asked for on several
    xdist workers; the fuzz runs only use CPU and share the workers by module.

    A wrapper: the groups must be marked before xdist reads them (its own hook), and
    the order set after pytest-django's (which sorts by kind of database use).
    """
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    same_as_embedded = services_required()  # the PostgreSQL + Redis pass of CI
    for item in items:
        if same_as_embedded and _services_free(item) and not _named(config, item):
            left_out.append(item)
            config.stash[_SERVICES_FREE] = config.stash.get(_SERVICES_FREE, 0) + 1
        elif item.get_closest_marker("soak") is None:
            if _shares_a_module_fixture(item) and not item.get_closest_marker("xdist_group"):
                item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
            kept.append(item)
        elif _asked_for_soak(config, item):
            alone = item.get_closest_marker("alone") is not None
            item.add_marker(pytest.mark.xdist_group("alone" if alone else item.path.stem))
            kept.append(item)
        else:
            left_out.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
    result = yield
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Longest first: tests that start processes or a browser go out to the workers
        # before the quick in-process ones, which then fill in the tail evenly.
        items.sort(key=lambda item: not _starts_processes(item))
    return result


# --- A database of its own, for migration tests (tests/migrations.py) ------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A server's environment on a database of its own: a SQLite file under ``tmp_path``, then
    (second param) a PostgreSQL database created for the test and dropped after it."""
    from tests.sdk.server import server_env

    env = server_env(tmp_path / "home")
    (tmp_path / "home").mkdir()
    if request.param == "sqlite":
        yield env
        return
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        skip_or_fail("needs PostgreSQL: set DATABASE_URL=postgres://...")
    import psycopg

    name = f"labbook_migration_{uuid.uuid4().hex[:12]}"
    admin = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**env, "DATABASE_URL": urlsplit(url)._replace(path=f"/{name}").geturl()}
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
