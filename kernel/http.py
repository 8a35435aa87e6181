"""What every view may use: the services' errors as 404 and 403 pages, the client's address."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.http.response import HttpResponseBase

from kernel.errors import NotFound, PermissionDenied

if TYPE_CHECKING:
    from django.contrib.auth.models import User  # models: not loaded before the app registry

V = TypeVar("V", bound=Callable[..., HttpResponseBase])


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a view behind ``login_required``: its user has signed in.

    For the type checker only (django-stubs' recipe); Django builds a plain ``HttpRequest``.
    """

    user: User


def http_errors(view: V) -> V:
    """Turn the services' NotFound and PermissionDenied into 404 and 403 pages."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except NotFound:
            raise Http404("Not found.") from None
        except PermissionDenied as error:
            raise DjangoPermissionDenied(error.message) from None

    return cast(V, wrapper)  # the same view, its errors as pages


def request_ip(request: HttpRequest | None) -> str | None:
    """The client's address as the server saw it (a proxy's own unless it sets REMOTE_ADDR)."""
    if request is None:
        return None
    return valid_ip(request.META.get("REMOTE_ADDR"))


def valid_ip(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:  # a unix socket's path, or nothing usable
        return None


def absolute_url(path: str) -> str:
    """A page's path as a link that works outside the site (emails, webhooks, the API)."""
    return settings.BASE_URL + path


def query_string(query: QueryDict, **changes: str | None) -> str:
    """``query`` with ``changes`` applied (None drops a key), as ``?a=1&b=2``."""
    params = query.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value is not None:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


def allow_framing(response: HttpResponse) -> HttpResponse:
    """Let the sites of ``SHARE_FRAME_ANCESTORS`` frame this response (an embeddable share link).

    Every other page keeps ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``.
    """
    # A marker attribute of ours, read by labbook.middleware.ContentSecurityPolicyMiddleware
    # (Django marks responses the same way with xframe_options_exempt); no stub declares it.
    response.frame_ancestors = list(settings.SHARE_FRAME_ANCESTORS)  # type: ignore[attr-defined]
    response.xframe_options_exempt = True
    return response
