"""The machinery of the authorization matrix: its entries, the URL conf walk, the requests.

The table itself, and the tests, are in ``test_authorization_matrix``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from tests.security.scene import Scene

PERSONAS = ("anonymous", "outsider", "viewer", "editor", "owner")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class Codes(NamedTuple):
    anonymous: int
    outsider: int
    viewer: int
    editor: int
    owner: int


def same(code: int) -> Codes:
    """Everybody gets ``code`` (public pages, routes that answer alike for all)."""
    return Codes(code, code, code, code, code)


class Via:
    """How a persona is authenticated and how a body is sent."""

    PAGE = "page"  # session login; form-encoded POST; anonymous goes to /login/
    ADMIN = "admin"  # session login; anonymous (and non-staff) go to /admin/login/
    API = "api"  # Bearer token; JSON
    MLFLOW = "mlflow"  # Bearer token; GET reads the query string, other methods a JSON body
    ARTIFACT = "artifact"  # Bearer token; PUT sends the file's bytes


Data = Callable[[Scene], dict[str, Any]]


@dataclass(frozen=True)
class Expect:
    via: str
    get: Codes
    post: Codes | None = None
    put: Codes | None = None
    patch: Codes | None = None
    delete: Codes | None = None
    # How to build the URL: values of the route's converters that differ from the
    # defaults, or the whole path (``{s.run.pk}`` style) for a regex route.
    kwargs: dict[str, str] | None = None
    path: str | None = None
    query: Data | None = None  # GET's query string
    body: Data | None = None  # the body of every other method
    others: int = 405  # what the owner gets for a method not listed
    sends_to: str | None = None  # where a stranger is redirected, when not to a login page
    shares: bool = False  # the URL shows a report to whoever holds it (a share link)

    def codes(self, method: str) -> Codes | None:
        return getattr(self, method.lower())

    def methods(self) -> list[str]:
        return [method for method in METHODS if self.codes(method)]


# --- The URL conf --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    key: str  # "namespace:name", or the route when the pattern has no name
    route: str  # the full route from the site root
    regex: bool  # some part is a regular expression, not a route

    def names(self) -> set[str]:
        """The names of the route's converters (``run_id``, ``team``...)."""
        return {match["name"] for match in CONVERTER.finditer(self.route)}


CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def url_patterns() -> dict[str, Pattern]:
    patterns = list(_walk(get_resolver(), route="", namespace="", regex=False))
    by_key = {pattern.key: pattern for pattern in patterns}
    assert len(by_key) == len(patterns), "two URL patterns share a name or a route"
    return by_key


def _walk(resolver: URLResolver, *, route: str, namespace: str, regex: bool) -> Iterator[Pattern]:
    for item in resolver.url_patterns:
        part = str(item.pattern)
        is_regex = regex or not isinstance(item.pattern, RoutePattern)
        if isinstance(item, URLResolver):
            inner = f"{namespace}{item.namespace}:" if item.namespace else namespace
            yield from _walk(item, route=route + part, namespace=inner, regex=is_regex)
        elif isinstance(item, URLPattern):
            key = f"{namespace}{item.name}" if item.name else route + part
            yield Pattern(key, route + part, is_regex)


def url_for(pattern: Pattern, entry: Expect, scene: Scene, values: dict[str, str]) -> str:
    """The path to request: the entry's own, or the route with ``values`` in its converters."""
    if entry.path is not None:
        return "/" + entry.path.format(s=scene)
    assert not pattern.regex, f"{pattern.key} is a regular expression: give its entry a path"
    route = CONVERTER.sub(lambda match: values[match["name"]], pattern.route)
    return "/" + route.format(s=scene)


# --- Requests ------------------------------------------------------------------------------


def request_as(
    client: Client, persona: str, method: str, url: str, entry: Expect, scene: Scene
) -> HttpResponse:
    """``method`` on ``url`` as ``persona``, logged in the way the URL expects."""
    client.cookies.clear()
    headers = {}
    who = scene.persona(persona)
    if who is not None and entry.via in (Via.PAGE, Via.ADMIN):
        client.cookies[settings.SESSION_COOKIE_NAME] = scene.sessions[persona]
    elif who is not None:
        headers["Authorization"] = f"Bearer {who.token}"
    query = entry.query(scene) if entry.query else None
    if method in ("GET", "HEAD"):
        return getattr(client, method.lower())(url, query, headers=headers)
    return _write(client, method, url, entry, entry.body(scene) if entry.body else {}, headers)


def _write(
    client: Client,
    method: str,
    url: str,
    entry: Expect,
    body: dict[str, Any],
    headers: dict[str, str],
) -> HttpResponse:
    if entry.via in (Via.PAGE, Via.ADMIN):
        if method == "POST":
            return client.post(url, body, headers=headers)  # a form
        return client.generic(method, url, headers=headers)
    if entry.via == Via.ARTIFACT:
        if method == "PUT":
            kind = "application/octet-stream"
            return client.generic(method, url, b"new weights", content_type=kind, headers=headers)
        return client.generic(method, url, headers=headers)
    kind = "application/json"
    return client.generic(method, url, json.dumps(body), content_type=kind, headers=headers)


def refused(persona: str, status: int) -> bool:
    return status >= 400 or (persona == "anonymous" and status in (301, 302))


def content(response: HttpResponse) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content
