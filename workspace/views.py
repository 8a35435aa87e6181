"""Pages of the web UI: thin views over ``workspace.pages`` and ``workspace.run_pages``."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.messages.views import SuccessMessageMixin
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods

from kernel.charts import MAX_CHART_RUNS
from kernel.errors import ApplicationError, NotFound, invalid
from kernel.http import AuthenticatedHttpRequest
from tracking import history, selectors, services
from tracking.api.errors import error_body
from tracking.mlflow import artifacts
from tracking.models import WRITE_ROLES, Project, Run
from workspace import login_throttle, pages, run_pages

if TYPE_CHECKING:
    from tracking.models import ProjectWithRole, RunWithRole


class LoginView(auth_views.LoginView):
    """Django's login page; while the login is locked out it answers 429 and checks nothing."""

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        username = request.POST.get("username", "")
        address = login_throttle.address_of(request)
        wait = login_throttle.wait_seconds(username=username, address=address)
        if not wait:
            return super().post(request, *args, **kwargs)
        form = self.get_form_class()(request, initial={"username": username})
        context = self.get_context_data(form=form, wait_minutes=math.ceil(wait / 60))
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(wait)
        return response


class PasswordChange(SuccessMessageMixin, auth_views.PasswordChangeView):
    success_url = reverse_lazy("home")
    success_message = "Your password was changed."


@login_required
@require_GET
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    now = timezone.now()
    context = {
        "teams": pages.home_teams(request.user),
        "runs": pages.home_recent_runs(request.user, now=now),
        "attention": pages.home_attention_runs(request.user, now=now),
        "attention_days": pages.ATTENTION_DAYS,
    }
    return render(request, "workspace/home.html", context)


def _project(request: AuthenticatedHttpRequest, team: str, project: str) -> ProjectWithRole:
    try:
        return selectors.project_get_for_user(request.user, f"{team}/{project}")
    except NotFound:
        raise Http404("No such project.") from None


def _run(
    request: AuthenticatedHttpRequest, team: str, project: str, run_id: int, *, write: bool = False
) -> RunWithRole:
    """The run, 404 for outsiders or when the URL names another project.

    The URL is checked before the role: a run under another project's URL is
    not found, whatever the caller may do to it where it really is.
    """
    try:
        run = selectors.run_get_for_user(request.user, run_id)
    except NotFound:
        raise Http404("No such run.") from None
    if (run.project.team.slug, run.project.slug) != (team, project):
        raise Http404("No such run in this project.")
    if write and run.role not in WRITE_ROLES:
        raise DjangoPermissionDenied("Viewers cannot change runs.")
    return run


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def project(request: AuthenticatedHttpRequest, team: str, project: str) -> HttpResponse:
    found = _project(request, team, project)
    if request.method == "POST":
        return _project_post(request, found)
    if set(request.GET) == {"view"}:
        return _open_view(request, found)
    if "compare" in request.GET:  # a link with ?runs=1,2&compare=1
        return _compare(request, found, request.GET, "")
    columns = pages.chosen_columns(request.session, request.GET, found)
    context = pages.project_page_context(request.user, found, request.GET, columns)
    context["can_edit"] = pages.can_edit(found)
    context["current_team"] = found.team
    return render(request, "workspace/project.html", context)


def _open_view(request: AuthenticatedHttpRequest, project: ProjectWithRole) -> HttpResponse:
    """``?view=<id>``: the table as the view was saved, at a URL that says so."""
    view = pages.opened_view(project, request.GET["view"])
    if view is None:
        messages.error(request, "That view no longer exists; here are all the runs.")
        return HttpResponseRedirect(project.get_absolute_url())
    return HttpResponseRedirect(f"{project.get_absolute_url()}?{view.query}&view={view.pk}")


def _project_post(request: AuthenticatedHttpRequest, project: ProjectWithRole) -> HttpResponse:
    """The runs table's forms: compare or tag the chosen runs, save or delete a view."""
    form = request.POST
    back = form.get("back", "")
    back = back if back.startswith("?") and len(back) > 1 else ""
    if "save_view" in form or "delete_view" in form:
        return _saved_view_post(request, project, back)
    if "tag_action" in form:
        if not pages.can_edit(project):
            raise DjangoPermissionDenied("Viewers cannot change runs.")
        return _bulk_tag(request, project, back)
    return _compare(request, project, form, back)


def _compare(
    request: AuthenticatedHttpRequest, project: ProjectWithRole, form: QueryDict, back: str
) -> HttpResponse:
    try:
        run_ids = pages.chosen_run_ids(request.user, project, form, most=MAX_CHART_RUNS)
        if not run_ids:
            raise invalid("runs", "Select at least one run to compare.")
    except ApplicationError as error:
        messages.error(request, error.message)
        return HttpResponseRedirect(project.get_absolute_url() + back)
    return HttpResponseRedirect(pages.compare_path(project, run_ids))


