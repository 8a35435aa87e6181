"""Django's Redis cache backend, with one Redis client per server for the whole process.

Django keeps a cache object per request context (under ASGI: per request), and
its Redis backend gives each of them a connection pool of its own, and each
call a fresh ``redis.Redis``. So every request that touched the cache opened a
new TCP connection to Redis, and every call paid ~150 µs to build a client
(it fills a table of response callbacks): far more than the round trip
itself. The per-token rate limits (``tracking.throttling``) touch the cache on
every API request, so here a ``redis.Redis`` — thread-safe, and meant to be
shared — is made once per server and kept.

What is cached (rate-limit and login-failure counters) must never take the
API down with it: while Redis cannot be reached, the cache answers as an
empty one (limits are not enforced, nothing is locked out) and logs why; the
broker and the outbox sweep deal with Redis being away on their side.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from django.core.cache.backends import redis as django_redis
from redis import ConnectionPool, Redis
from redis.exceptions import RedisError

_clients: dict[tuple[str, str], Redis] = {}
_lock = threading.Lock()


class SharedRedisCacheClient(django_redis.RedisCacheClient):
    # What Django's RedisCacheClient.__init__ sets, left out of its stub.
    _servers: list[str]
    _pool_class: type[ConnectionPool]
    _pool_options: dict[str, Any]
    _lib: ModuleType  # the redis package
    _get_connection_pool_index: Callable[[bool], int]

    def get_client(self, key: Any = None, *, write: bool = False) -> Redis:
        server = self._servers[self._get_connection_pool_index(write)]
        identity = (server, repr(sorted(self._pool_options.items())))
        client = _clients.get(identity)
        if client is None:
            with _lock:
                client = _clients.get(identity)
                if client is None:
                    pool = self._pool_class.from_url(server, **self._pool_options)
                    client = _clients[identity] = self._lib.Redis(connection_pool=pool)
        return client


logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _unless_away() -> Iterator[None]:
    """Swallow Redis being unreachable, with a log line: the caller answers as an empty cache."""
    try:
        yield
    except (RedisError, OSError) as error:
        logger.warning("cache unavailable (%s): answering as an empty cache", error)


class RedisCache(django_redis.RedisCache):
    """One shared client per process; an empty cache, not an error, while Redis is away."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedRedisCacheClient

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        with _unless_away():
            return super().get(key, default, version)
        return default

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        with _unless_away():
            return super().get_many(keys, version)
        return {}

    def set(self, *args: Any, **kwargs: Any) -> None:
        with _unless_away():
            super().set(*args, **kwargs)

    def add(self, *args: Any, **kwargs: Any) -> bool:
        with _unless_away():
            return super().add(*args, **kwargs)
        return False

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        with _unless_away():
            return super().incr(key, delta, version)
        return 0

    def delete(self, key: Any, version: int | None = None) -> bool:
        with _unless_away():
            return super().delete(key, version)
        return False
