"""The alerting pages: thin views over ``alerts.pages``.

Outsiders get 404 (the selectors raise ``NotFound``), viewers read everything
and get 403 on any POST (the services check the role before writing), and a
bad input shows the page again with status 400 and the error next to its field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts import actions, pages, selectors, services, snapshot
from kernel import forms
from kernel.errors import ApplicationError
from kernel.http import AuthenticatedHttpRequest, http_errors, request_ip
from tracking import selectors as tracking_selectors
from tracking.services import require_write

if TYPE_CHECKING:
    from alerts.models import AlertRule, Destination, RuleWithRole
    from tracking.models import ProjectWithRole


def _warn_if_nobody(request: AuthenticatedHttpRequest, saved: Destination | AlertRule) -> None:
    """Saved, but its alerts would reach nobody: say so beside the "saved" message."""
    warning = pages.reach_warning(saved)
    if warning:
        messages.warning(request, warning)


# --- Destinations ------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def destinations(request: AuthenticatedHttpRequest, team: str) -> HttpResponse:
    found = tracking_selectors.team_with_role(request.user, team)
    form = pages.destination_form()
    if request.method == "POST":
        require_write(found.role)
        created, form = forms.submit(
            lambda: pages.destination_create(
                request.user, found, request.POST, ip=request_ip(request)
            ),
            pages.destination_form(request.POST),
            fields=pages.DESTINATION_FIELDS,
        )
        if created is not None:
            messages.success(request, f"Added the destination {created.name}.")
            _warn_if_nobody(request, created)
            return redirect("alert-destinations", team=found.slug)
    context = pages.destinations_page_context(request.user, found, form=form)
    return render(request, "alerts/pages/destinations.html", context, status=forms.status(form))


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def destination_edit(
    request: AuthenticatedHttpRequest, team: str, destination_id: int
) -> HttpResponse:
    found = tracking_selectors.team_with_role(request.user, team)
    destination = pages.destination_in_team(request.user, found, destination_id)
    require_write(destination.role)
    form = pages.destination_edit_form(destination)
    if request.method == "POST":
        saved, form = forms.submit(
            lambda: pages.destination_save(
                destination, request.POST, actor=request.user, ip=request_ip(request)
            ),
            pages.destination_posted_form(destination, request.POST),
            fields=pages.DESTINATION_FIELDS,
        )
        if saved is not None:
            messages.success(request, f"Saved the destination {destination.name}.")
            _warn_if_nobody(request, saved)
            return redirect("alert-destinations", team=found.slug)
    context = {"current_team": found, "team": found, "destination": destination, "form": form}
    return render(request, "alerts/pages/destination.html", context, status=forms.status(form))


@login_required
@require_POST
@http_errors
def destination_test(
    request: AuthenticatedHttpRequest, team: str, destination_id: int
) -> HttpResponse:
    destination = pages.destination_in_team(
        request.user, tracking_selectors.team_with_role(request.user, team), destination_id
    )
    notification = services.destination_test(destination=destination, role=destination.role)
    sent, sentence = pages.test_result(destination, notification)
    (messages.success if sent else messages.error)(request, sentence)
    return redirect("alert-destinations", team=team)


@login_required
@require_POST
@http_errors
def destination_enabled(
    request: AuthenticatedHttpRequest, team: str, destination_id: int
) -> HttpResponse:
    destination = pages.destination_in_team(
        request.user, tracking_selectors.team_with_role(request.user, team), destination_id
    )
    enabled = request.POST.get("enabled") == "1"
    try:
        services.destination_update(
            destination=destination,
            role=destination.role,
            data={"enabled": enabled},
            actor=request.user,
            ip=request_ip(request),
        )
    except ApplicationError as error:
        if error.status != 400:
            raise
        messages.error(request, f"Could not change {destination.name}: {error.message}")
    else:
        state = "enabled" if enabled else "disabled"
        messages.success(request, f"{destination.name} is {state}.")
    return redirect("alert-destinations", team=team)


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def destination_delete(
    request: AuthenticatedHttpRequest, team: str, destination_id: int
) -> HttpResponse:
    found = tracking_selectors.team_with_role(request.user, team)
    destination = pages.destination_in_team(request.user, found, destination_id)
    require_write(destination.role)
    if request.method == "POST":
        pages.destination_delete(destination, actor=request.user, ip=request_ip(request))
        messages.success(request, f"Deleted the destination {destination.name}.")
        return redirect("alert-destinations", team=found.slug)
    context = {
        "current_team": found,
        "what": f"the destination {destination.name}",
        "consequence": "Rules that send to it stop sending there; its delivery log goes too.",
        "cancel": request.path.rsplit("/", 2)[0] + "/",
    }
    return render(request, "alerts/pages/confirm_delete.html", context)


# --- Alerts ------------------------------------------------------------------------------------


@login_required
@require_GET
@http_errors
def project_alerts(request: AuthenticatedHttpRequest, team: str, project: str) -> HttpResponse:
    found = tracking_selectors.project_at(request.user, team, project)
    context = pages.alerts_page_context(request.user, found, request.GET)
    return render(request, "alerts/pages/alerts.html", context)


@login_required
@require_GET
@http_errors
def all_alerts(request: AuthenticatedHttpRequest) -> HttpResponse:
    context = pages.all_alerts_page_context(request.user, request.GET)
    return render(request, "alerts/pages/all_alerts.html", context)


@login_required
@require_GET
@http_errors
def alert(request: AuthenticatedHttpRequest, alert_id: int) -> HttpResponse:
    found = selectors.alert_get_with_role(request.user, alert_id)
    context = pages.alert_page_context(request.user, found)
    return render(request, "alerts/pages/alert.html", context)


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def alert_act(request: AuthenticatedHttpRequest, token: str) -> HttpResponse:
    """A notification's one-click link (or an alert page's button): GET asks, POST acts.

    GET never changes anything (mail scanners and link previews fetch links).
    A bad or expired link is a page saying so (400, 410); an alert of another
    team is 404 like every alert page; viewers are told they may not (403).
    """
    try:
        link = actions.read_token(token)
    except ApplicationError as error:
        context = {"error": error}
        return render(request, "alerts/pages/act_link.html", context, status=error.status)
    found = selectors.alert_get_with_role(request.user, link.alert_id)
    if request.method == "POST":
        messages.success(
            request, pages.act(found, link.action, actor=request.user, ip=request_ip(request))
        )
        return redirect("alert", alert_id=found.pk)
    context = pages.action_page_context(found, link.action)
    return render(
        request, "alerts/pages/act.html", context, status=200 if context["can_write"] else 403
    )


# --- A metric alert's chart (alerts.snapshot) ---------------------------------------------------


def _png(png: bytes) -> HttpResponse:
    response = HttpResponse(png, content_type="image/png")
    patch_cache_control(response, private=True, max_age=snapshot.CACHE_SECONDS)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_GET
@http_errors
def alert_chart(request: AuthenticatedHttpRequest, alert_id: int) -> HttpResponse:
    """The chart on the alert page: for the members of its team, like the page."""
    png = snapshot.cached_chart_png(selectors.alert_get_for_user(request.user, alert_id))
    if png is None:
        raise Http404("This alert has no chart.")
    return _png(png)


@require_GET
def alert_chart_link(request: HttpRequest, token: str) -> HttpResponse:
    """The chart a message links to, for whoever holds the link (Slack fetches it): the
    signed token is the capability; it shows this alert's chart and nothing else."""
    try:
        png = snapshot.linked_chart(token)
    except snapshot.ChartLinkError as error:
        if error.status == 404:
            raise Http404(error.message) from None
        return HttpResponse(error.message, status=error.status, content_type="text/plain")
    response = _png(png)
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


