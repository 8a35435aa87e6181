"""The Redis cache while Redis is away: an empty cache and a log line, never an error."""

from __future__ import annotations

import logging

from labbook.redis_cache import RedisCache
from tests.support import free_port
from tracking import throttling


def test_an_unreachable_redis_answers_as_an_empty_cache(caplog):
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", {})  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="labbook.redis_cache"):
        assert cache.get("key", "default") == "default"
        cache.set("key", 1)
        assert cache.add("key", 1) is False
        assert cache.incr("key") == 0
        assert cache.get_many(["key"]) == {}
        assert cache.delete("key") is False
    assert "cache unavailable" in caplog.text


def test_rate_limits_let_requests_through_while_redis_is_away(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "labbook.redis_cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    assert throttling.take("throttle:test", requests=1, seconds=60) is None
    assert throttling.take("throttle:test", requests=1, seconds=60) is None  # not counted
