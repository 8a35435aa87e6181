"""What the page views share: the services' errors as Django's 404 and 403 pages."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from tracking.errors import NotFound, PermissionDenied

View = Callable[..., HttpResponse]


def http_errors(view: View) -> View:
    """Turn the services' NotFound and PermissionDenied into 404 and 403 pages."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound:
            raise Http404("Not found.") from None
        except PermissionDenied as error:
            raise DjangoPermissionDenied(error.message) from None

    return wrapper
