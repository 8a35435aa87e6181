"""Which pages may open Labbook's websockets: the same origin, or a trusted one, port included.

Channels' ``AllowedHostsOriginValidator`` compares the Origin's host name
with ALLOWED_HOSTS and ignores scheme and port, so a page served on
``http://localhost:9999`` (another program on the same machine) could open a
socket with the visitor's session. Here, as Django's CSRF check does for
forms, the Origin must be exactly the socket's own origin (its scheme as
http/https, its Host header, checked against ALLOWED_HOSTS) or one of
``CSRF_TRUSTED_ORIGINS`` (for a TLS proxy in front: ``https://labbook.example.org``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port filled in; None if unreadable."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return scheme, parts.hostname.lower(), port


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def allowed_origin(scope: dict[str, Any]) -> bool:
    """Does the socket's Origin header name its own origin or a trusted one?"""
    origin_header = _header(scope, b"origin")
    if not origin_header:
        return False  # browsers always send one; a script without a browser has no session
    parts = urlsplit(origin_header)
    origin = _origin(parts.scheme, parts.netloc)
    if origin is None:
        return False
    trusted = (urlsplit(o) for o in settings.CSRF_TRUSTED_ORIGINS)
    if origin in {_origin(o.scheme, o.netloc) for o in trusted}:
        return True
    host = _header(scope, b"host") or ""
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return origin == _origin(scheme, host)


class SameOriginValidator:
    """ASGI middleware: a websocket from another origin is refused before the app sees it."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not allowed_origin(scope):
            denier = WebsocketDenier()
            # A websocket scope, which types-channels spells as its own private TypedDict.
            return await denier(scope, receive, send)  # type: ignore[arg-type]
        return await self.application(scope, receive, send)
