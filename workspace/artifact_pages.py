"""Pages of versioned artifacts: an artifact's versions and lineage, and the run
page's "Artifacts logged" and "Artifacts used" (``templatetags.artifact_lineage``)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from kernel.errors import NotFound
from kernel.http import AuthenticatedHttpRequest
from tracking import artifact_versions as av
from tracking import selectors
from tracking.models import Run

VERSIONS_SHOWN = 100  # the newest; the API lists them all
FILES_SHOWN = 200  # of each version


def artifact_page_context(user: User, team: str, project: str, name: str) -> dict[str, Any]:
    """The artifact's newest versions, each with its files and the runs that used it."""
    found_project = selectors.project_at(user, team, project)
    artifact = av.artifact_get(found_project, name)
    versions = []
    for version in av.committed(artifact)[:VERSIONS_SHOWN]:
        version.artifact = artifact
        shown = av.version_dict(version, viewer=user)
        shown["files_cut"] = len(shown["files"]) > FILES_SHOWN
        shown["files"] = shown["files"][:FILES_SHOWN]
        versions.append(shown)
    return {"project": found_project, "artifact": artifact, "versions": versions}


@login_required
@require_GET
def artifact_page(
    request: AuthenticatedHttpRequest, team: str, project: str, name: str
) -> HttpResponse:
    try:
        context = artifact_page_context(request.user, team, project, name)
    except NotFound:
        raise Http404("No such artifact.") from None
    return render(request, "workspace/artifact.html", context)


def run_lineage(run: Run, user: User) -> dict[str, Any]:
    """The versions ``run`` logged and used (those ``user`` may read), for the run page."""
    return {
        "logged": [_row(version) for version in av.logged_by(run)],
        "used": [_row(version) for version in av.used_by(run, user)],
    }


def _row(version: Any) -> dict[str, Any]:
    return {
        "name": version.artifact.name,
        "type": version.artifact.type,
        "version": f"v{version.version}",
        "reference": av.reference(version),
        "href": version.artifact.get_absolute_url(),
        "size": version.size,
        "file_count": version.file_count,
        "producer": av.run_summary(version.producer),
    }
