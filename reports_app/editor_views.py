"""Report authoring pages: the list, new report, editor, history, diff and sharing.

Thin views over ``reports_app.editor_pages``. Outsiders get 404 (the
selectors raise ``NotFound``, never hinting that a report exists); members
whose role may not do something get 403; a bad input shows the form again
with its error. The editor page saves through the REST API (``editor.js``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from kernel import forms
from kernel.errors import ApplicationError, PermissionDenied
from kernel.http import AuthenticatedHttpRequest, http_errors, request_ip
from reports_app import editor_pages, selectors, services
from reports_app.models import Report, Visibility
from tracking import selectors as tracking_selectors
from tracking import services as tracking_services

if TYPE_CHECKING:
    from reports_app.models import ReportWithRole
    from tracking.models import ProjectWithRole

NEW_FIELDS = ("title", "visibility")
SHARE_FIELDS = ("expires_at", "hide_authors", "embeddable")
EMBED_CODE = '<iframe src="{url}" title="{title}" width="100%" height="800"></iframe>'


def _project(request: AuthenticatedHttpRequest, team: str, project: str) -> ProjectWithRole:
    return tracking_selectors.project_get_for_user(request.user, f"{team}/{project}")


def _report(request: AuthenticatedHttpRequest, report_id: int) -> ReportWithRole:
    return selectors.report_get_for_user(request.user, report_id)


# --- The project's reports ------------------------------------------------------------------


@login_required
@require_GET
@http_errors
def report_list(request: AuthenticatedHttpRequest, team: str, project: str) -> HttpResponse:
    found = _project(request, team, project)
    context = editor_pages.list_context(request.user, found, request.GET)
    return render(request, "reports_app/editor/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def report_new(request: AuthenticatedHttpRequest, team: str, project: str) -> HttpResponse:
    found = _project(request, team, project)
    tracking_services.require_write(found.role)
    form = forms.Form(values={"visibility": Visibility.TEAM})
    if request.method == "POST":
        created, form = forms.submit(
            lambda: services.report_create(
                user=request.user,
                project=found,
                title=request.POST.get("title", ""),
                visibility=request.POST.get("visibility", Visibility.TEAM),
            ),
            request.POST,
            fields=NEW_FIELDS,
        )
        if created is not None:
            return redirect("report-edit", report_id=created.pk)
    context = {
        "project": found,
        "current_team": found.team,
        "form": form,
        "visibilities": Visibility.choices,
    }
    return render(request, "reports_app/editor/new.html", context, status=forms.status(form))


# --- The editor -----------------------------------------------------------------------------


@never_cache
@login_required
@require_GET
@http_errors
def report_edit(request: AuthenticatedHttpRequest, report_id: int) -> HttpResponse:
    found = _report(request, report_id)
    services.require_edit(found, request.user)
    context = editor_pages.editor_context(found, request.user, csrf=get_token(request))
    return render(request, "reports_app/editor/edit.html", context)


# --- History ------------------------------------------------------------------------------------


@login_required
@require_GET
@http_errors
def revisions(request: AuthenticatedHttpRequest, report_id: int) -> HttpResponse:
    found = _report(request, report_id)
    context = editor_pages.revisions_context(found, request.user, request.GET)
    return render(request, "reports_app/editor/revisions.html", context)


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def revision(request: AuthenticatedHttpRequest, report_id: int, number: int) -> HttpResponse:
    """One revision; a POST restores it as the newest revision."""
    found = _report(request, report_id)
    if request.method == "POST":
        return _restore(request, found, number)
    old = selectors.revision_get(found, number)
    context = editor_pages.revision_context(found, old, request.user)
    return render(request, "reports_app/editor/revision.html", context)


def _restore(
    request: AuthenticatedHttpRequest, report: ReportWithRole, number: int
) -> HttpResponse:
    seen = request.POST.get("revision", "")
    try:
        restored = services.report_restore(
            report=report,
            user=request.user,
            number=number,
            revision=int(seen) if seen.isdigit() else seen,
        )
    except ApplicationError as error:
        if error.status not in (400, 409):
            raise
        messages.error(request, f"Nothing was restored: {error.message}")
        return redirect("report-revisions", report_id=report.pk)
    messages.success(request, f"Revision {number} is back, as revision {restored.revision}.")
    return redirect("report", report_id=report.pk)


@login_required
@require_GET
@http_errors
def diff(request: AuthenticatedHttpRequest, report_id: int) -> HttpResponse:
    found = _report(request, report_id)
    context = editor_pages.diff_context(found, request.GET)
    return render(request, "reports_app/editor/diff.html", context)


# --- Sharing ------------------------------------------------------------------------------------


@never_cache  # the page may show a new link's token: keep it out of the browser's cache
@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def share(request: AuthenticatedHttpRequest, report_id: int) -> HttpResponse:
    found = _report(request, report_id)
    if not services.can_manage_links(found, request.user):
        raise PermissionDenied("Only the author or an owner shares this report.")
    if request.method == "POST" and "revoke" in request.POST:
        return _revoke(request, found)
    form = forms.Form()
    if request.method == "POST":
        _, form = forms.submit(
            lambda: editor_pages.share_link_create(
                found, request.user, request.POST, request.session, ip=request_ip(request)
            ),
            request.POST,
            fields=SHARE_FIELDS,
        )
        if not form.errors:
            return redirect("report-share", report_id=found.pk)  # the new link shows once, on GET
    new_link = None if form.errors else _new_link(request, found)
    context = editor_pages.share_context(found, new_link=new_link, form=form)
    return render(request, "reports_app/editor/share.html", context, status=forms.status(form))


def _new_link(request: HttpRequest, report: Report) -> dict[str, Any] | None:
    new = editor_pages.new_link_pop(request.session, report)
    if new:
        new["url"] = request.build_absolute_uri(reverse("shared", kwargs={"token": new["token"]}))
    if new and new.get("embeddable"):
        new["embed"] = format_html(EMBED_CODE, url=new["url"], title=report.title)
    return new


def _revoke(request: AuthenticatedHttpRequest, report: ReportWithRole) -> HttpResponse:
    link = editor_pages.share_link_get(report, request.POST.get("revoke", ""))
    if link is None:
        raise Http404("No such link.")
    services.share_link_revoke(link=link, user=request.user, ip=request_ip(request))
    messages.success(request, f"Revoked the link {link.prefix}…: it no longer opens the report.")
    return redirect("report-share", report_id=report.pk)
