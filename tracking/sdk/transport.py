"""HTTP to the Labbook server, standard library only, with retries done right.

One ``Transport`` per thread (``http.client`` connections are not
thread-safe); the connection is kept alive between requests and re-opened
after any failure.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "labbook-sdk/1"
NEW_TOKEN_HINT = "Then set LABBOOK_TOKEN (or token=...) to the new token."  # noqa: S105


@dataclass
class TransportError(Exception):
    message: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None
    code: str | None = None  # the server's error code, e.g. "token_expired"

    def __str__(self) -> str:
        return self.message


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from our server; fall back to backoff


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 10.0) -> float:
    """Exponential backoff with full jitter: 0..min(cap, base * 2**attempt)."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not crypto


class Transport:
    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Labbook URL must be http(s)://host[:port], got {url!r}")
        self.url = url.rstrip("/")
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            kind = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            self._conn = kind(self._netloc, timeout=self._timeout)
        return self._conn

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One attempt; the decoded JSON answer, or ``TransportError``."""
        payload = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = {"Authorization": f"Bearer {self._token}", "User-Agent": USER_AGENT}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn = self._connection()
            conn.request(method, self._prefix + path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise TransportError(f"{self.url} unreachable: {error}", retryable=True) from None
        return self._answer(response, data)

    def _answer(self, response: http.client.HTTPResponse, data: bytes) -> Any:
        if response.will_close:
            self.close()
        status = response.status
        if 200 <= status < 300:
            return json.loads(data) if data else None
        code, message = _error(data)
        if code == "token_expired":
            message = f"{message} {NEW_TOKEN_HINT}"
        retryable = status in (408, 425, 429) or status >= 500
        raise TransportError(
            f"{status} {message or response.reason}",
            retryable=retryable,
            status=status,
            retry_after=_retry_after(response.getheader("Retry-After")),
            code=code,
        )

    def request_retrying(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        budget: float,
        interrupt: threading.Event | None = None,
    ) -> Any:
        """Retry retryable failures with backoff (honouring Retry-After) for ``budget`` seconds.

        Setting ``interrupt`` ends the waiting at once (the last error is raised).
        """
        deadline = time.monotonic() + budget
        interrupt = interrupt or threading.Event()
        attempt = 0
        while True:
            try:
                return self.request(method, path, body)
            except TransportError as error:
                if not error.retryable:
                    raise
                delay = (
                    error.retry_after if error.retry_after is not None else backoff_delay(attempt)
                )
                if time.monotonic() + delay > deadline or interrupt.wait(delay):
                    raise
                attempt += 1


def _error(data: bytes) -> tuple[str | None, str]:
    """The code and message of the API's ``{"error": {...}}`` answer (the raw text otherwise)."""
    try:
        error = json.loads(data)["error"]
        code = error.get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, data[:200].decode(errors="replace")
    field = f" ({error.get('field')})" if error.get("field") else ""
    return code, f"{error.get('message', '')}{field}"
