"""Helpers shared by tests: service gating, free ports, waiting for servers."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from django.conf import settings


def services_required() -> bool:
    """With LABBOOK_REQUIRE_SERVICES=1 (CI), a missing PostgreSQL or Redis fails, not skips."""
    return os.environ.get("LABBOOK_REQUIRE_SERVICES", "") == "1"


F = TypeVar("F", bound=Callable[..., Any])


def services_free(fixture_function: F) -> F:
    """Mark a fixture whose processes use neither PostgreSQL nor Redis, whatever the pass: a
    Labbook server of its own on the embedded default (``LabbookServer`` without a services
    ``env``), ``up`` on a clean environment, a wheel built and installed in a venv.

    A test that uses such a fixture and no database of the test process does the same in
    the PostgreSQL + Redis pass as in the embedded one, so that pass leaves it out
    (``tests/conftest.py``); put the decorator under ``@pytest.fixture``.
    """
    fixture_function.services_free = True  # type: ignore[attr-defined]
    return fixture_function


def skip_or_fail(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (LABBOOK_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)


def require_postgres() -> None:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        skip_or_fail("needs PostgreSQL: set DATABASE_URL=postgres://...")


def require_redis() -> str:
    url = settings.REDIS_URL
    if not url:
        skip_or_fail("needs Redis: set REDIS_URL=redis://...")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        skip_or_fail(f"Redis at {url} is not answering: {error}")
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
