"""Report authoring pages: the list, new report, editor, history, diff, sharing.

Placeholders until the pages land: each answers 404.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse


def _later(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    raise Http404("Not built yet.")


report_list = report_new = report_edit = revisions = revision = diff = share = _later
