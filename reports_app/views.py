"""Pages of the web UI: thin views over ``reports_app.pages``."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone

from reports_app import pages
from tracking import selectors
from tracking.errors import NotFound


@login_required
def home(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = {
        "teams": pages.home_teams(request.user),
        "runs": pages.home_recent_runs(request.user, now=now),
        "attention": pages.home_attention_runs(request.user, now=now),
        "attention_days": pages.ATTENTION_DAYS,
    }
    return render(request, "reports_app/home.html", context)


@login_required
def project(request: HttpRequest, team: str, project: str) -> HttpResponse:
    try:
        found = selectors.project_get_for_user(request.user, f"{team}/{project}")
    except NotFound:
        raise Http404("No such project.") from None
    if "compare" in request.GET:
        run_ids = pages.selected_run_ids(request.GET)
        if run_ids:
            return HttpResponseRedirect(pages.compare_path(found, run_ids))
    columns = pages.chosen_columns(request.session, request.GET, found)
    context = pages.project_page_context(request.user, found, request.GET, columns)
    context["compare_empty"] = "compare" in request.GET
    return render(request, "reports_app/project.html", context)
