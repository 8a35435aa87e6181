"""Django's Redis cache backend, with one Redis client per server for the whole process.

Django keeps a cache object per request context (under ASGI: per request), and
its Redis backend gives each of them a connection pool of its own, and each
call a fresh ``redis.Redis``. So every request that touched the cache opened a
new TCP connection to Redis, and every call paid ~150 µs to build a client
(it fills a table of response callbacks): far more than the round trip
itself. The per-token rate limits (``tracking.throttling``) touch the cache on
every API request, so here a ``redis.Redis`` — thread-safe, and meant to be
shared — is made once per server and kept.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends import redis as django_redis

_clients: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class SharedRedisCacheClient(django_redis.RedisCacheClient):
    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
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


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedRedisCacheClient
