"""MLflow UI links, opened in Labbook: each redirects to the Labbook page of what it names.

The mlflow client prints ``<tracking uri>/#/experiments/<id>/runs/<run id>`` after a run,
and MLflow's UI links look the same, with or without the ``#`` (newer UIs drop it). The part
after a ``#`` never reaches the server: ``labbook/mlflow_links.js``, on the home and login
pages, sends the browser to the same route without it, which these views answer.

* ``experiments/<id>`` and its tabs: the project page (the experiment id is the project's;
  ``0``, MLflow's Default, is the default team's ``default`` project, as in the protocol).
* ``experiments/<id>/runs/<run id>`` and its tabs (``/artifacts/...``), the same under
  ``evaluation-runs/``, ``?selectedRunUuid=<run id>``, and ``runs/<run id>``: the run page.
* ``compare-runs?runs=[...]`` and ``metric?runs=[...]``: the compare page of those runs.

Each view checks membership as the page it sends to would: an id the visitor may not see is
the same 404 as one that does not exist, and an anonymous visitor logs in first (``next``
keeps the link).
"""

from __future__ import annotations

import json
import re

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseRedirect
from django.urls import path
from django.views.decorators.http import require_GET

from kernel.charts import MAX_CHART_RUNS
from kernel.errors import NotFound
from kernel.http import AuthenticatedHttpRequest
from kernel.ids import is_id
from tracking import selectors
from tracking.mlflow import convert, experiments
from tracking.mlflow.http import MlflowError
from tracking.models import Project, Run
from workspace import pages

ID = re.compile(r"[0-9]{1,19}")
RUN_TAB = re.compile(r"(?:evaluation-)?runs/(?P<run>[^/]+)(?:/.*)?", re.DOTALL)
NOT_FOUND = "No such page."


def _run(request: AuthenticatedHttpRequest, run_id: str) -> Run:
    if not ID.fullmatch(run_id) or not is_id(int(run_id)):
        raise Http404(NOT_FOUND)
    try:
        return selectors.run_get_for_user(request.user, int(run_id))
    except NotFound:
        raise Http404(NOT_FOUND) from None


def _project(request: AuthenticatedHttpRequest, experiment_id: str) -> Project:
    """The project page's project, or 404: unknown, foreign, deleted, or not made yet (``0``)."""
    if experiment_id != convert.DEFAULT_EXPERIMENT_ID and not ID.fullmatch(experiment_id):
        raise Http404(NOT_FOUND)
    try:
        project = experiments.by_id(request.user, experiment_id)
    except MlflowError:
        raise Http404(NOT_FOUND) from None
    if project.pk is None or project.deleted_at is not None:
        raise Http404(NOT_FOUND)
    return project


def _run_in(request: AuthenticatedHttpRequest, experiment_id: str, run_id: str) -> Run:
    """The run, when the link's experiment is the run's: a run under another id is not found,
    as on Labbook's own run pages."""
    run = _run(request, run_id)
    if experiment_id != str(run.project_id):
        raise Http404(NOT_FOUND)
    return run


@login_required
@require_GET
def experiment(
    request: AuthenticatedHttpRequest, experiment_id: str, rest: str = ""
) -> HttpResponseRedirect:
    tab = RUN_TAB.fullmatch(rest)
    selected = request.GET.get("selectedRunUuid")
    if tab is not None or (selected and rest.startswith("evaluation-runs")):
        run_id = tab["run"] if tab is not None else str(selected)
        return HttpResponseRedirect(_run_in(request, experiment_id, run_id).get_absolute_url())
    return HttpResponseRedirect(_project(request, experiment_id).get_absolute_url())


@login_required
@require_GET
def run(request: AuthenticatedHttpRequest, run_id: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(_run(request, run_id).get_absolute_url())


def _run_ids(raw: str | None) -> list[int]:
    """``runs=["1","2"]`` as MLflow's UI writes it (a JSON list); anything else is none."""
    try:
        listed = json.loads(raw or "[]")
    except ValueError:
        return []
    if not isinstance(listed, list):
        return []
    ids = [int(item) for item in map(str, listed) if ID.fullmatch(item)]
    return [pk for pk in dict.fromkeys(ids) if is_id(pk)]


@login_required
@require_GET
def compare_runs(request: AuthenticatedHttpRequest) -> HttpResponseRedirect:
    """The compare page of the listed runs the visitor may read, in the first one's project
    (a Labbook comparison is of one project's runs)."""
    wanted = _run_ids(request.GET.get("runs"))
    readable = {run.pk: run for run in selectors.runs_for_user(request.user, ids=wanted)}
    found = [readable[pk] for pk in wanted if pk in readable]
    if not found:
        raise Http404(NOT_FOUND)
    project = found[0].project
    ids = [run.pk for run in found if run.project_id == project.pk][:MAX_CHART_RUNS]
    return HttpResponseRedirect(pages.compare_path(project, ids))


# Included by ``labbook.urls`` before the team routes. They take ``experiments``, ``runs``,
# ``compare-runs`` and ``metric`` at the top level: words a team slug should not be.
patterns: list = [
    path("experiments/<str:experiment_id>", experiment, name="mlflow-experiment"),
    path("experiments/<str:experiment_id>/<path:rest>", experiment, name="mlflow-experiment-tab"),
    path("runs/<str:run_id>", run, name="mlflow-run"),
    path("compare-runs", compare_runs, name="mlflow-compare-runs"),
    path("metric", compare_runs, name="mlflow-metric"),
]
