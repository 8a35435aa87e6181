"""The audit log page of a team and its CSV download: owners only (members 403, others 404)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit.selectors import audit_events
from kernel.http import AuthenticatedHttpRequest, http_errors
from tracking import selectors
from workspace import audit_pages as pages


@login_required
@require_GET
@http_errors
def team_audit(request: AuthenticatedHttpRequest, team: str) -> HttpResponse:
    found = selectors.audit_log_team(request.user, team)
    action, error = pages.chosen_action(request.GET)
    events = audit_events(found, action=action)
    context = pages.audit_page_context(request, found, events, action=action, error=error)
    return render(request, "workspace/settings/audit.html", context, status=400 if error else 200)


@login_required
@require_GET
@http_errors
def team_audit_csv(
    request: AuthenticatedHttpRequest, team: str
) -> HttpResponse | StreamingHttpResponse:
    found = selectors.audit_log_team(request.user, team)
    action, error = pages.chosen_action(request.GET)
    if error:
        return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
    events = audit_events(found, action=action)
    # An ASGI server reads a plain iterator whole before sending a byte: give it an async one.
    asgi = isinstance(request, ASGIRequest)
    lines = pages.csv_lines_async(events) if asgi else pages.csv_lines(events)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    name = f"{found.slug}-audit-{timezone.now():%Y%m%d-%H%M%S}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
