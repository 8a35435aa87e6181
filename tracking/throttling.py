"""Per-token rate limits: ``INGEST_THROTTLE_RATE`` and ``API_THROTTLE_RATE``.

Every token has two budgets: one for what training jobs write (the writes
among the endpoints of the ``ingest`` scope, ``tracking.scopes.INGEST``: runs,
points, params, tags, heartbeats, artifacts) and one for everything else,
reads included, so a busy logger never starves its owner's scripts, nor the
other way round.

A rate such as ``600/min`` lets a token send a burst of 600 requests, then one
every 0.1 s. This is the generic cell rate algorithm: one number per token and
budget, the time until which the budget is spent, so a check is one cache read
and one write whatever the rate (DRF's stock ``SimpleRateThrottle`` stores
every timestamp of the window: thousands at ingest rates). A refused request
gets 429 with ``Retry-After``, the seconds until one more fits.

The numbers live in the default cache: process memory on the embedded default
(``manage.py up`` runs exactly one web process), Redis when REDIS_URL is set,
so that several web processes share the budgets. A check reads then writes; a
lock makes it exact within a process, but two processes counting the same
token at the same instant may both read the same value, so a burst racing
across processes can let a few extra requests through. Browser sessions are
not limited here; only tokens are.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

from kernel.errors import ApplicationError
from tracking import scopes
from tracking.models import ApiToken

if TYPE_CHECKING:  # DRF's settings import this module while rest_framework.views loads
    from rest_framework.request import Request
    from rest_framework.views import APIView

CACHE = "default"  # Redis with REDIS_URL, else this process's memory (settings.py)
API, INGEST = "api", "ingest"
RATE_SETTINGS: dict[str, Literal["API_THROTTLE_RATE", "INGEST_THROTTLE_RATE"]] = {
    API: "API_THROTTLE_RATE",
    INGEST: "INGEST_THROTTLE_RATE",
}
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# 600 intervals of 0.1 s add up to a hair over 60 s in floating point.
SLACK = 1e-6

# take() reads, then writes: under ASGI every request runs in a thread of its own.
_lock = threading.Lock()


class RateLimited(ApplicationError):
    status = 429

    def __init__(self, wait: float) -> None:
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(
            "throttled",
            f"Too many requests with this token: retry in {self.retry_after} s.",
        )


@functools.cache
def parse_rate(rate: str) -> tuple[int, int]:
    """``"600/min"`` → ``(600, 60)``: requests, seconds (the unit's first letter counts)."""
    count, _, unit = rate.partition("/")
    return int(count), PERIODS[unit.strip()[0]]


def take(key: str, *, requests: int, seconds: float) -> float | None:
    """Count one request against ``key``'s budget: None when it fits, else seconds to wait."""
    interval = seconds / requests
    cache = caches[CACHE]
    with _lock:
        now = time.time()
        stored: float = cache.get(key, now)
        spent_until = max(stored, now) + interval
        if spent_until - now > seconds + SLACK:
            return spent_until - now - seconds
        cache.set(key, spent_until, timeout=math.ceil(spent_until - now))
    return None


def budget_of(*, endpoint: str | None, method: str | None) -> str:
    if method in scopes.SAFE_METHODS:
        return API
    return INGEST if scopes.is_ingest(endpoint=endpoint, method=method) else API


def cache_key(budget: str, token: ApiToken) -> str:
    # The random prefix keeps a reused id (SQLite hands out the highest id again
    # after a delete) from inheriting another token's count.
    return f"throttle:{budget}:{token.pk}:{token.prefix}"


def rate_of(budget: str) -> tuple[int, int] | None:
    rate = settings.LABBOOK[RATE_SETTINGS[budget]]
    return parse_rate(rate) if rate else None


def require_capacity(token: ApiToken, *, endpoint: str | None, method: str | None) -> None:
    """Count a request of ``token`` (MLflow API); ``RateLimited`` (429) when its budget is spent."""
    budget = budget_of(endpoint=endpoint, method=method)
    rate = rate_of(budget)
    if rate is None:
        return
    wait = take(cache_key(budget, token), requests=rate[0], seconds=rate[1])
    if wait is not None:
        raise RateLimited(wait)


class TokenRateThrottle(SimpleRateThrottle):
    """DRF's throttle hook over ``take``: a refusal becomes 429 with ``Retry-After``."""

    scope: str = API
    # Set by SimpleRateThrottle.__init__ from parse_rate(), left out of DRF's stub: the
    # budget's requests and seconds, None without a rate.
    num_requests: int | None
    duration: int | None

    def get_rate(self) -> str | None:
        return settings.LABBOOK[RATE_SETTINGS[self.scope]] or None

    def parse_rate(self, rate: str | None) -> tuple[int | None, int | None]:
        return parse_rate(rate) if rate else (None, None)

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        token = request.auth
        if not isinstance(token, ApiToken):
            return None  # a browser session
        endpoint = scopes.endpoint_of(request)
        if budget_of(endpoint=endpoint, method=request.method) != self.scope:
            return None
        return cache_key(self.scope, token)

    def allow_request(self, request: Request, view: APIView) -> bool:
        key = self.get_cache_key(request, view) if self.rate else None
        if key is None or self.num_requests is None or self.duration is None:
            return True
        self._wait = take(key, requests=self.num_requests, seconds=self.duration)
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


class IngestRateThrottle(TokenRateThrottle):
    scope = INGEST
