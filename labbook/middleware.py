"""Request guards that belong to no single view."""

from __future__ import annotations

from collections.abc import Callable
from inspect import isawaitable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from tracking.api.errors import error_body
from tracking.mlflow import http as mlflow_http


class BothModes:
    """A middleware Django can call from its async stack without a thread switch.

    Under ASGI a sync-only middleware costs two switches (into a thread and back
    to the event loop) on every request; one that works both ways costs none.
    Subclasses implement ``respond_early(request)``: a response, or ``None`` to
    go on.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return self.respond_early(request) or self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return self.respond_early(request) or await self.get_response(request)

    def respond_early(self, request: HttpRequest) -> HttpResponse | None:
        raise NotImplementedError


class RejectNulCharactersMiddleware(BothModes):
    """Answer 400 to a NUL character in the path or query string.

    PostgreSQL cannot hold NUL in text, so such a value would otherwise fail
    deep in a query as a 500; no legitimate client sends one.
    """

    def respond_early(self, request: HttpRequest) -> HttpResponse | None:
        if "\x00" in request.path:
            return self._reject(request, "path")
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return self._reject(request, name.replace("\x00", ""))
        return None

    @staticmethod
    def _reject(request: HttpRequest, field: str) -> HttpResponse:
        message = "NUL characters are not allowed."
        if mlflow_http.is_mlflow_path(request.path):
            return mlflow_http.error_response(mlflow_http.INVALID, f"{field}: {message}", 400)
        return JsonResponse(error_body("invalid", message, field=field), status=400)


# add_files_from_finders: WhiteNoise's static file index by the settings that shape it.
_FINDER_INDEXES: dict[tuple[Any, ...], dict[str, Any]] = {}


class StaticFilesMiddleware(BothModes, WhiteNoiseMiddleware):
    """WhiteNoise (static files, compressed, hashed ones cached a year) without thread switches.

    A static file is answered here as WhiteNoise answers it; everything else
    goes on in whichever mode Django calls us. A file under its hashed name
    (``labbook.staticfiles``) never changes, so browsers keep it a year without
    asking again (``immutable``); a plain name is cached ``max_age`` (60 s).
    """

    FOREVER = 365 * 24 * 60 * 60  # a year: the customary ceiling (RFC 2616 capped Expires there)

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        WhiteNoiseMiddleware.__init__(self, get_response)
        BothModes.__init__(self, get_response)

    def add_files_from_finders(self) -> None:
        """WhiteNoise's index of every app's static files, built once per process.

        A server builds its middleware once; Django's test client builds it for
        every client, and each scan of the ~190 files costs about 50 ms. The
        index depends only on the settings in the key, so a second middleware
        with the same settings takes the first one's (``StaticFile`` responders
        are read-only once built).
        """
        key = (
            self.static_prefix,
            self.max_age,
            self.allow_all_origins,
            self.charset,
            self.index_file,
            tuple(map(str, settings.STATICFILES_DIRS)),
            tuple(settings.INSTALLED_APPS),
        )
        index = _FINDER_INDEXES.get(key)
        if index is None:
            before = dict(self.files)  # STATIC_ROOT's files, which the finders' override
            super().add_files_from_finders()
            index = _FINDER_INDEXES[key] = {
                url: file for url, file in self.files.items() if before.get(url) is not file
            }
        self.files.update(index)

    def add_cache_headers(self, headers: Any, path: str, url: str) -> None:
        if self.immutable_file_test(path, url):
            headers["Cache-Control"] = f"public, max-age={self.FOREVER}, immutable"
        elif self.max_age is not None:
            headers["Cache-Control"] = f"public, max-age={self.max_age}"

    def respond_early(self, request: HttpRequest) -> HttpResponse | None:
        if self.autorefresh:  # DEBUG: looked up on disk each time, as WhiteNoise does
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        return None if static_file is None else self.serve(static_file, request)

    __call__ = BothModes.__call__


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's Content-Security-Policy header, with two additions of ours.

    ``connect-src`` names this host's websocket URL (``'self'`` covers ws:// and
    wss:// only in CSP Level 3 browsers), and a response marked by
    :func:`kernel.http.allow_framing` gets its own ``frame-ancestors``. The header is
    built in-line, so under ASGI it costs no thread switch.
    """

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self.process_request(request)
        response = self.get_response(request)
        assert isawaitable(response)  # Django calls __acall__ only with an async get_response
        return self.process_response(request, await response)

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        socket = _websocket_origin(request)
        if socket:
            parts.update = {**(parts.update or {}), "connect-src": [socket]}
        ancestors = getattr(response, "frame_ancestors", None)
        if ancestors:
            parts.replace = {**(parts.replace or {}), "frame-ancestors": ancestors}
        return parts


def _websocket_origin(request: HttpRequest) -> str | None:
    try:
        host = request.get_host()  # checked against ALLOWED_HOSTS
    except DisallowedHost:
        return None
    return f"{'wss' if request.is_secure() else 'ws'}://{host}"
