"""The one way the Slack and webhook transports POST: guarded, pinned, bounded, mapped.

* Every hop (the URL, then each redirect target, at most ``MAX_REDIRECTS``)
  goes through ``netguard.resolve_target``: the name is resolved once and
  every address checked.
* The connection is pinned to a checked address: the request URL carries the
  IP, the ``Host`` header the original host, and for https the
  ``sni_hostname`` extension makes TLS send SNI for, and verify the
  certificate against, the original name. httpx never resolves the name
  itself, so a DNS answer that changes between check and connect (rebinding)
  is never used. Environment proxies are ignored (``trust_env=False``) for
  the same reason: a proxy would resolve the name again on its side.
* ``TIMEOUT_SECONDS`` bounds each network operation; reading the answer stops
  at ``MAX_BODY_BYTES`` or the deadline, so a slow or huge answer cannot pin
  a worker.
* ``delivery_for`` maps the answer: 2xx delivered; 429 and 5xx (and 408)
  retryable, with ``Retry-After`` honoured; other statuses not retryable.
  Errors name the host only: Slack and webhook URLs often carry secrets in
  their path, and error texts end up in the delivery log.
* ``require_keys`` / ``clean_url`` validate the ``config`` of URL-based
  destinations at save time (``ApplicationError`` naming ``config.url``).
"""

from __future__ import annotations

import importlib.metadata
import math
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from alerts import netguard
from alerts.transports.base import Delivery, TransportError
from kernel.errors import invalid

TIMEOUT_SECONDS = 10.0  # per network operation; tests monkeypatch it to make hangs quick
TOTAL_TIMEOUTS = 3  # the whole exchange (hops, addresses, bodies) gets 3 x TIMEOUT_SECONDS
MAX_REDIRECTS = 3
MAX_BODY_BYTES = 64 * 1024
EXCERPT_CHARS = 300
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_URL_CHARS = 2000
VERIFY: ssl.SSLContext | bool = True  # certifi's CAs; tests put a context trusting their own CA


@dataclass(frozen=True)
class HttpResponse:
    """The final answer after redirects, with at most ``MAX_BODY_BYTES`` of its body."""

    status_code: int
    headers: httpx.Headers
    text: str
    latency_ms: int
    host: str  # who answered, for error messages

    def excerpt(self) -> str:
        return " ".join(self.text.split())[:EXCERPT_CHARS]


def post(
    url: str, *, body: bytes, headers: Mapping[str, str], timeout: float | None = None
) -> HttpResponse:
    """POST ``body`` to ``url``, following redirects by hand; network failures raise.

    Raises ``TransportError``: not retryable for a refused URL or too many
    redirects, retryable for DNS failures, timeouts and connection errors.
    """
    seconds = TIMEOUT_SECONDS if timeout is None else timeout
    started = time.monotonic()
    clock = Clock(per_operation=seconds, deadline=started + seconds * TOTAL_TIMEOUTS)
    method = "POST"
    payload: bytes | None = body  # a 303 redirect drops it
    target_url: str | httpx.URL = url
    with httpx.Client(verify=VERIFY, follow_redirects=False, trust_env=False) as client:
        for hop in range(MAX_REDIRECTS + 1):
            target = guarded(target_url)
            status, answer_headers, text = exchange(client, clock, target, method, payload, headers)
            location = answer_headers.get("location")
            if status not in REDIRECT_STATUSES or not location:
                latency = round((time.monotonic() - started) * 1000)
                return HttpResponse(status, answer_headers, text, latency, target.host)
            if hop == MAX_REDIRECTS:
                raise TransportError(
                    f"more than {MAX_REDIRECTS} redirects (last from {target.host})",
                    retryable=False,
                    status_code=status,
                )
            target_url = redirect_url(target, location)
            method, payload = redirected(status, method, payload)
    raise AssertionError("unreachable")  # pragma: no cover


def post_json(
    url: str, *, body: bytes, headers: Mapping[str, str], timeout: float | None = None
) -> Delivery:
    """``post`` then ``delivery_for``: the whole exchange for transports with no special cases."""
    return delivery_for(post(url, body=body, headers=headers, timeout=timeout))


@dataclass(frozen=True)
class Clock:
    """Each operation gets ``per_operation`` seconds, and all of them end by ``deadline``.

    The deadline keeps a worst case (slow answers, several addresses, three
    redirects) well inside the delivery lease, so a slow receiver cannot make
    two workers send the same notification.
    """

    per_operation: float
    deadline: float

    def timeout(self, target: netguard.Target) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TransportError(
                f"{target.host} took longer than {self.per_operation * TOTAL_TIMEOUTS:g} s in all",
                retryable=True,
            )
        return min(self.per_operation, remaining)


def guarded(url: str | httpx.URL) -> netguard.Target:
    try:
        return netguard.resolve_target(url)
    except netguard.UnsafeURL as error:
        raise TransportError(f"refused: {error}", retryable=False) from None
    except netguard.ResolutionError as error:
        raise TransportError(str(error), retryable=True) from None


