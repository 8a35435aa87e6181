"""Pages of the project shell. The full web UI grows here and in tracking's views."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tracking import selectors


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_for_user(request.user)
    runs = selectors.runs_for_user(request.user).order_by("-created_at")[:20]
    return render(request, "reports_app/home.html", {"projects": projects, "runs": runs})