# --- Rules -------------------------------------------------------------------------------------


@login_required
@require_GET
@http_errors
def rules(request: AuthenticatedHttpRequest, team: str, project: str) -> HttpResponse:
    found = tracking_selectors.project_at(request.user, team, project)
    context = pages.rules_page_context(request.user, found)
    return render(request, "alerts/pages/rules.html", context)


def _rule_page(
    request: AuthenticatedHttpRequest, project: ProjectWithRole, rule: RuleWithRole | None
) -> HttpResponse:
    form = pages.rule_form(rule)
    if request.method == "POST":
        require_write(project.role)
        saved, form = forms.submit(
            lambda: pages.rule_save(
                request.user, project, rule, request.POST, ip=request_ip(request)
            ),
            pages.posted_rule_form(request.POST),
            fields=pages.RULE_FIELDS,
        )
        if saved is not None:
            messages.success(request, f"Saved the rule {saved.name}.")
            _warn_if_nobody(request, saved)
            return redirect("alert-rules", team=project.team.slug, project=project.slug)
    context = pages.rule_page_context(request.user, project, form=form, rule=rule)
    return render(request, "alerts/pages/rule.html", context, status=forms.status(form))


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def rule_new(request: AuthenticatedHttpRequest, team: str, project: str) -> HttpResponse:
    found = tracking_selectors.project_at(request.user, team, project)
    require_write(found.role)  # viewers see the rules, not an empty form
    return _rule_page(request, found, None)


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def rule_edit(
    request: AuthenticatedHttpRequest, team: str, project: str, rule_id: int
) -> HttpResponse:
    found = tracking_selectors.project_at(request.user, team, project)
    return _rule_page(request, found, pages.rule_in_project(request.user, found, rule_id))


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def rule_delete(
    request: AuthenticatedHttpRequest, team: str, project: str, rule_id: int
) -> HttpResponse:
    found = tracking_selectors.project_at(request.user, team, project)
    rule = pages.rule_in_project(request.user, found, rule_id)
    require_write(rule.role)
    if request.method == "POST":
        pages.rule_delete(rule, actor=request.user, ip=request_ip(request))
        messages.success(request, f"Deleted the rule {rule.name}.")
        return redirect("alert-rules", team=found.team.slug, project=found.slug)
    context = {
        "current_team": found.team,
        "what": f"the rule {rule.name}",
        "consequence": "Its alerts and their delivery log are deleted too.",
        "cancel": request.path.rsplit("/", 2)[0] + "/",
    }
    return render(request, "alerts/pages/confirm_delete.html", context)


