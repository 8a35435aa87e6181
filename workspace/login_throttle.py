"""Login throttling: too many wrong passwords for one username, or from one address, lock it out.

Every password check goes through :class:`ThrottledModelBackend` (the login
page's and the admin's). After ``LOGIN_FAILURE_LIMIT`` failures for a username
(or ``LOGIN_ADDRESS_FAILURE_LIMIT`` from an address) within
``LOGIN_LOCKOUT_SECONDS``, it refuses to check any password of that username
(or from that address) for ``LOGIN_LOCKOUT_SECONDS``. A refused attempt never
reaches the password check, so a lucky guess during a lockout learns nothing.

The counters live in the default cache: Redis when REDIS_URL is set, shared by
every web process; otherwise the memory of the one web process the embedded
default runs.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


@dataclass(frozen=True)
class _Counter:
    key: str
    limit: int

    @property
    def lock_key(self) -> str:
        return f"{self.key}:locked-until"


def _key(kind: str, value: str) -> str:
    # Hashed: a username may hold characters no cache key may (spaces, control characters).
    return f"login-failures:{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


def _username_counter(username: str) -> _Counter:
    return _Counter(_key("username", username.strip().casefold()), settings.LOGIN_FAILURE_LIMIT)


def _counters(*, username: str, address: str) -> list[_Counter]:
    counters = [_username_counter(username)]
    if address:
        counters.append(_Counter(_key("address", address), settings.LOGIN_ADDRESS_FAILURE_LIMIT))
    return counters


def address_of(request: HttpRequest | None) -> str:
    """The client's address (behind a proxy: what the ASGI server took from its headers)."""
    return "" if request is None else request.META.get("REMOTE_ADDR", "")


def wait_seconds(*, username: str, address: str) -> int:
    """Seconds until this username, from this address, may try a password again (0: now)."""
    keys = [counter.lock_key for counter in _counters(username=username, address=address)]
    until = max(cache.get_many(keys).values(), default=0.0)
    return max(0, math.ceil(until - time.time()))


def record_failure(*, username: str, address: str) -> None:
    """Count a wrong password; the failure that reaches a limit starts the lockout."""
    window = settings.LOGIN_LOCKOUT_SECONDS
    for counter in _counters(username=username, address=address):
        if _count(counter.key, window=window) >= counter.limit:
            cache.set(counter.lock_key, time.time() + window, timeout=window)
            cache.delete(counter.key)


def _count(key: str, *, window: int) -> int:
    # The window starts at the first failure: add() sets its expiry, incr() keeps it.
    cache.add(key, 0, timeout=window)
    try:
        return cache.incr(key)
    except ValueError:  # it expired between the two calls
        cache.set(key, 1, timeout=window)
        return 1


def record_success(*, username: str) -> None:
    """A right password forgets the username's failures (its address's stay counted)."""
    cache.delete(_username_counter(username).key)


def reset(*, username: str, address: str = "") -> None:
    """Lift a lockout and forget the failures of a username and an address."""
    counters = _counters(username=username, address=address)
    cache.delete_many([key for counter in counters for key in (counter.key, counter.lock_key)])


class ThrottledModelBackend(ModelBackend):
    """Django's username and password check, refused while locked out, counting failures."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is None or password is None:  # not a password login: Django's rules
            return super().authenticate(request, username, password, **kwargs)
        address = address_of(request)
        if wait_seconds(username=username, address=address):
            # authenticate() stops at PermissionDenied: no other backend gets to try.
            raise PermissionDenied("Too many failed logins: wait and try again.")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            record_failure(username=username, address=address)
        else:
            record_success(username=username)
        return user