def exchange(
    client: httpx.Client,
    clock: Clock,
    target: netguard.Target,
    method: str,
    body: bytes | None,
    headers: Mapping[str, str],
) -> tuple[int, httpx.Headers, str]:
    """One request to the first checked address that accepts a connection."""
    last = len(target.addresses) - 1
    for index, address in enumerate(target.addresses):
        seconds = clock.timeout(target)
        request = pinned_request(client, target, address, method, body, headers, seconds)
        try:
            return send(client, request, seconds)
        except httpx.ConnectError as error:
            if index < last:
                continue  # the name has another checked address: try it
            raise network_error(target, error, seconds) from error
        except httpx.RequestError as error:  # timeouts, resets, protocol errors
            raise network_error(target, error, seconds) from error
    raise AssertionError("unreachable")  # pragma: no cover


def pinned_request(
    client: httpx.Client,
    target: netguard.Target,
    address: netguard.IPAddress,
    method: str,
    body: bytes | None,
    headers: Mapping[str, str],
    seconds: float,
) -> httpx.Request:
    """A request to ``address`` that still says (Host, SNI, certificate) the original host.

    ``Accept-Encoding: identity``: only an excerpt of the answer is read, and a
    compressed one could inflate far past ``MAX_BODY_BYTES`` in one chunk.
    """
    extensions = {} if netguard.ip_literal(target.host) else {"sni_hostname": target.host}
    host = target.url.netloc.decode("ascii")
    return client.build_request(
        method,
        target.url.copy_with(host=str(address)),
        content=body,
        headers={**headers, "Host": host, "Accept-Encoding": "identity"},
        timeout=seconds,
        extensions=extensions,
    )


def send(
    client: httpx.Client, request: httpx.Request, seconds: float
) -> tuple[int, httpx.Headers, str]:
    response = client.send(request, stream=True)
    try:
        raw = read_bounded(response, deadline=time.monotonic() + seconds)
    finally:
        response.close()
    text = raw.decode(response.charset_encoding or "utf-8", errors="replace")
    return response.status_code, response.headers, text


def read_bounded(response: httpx.Response, *, deadline: float) -> bytes:
    """Enough of the body for an error excerpt or Slack's error word, and no more."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES or time.monotonic() > deadline:
            break
    return b"".join(chunks)[:MAX_BODY_BYTES]


def network_error(
    target: netguard.Target, error: httpx.RequestError, seconds: float
) -> TransportError:
    """Timeouts and connection failures are worth a retry: the receiver may come back."""
    if isinstance(error, httpx.TimeoutException):
        return TransportError(f"{target.host} did not answer within {seconds:g} s", retryable=True)
    return TransportError(
        f"cannot reach {target.host}: {error or type(error).__name__}", retryable=True
    )


def redirect_url(target: netguard.Target, location: str) -> httpx.URL:
    try:
        url = target.url.join(location)
    except httpx.InvalidURL as error:
        raise TransportError(f"bad redirect from {target.host}: {error}", retryable=False) from None
    if target.url.scheme == "https" and url.scheme == "http":
        raise TransportError(
            f"refused: {target.host} redirects from https to plain http", retryable=False
        )
    return url


def redirected(status: int, method: str, body: bytes | None) -> tuple[str, bytes | None]:
    """303 says "processed, look there": fetch it. Others keep the POST and its body.

    Unlike a browser form, a webhook moved with 301/302 still wants the
    alert; dropping the body would report a delivery that never happened.
    """
    if status == 303:
        return "GET", None
    return method, body


def delivery_for(response: HttpResponse) -> Delivery:
    """2xx is a delivery; anything else a ``TransportError`` saying whether to retry."""
    code = response.status_code
    if 200 <= code < 300:
        return Delivery(status_code=code, latency_ms=response.latency_ms)
    excerpt = response.excerpt()
    message = f"HTTP {code} from {response.host}" + (f": {excerpt}" if excerpt else "")
    raise TransportError(
        message,
        retryable=code == 429 or code == 408 or code >= 500,
        status_code=code,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After``: delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def user_agent() -> str:
    """``Labbook/<version>``: receivers can tell who calls and filter on it."""
    try:
        version = importlib.metadata.version("labbook")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        version = "dev"
    return f"Labbook/{version}"


def require_keys(config: Any, *, allowed: frozenset[str]) -> dict[str, Any]:
    """The config as a dict with no key outside ``allowed`` (a typo must not pass silently)."""
    if not isinstance(config, dict):
        raise invalid("config", "Must be an object.")
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise invalid(
            f"config.{unknown[0]}", f"Unknown key; expected {', '.join(sorted(allowed))}."
        )
    return config


def clean_url(value: Any) -> str:
    """A URL the guard accepts now (save time: literal and localhost checks, best-effort DNS)."""
    if not isinstance(value, str) or not value.strip():
        raise invalid("config.url", "This field is required and must be a URL.")
    if len(value) > MAX_URL_CHARS:
        raise invalid("config.url", f"At most {MAX_URL_CHARS} characters.")
    try:
        return netguard.check_url(value.strip(), resolve=False)
    except netguard.UnsafeURL as error:
        raise invalid("config.url", str(error)) from None