def _bulk_tag(request: AuthenticatedHttpRequest, project: Project, back: str) -> HttpResponse:
    try:
        count = pages.bulk_tag(request.user, project, request.POST)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Tags updated on {count} run{'s' if count != 1 else ''}.")
    return HttpResponseRedirect(project.get_absolute_url() + back)


def _saved_view_post(
    request: AuthenticatedHttpRequest, project: ProjectWithRole, back: str
) -> HttpResponse:
    form = request.POST
    try:
        if "delete_view" in form:
            services.saved_view_delete(project=project, view_id=pages.view_id(form["delete_view"]))
            messages.success(request, "View deleted.")
            return HttpResponseRedirect(project.get_absolute_url() + back)
        shown = QueryDict(back.removeprefix("?"))
        columns = pages.chosen_columns(request.session, shown, project)
        query = pages.view_query(shown, columns)
        view = services.saved_view_save(
            user=request.user, project=project, name=form.get("view_name", ""), query=query
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return HttpResponseRedirect(project.get_absolute_url() + back)
    messages.success(request, f"View “{view.name}” saved: its link opens this table.")
    return HttpResponseRedirect(pages.view_href(project, view))


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def run(request: AuthenticatedHttpRequest, team: str, project: str, run_id: int) -> HttpResponse:
    found = _run(request, team, project, run_id, write=request.method == "POST")
    if request.method == "POST":
        return _annotate(request, found)
    context = run_pages.run_page_context(request.user, found, now=timezone.now())
    context["current_team"] = found.project.team
    return render(request, "workspace/run.html", context)


@login_required
@require_GET
def run_state(
    request: AuthenticatedHttpRequest, team: str, project: str, run_id: int
) -> JsonResponse:
    """The run's state parts rendered as the page renders them: what the page applies live."""
    found = _run(request, team, project, run_id)
    response = JsonResponse(run_pages.run_state(found, now=timezone.now()))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def run_artifact_cards(
    request: AuthenticatedHttpRequest, team: str, project: str, run_id: int
) -> HttpResponse:
    """The run page's artifact cards, rendered as the page renders them."""
    found = _run(request, team, project, run_id)
    response = HttpResponse(run_pages.artifact_cards(found, request.user))
    response["Cache-Control"] = "no-store"
    return response


def _annotate(request: HttpRequest, run: Run) -> HttpResponse:
    """Save the posted notes or tags. A form is sent back to the page with a message; a
    script asking for JSON gets the notes as the page shows them, or the error."""
    notes = request.POST.get("notes")
    tags = request.POST.get("tags")
    tag_list = None if tags is None else [t.strip() for t in tags.split(",") if t.strip()]
    wants_json = "application/json" in request.headers.get("Accept", "")
    what = "notes" if notes is not None else "tags"
    try:
        services.run_annotate(run=run, notes=notes, tags=tag_list)
    except ApplicationError as error:
        if wants_json:
            body = error_body(error.code, error.message, error.field)
            return JsonResponse(body, status=error.status)
        messages.error(request, f"Could not save the {what}: {error.message}")
        return HttpResponseRedirect(run.get_absolute_url())
    if wants_json:
        return JsonResponse({"notes": run.notes, "html": run_pages.notes_fragment(run)})
    messages.success(request, f"{what.capitalize()} saved.")
    return HttpResponseRedirect(run.get_absolute_url())


@login_required
@require_GET
def metric_csv(
    request: AuthenticatedHttpRequest, team: str, project: str, run_id: int
) -> StreamingHttpResponse:
    found = _run(request, team, project, run_id)
    try:
        series = selectors.series_get(found, request.GET.get("key", ""))
    except NotFound:
        raise Http404("No such metric.") from None
    name = slugify(f"{found.name}-{series.key}") or "metric"
    response = StreamingHttpResponse(_csv_rows(series), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


@login_required
@require_GET
def run_artifact(
    request: AuthenticatedHttpRequest, team: str, project: str, run_id: int, path: str
) -> FileResponse:
    """One artifact file of the run, as an attachment."""
    found = _run(request, team, project, run_id)
    try:
        return artifacts.file_response(artifacts.artifact_file(artifacts.run_location(found, path)))
    except ApplicationError:
        raise Http404("No such artifact.") from None


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(series) -> Iterator[str]:
    """Every point of the series, page by page: a million points never sit in memory at once."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["step", "value", "timestamp"])
    cursor: history.PointKey | None = None
    while True:
        page = history.metric_history(series, cursor=cursor, limit=run_pages.CSV_PAGE)
        for row in zip(page.steps, page.values, page.timestamps, strict=True):
            yield writer.writerow(row)
        if page.next_cursor is None:
            return
        cursor = history.parse_cursor(page.next_cursor)


@login_required
@require_GET
def compare(request: AuthenticatedHttpRequest, team: str, project: str) -> HttpResponse:
    found = _project(request, team, project)
    context = run_pages.compare_page_context(request.user, found, request.GET, now=timezone.now())
    context["current_team"] = found.team
    return render(request, "workspace/compare.html", context)
