"""Report pages for reading: the report, its share link, its offline export."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from kernel.errors import NotFound
from kernel.http import AuthenticatedHttpRequest, allow_framing, request_ip
from reports_app import report_pages, selectors, services
from reports_app.models import ShareLink
from tracking import media
from tracking.mlflow import artifacts

if TYPE_CHECKING:
    from reports_app.models import ReportWithRole


def _report(request: AuthenticatedHttpRequest, report_id: int) -> ReportWithRole:
    try:
        return selectors.report_get_for_user(request.user, report_id)
    except NotFound:
        raise Http404("No such report.") from None


@login_required
@require_GET
def report(request: AuthenticatedHttpRequest, report_id: int) -> HttpResponse:
    found = _report(request, report_id)
    context = report_pages.report_context(found, user=request.user)
    return render(request, "reports_app/report.html", context)


@require_GET
def shared(request: HttpRequest, token: str) -> HttpResponse:
    """A report through its share link: read-only, for anyone holding the link."""
    link = selectors.share_link_active(ShareLink.hash(token))
    if link is None:  # 404 whatever the reason; the page says which, to the link's holder
        why = selectors.share_link_gone(ShareLink.hash(token))
        gone = render(request, "reports_app/share_gone.html", {"why": why}, status=404)
        gone["Referrer-Policy"] = "no-referrer"
        return gone
    services.share_link_touch(link, actor=request.user, ip=request_ip(request))
    context: dict[str, Any] = report_pages.shared_context(link, token=token)
    response = render(request, "reports_app/report.html", context)
    response["Referrer-Policy"] = "no-referrer"  # the token must not leak through links
    response["X-Robots-Tag"] = "noindex"
    return allow_framing(response) if link.embeddable else response


@login_required
@require_GET
def export(request: AuthenticatedHttpRequest, report_id: int) -> HttpResponse:
    found = _report(request, report_id)
    response = HttpResponse(
        report_pages.export_html(found), content_type="text/html; charset=utf-8"
    )
    filename = f"{found.slug or 'report'}.html"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_GET
def block(request: AuthenticatedHttpRequest, report_id: int, index: int) -> JsonResponse:
    figure = report_pages.block_figure(_report(request, report_id), index, public=False)
    if figure is None:
        raise Http404("No such chart block.")
    return JsonResponse(figure)


@require_GET
def shared_block(request: HttpRequest, token: str, index: int) -> JsonResponse:
    link = selectors.share_link_active(ShareLink.hash(token))
    figure = link and report_pages.block_figure(link.report, index, public=True)
    if not figure:
        raise Http404("No such chart block.")
    return JsonResponse(figure)


# --- Images of a shared report ---------------------------------------------------------------


@require_GET
def shared_media(request: HttpRequest, token: str, media_id: int) -> FileResponse:
    """An image the shared report shows, for whoever holds the link; any other item is a 404."""
    link = selectors.share_link_active(ShareLink.hash(token))
    item = link and report_pages.shared_media_item(link, media_id)
    if not item:
        raise Http404("No such image in this report.")
    response = artifacts.inline_response(media.open_file(item), media.content_type(item))
    response["Cache-Control"] = "private, no-cache"  # a revoked link stops showing it
    response["Referrer-Policy"] = "no-referrer"
    return response


@login_required
@require_GET
def media_block(request: AuthenticatedHttpRequest, report_id: int, index: int) -> JsonResponse:
    """A media, table, histogram or logs block drawn again: its run logged (live pages)."""
    drawn = report_pages.media_block(_report(request, report_id), index)
    if drawn is None:
        raise Http404("No such media block.")
    return JsonResponse(drawn)


@require_GET
def shared_media_block(request: HttpRequest, token: str, index: int) -> JsonResponse:
    """The same through a share link: drawn publicly, its images served through the link."""
    link = selectors.share_link_active(ShareLink.hash(token))
    drawn = link and report_pages.media_block(link.report, index, token=token)
    if not drawn:
        raise Http404("No such media block.")
    response = JsonResponse(drawn)
    response["Referrer-Policy"] = "no-referrer"
    return response


# --- end images of a shared report -----------------------------------------------------------