# --- Silences ----------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def silences(request: AuthenticatedHttpRequest, team: str, project: str) -> HttpResponse:
    found = tracking_selectors.project_at(request.user, team, project)
    form = pages.silence_form()
    if request.method == "POST":
        require_write(found.role)
        created, form = forms.submit(
            lambda: pages.silence_create(request.user, found, request.POST),
            pages.silence_form(request.POST),
            fields=pages.SILENCE_FIELDS,
        )
        if created is not None:
            messages.success(request, "Silenced.")
            return redirect("alert-silences", team=found.team.slug, project=found.slug)
    context = pages.silences_page_context(request.user, found, form=form)
    return render(request, "alerts/pages/silences.html", context, status=forms.status(form))


@login_required
@require_POST
@http_errors
def silence_end(
    request: AuthenticatedHttpRequest, team: str, project: str, silence_id: int
) -> HttpResponse:
    found = tracking_selectors.project_at(request.user, team, project)
    silence = pages.silence_in_project(request.user, found, silence_id)
    pages.silence_end(silence, found)
    messages.success(request, "Ended the silence.")
    return redirect("alert-silences", team=found.team.slug, project=found.slug)


# --- My alerts: the user's personal alerts (alerts.personal) ------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def my_alerts(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Each their own: the settings and alerts of the logged-in user, nobody else's."""
    form = pages.my_alerts_form(request.user)
    if request.method == "POST":
        saved, form = forms.submit(
            lambda: pages.my_alerts_save(request.user, request.POST),
            pages.my_alerts_posted_form(request.POST),
            fields=pages.MY_ALERTS_FIELDS,
        )
        if saved is not None:
            messages.success(request, "Your alerts were saved.")
            return redirect("settings-alerts")
    context = pages.my_alerts_page_context(request.user, form)
    return render(request, "alerts/pages/my_alerts.html", context, status=forms.status(form))


@login_required
@require_POST
@http_errors
def my_alerts_test(request: AuthenticatedHttpRequest) -> HttpResponse:
    try:
        results = pages.my_alerts_test(request.user)
    except ApplicationError as error:
        if error.status != 400:
            raise
        messages.error(request, error.message)
    else:
        for sent, sentence in results:
            (messages.success if sent else messages.error)(request, sentence)
    return redirect("settings-alerts")
