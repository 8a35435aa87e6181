"""The team page and the settings pages: thin views over ``workspace.team_pages``.

Every view answers 404 to outsiders (the selectors raise ``NotFound``) and
403 to a member whose role may not make the change; a bad input shows the
page again with status 400 and the error next to its field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kernel import forms
from kernel.errors import ApplicationError
from kernel.http import AuthenticatedHttpRequest, http_errors, request_ip
from tracking import invitations, selectors, services
from workspace import team_pages

if TYPE_CHECKING:
    from tracking.models import TeamInvitation, TeamWithRole


# --- Team page ---------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def team(request: AuthenticatedHttpRequest, team: str) -> HttpResponse:
    found = selectors.team_with_role(request.user, team)
    form = forms.Form()
    if request.method == "POST":
        services.require_write(found.role)
        project, form = forms.submit(
            lambda: team_pages.project_create(request.user, found, request.POST),
            request.POST,
            fields=team_pages.PROJECT_FIELDS,
        )
        if project is not None:
            messages.success(request, f"Created project {project.full_name}.")
            return redirect(project.get_absolute_url())
    context = team_pages.team_page_context(request.user, found, form=form)
    return render(request, "workspace/team.html", context, status=forms.status(form))


@login_required
@require_http_methods(["GET", "POST"])
def team_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Anyone logged in may start a team; they become its owner."""
    form = forms.Form()
    if request.method == "POST":
        created, form = forms.submit(
            lambda: team_pages.team_create(request.user, request.POST),
            request.POST,
            fields=team_pages.TEAM_FIELDS,
        )
        if created is not None:
            messages.success(request, f"Created the team {created.slug}: add its members next.")
            return redirect("team", team=created.slug)
    context = {"section": "new-team", "form": form}
    return render(request, "workspace/settings/team_new.html", context, status=forms.status(form))


# --- Settings: API tokens ------------------------------------------------------------


@never_cache  # the page may show a new token: keep it out of the browser's cache
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = forms.Form()
    if request.method == "POST":
        _, form = forms.submit(
            lambda: team_pages.token_create(
                request.user, request.session, request.POST, ip=request_ip(request)
            ),
            request.POST,
            fields=team_pages.TOKEN_FIELDS,
        )
        if not form.errors:
            return redirect("settings-tokens")
    context = team_pages.tokens_page_context(
        request.user,
        new_token=team_pages.new_token_pop(request.session) if not form.errors else None,
        form=form,
        api_url=request.build_absolute_uri(reverse("api-teams")),
    )
    return render(request, "workspace/settings/tokens.html", context, status=forms.status(form))


@login_required
@require_POST
@http_errors
def token_revoke(request: AuthenticatedHttpRequest, token_id: int) -> HttpResponse:
    token = selectors.token_get_for_user(request.user, token_id)
    services.token_revoke(token=token, ip=request_ip(request))
    messages.success(request, f"Revoked the token {token.name}: it no longer works.")
    return redirect("settings-tokens")


# --- Settings: team members --------------------------------------------------------------


def _members_page(
    request: HttpRequest,
    found: TeamWithRole,
    form: forms.Form,
    row_error: team_pages.RowError | None = None,
) -> HttpResponse:
    context = team_pages.members_page_context(found, form=form, row_error=row_error)
    status = 400 if form.errors or row_error else 200
    return render(request, "workspace/settings/team.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def team_members(request: AuthenticatedHttpRequest, team: str) -> HttpResponse:
    found = selectors.team_with_role(request.user, team)
    form = forms.Form(values={"role": "editor"})
    if request.method == "POST":
        services.require_owner(found.role)
        invitation, form = forms.submit(
            lambda: team_pages.member_invite(
                found, request.POST, actor=request.user, ip=request_ip(request)
            ),
            request.POST,
            fields=team_pages.MEMBER_FIELDS,
        )
        if invitation is not None:
            # The same words whether or not an account answers to the name (issue 16 #6).
            messages.success(request, f"Invitation sent to {invitation.invited_as}.")
            return redirect("settings-team", team=found.slug)
    return _members_page(request, found, form)


@login_required
@require_POST
@http_errors
def invitation_revoke(
    request: AuthenticatedHttpRequest, team: str, invitation_id: int
) -> HttpResponse:
    found = selectors.team_with_role(request.user, team)
    services.require_owner(found.role)
    invitation = invitations.invitation_get_for_team(found, invitation_id)
    try:
        invitations.invitation_revoke(
            invitation=invitation, actor=request.user, ip=request_ip(request)
        )
    except invitations.InvitationClosed as error:
        messages.error(request, error.message)
        return redirect("settings-team", team=found.slug)
    messages.success(request, f"Withdrew the invitation of {invitation.invited_as}.")
    return redirect("settings-team", team=found.slug)


# --- Settings: my invitations ------------------------------------------------------------------


@login_required
@require_GET
def my_invitations(request: AuthenticatedHttpRequest) -> HttpResponse:
    context = team_pages.my_invitations_context(request.user)
    return render(request, "workspace/settings/invitations.html", context)


@never_cache  # the address holds the link's token
@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def invitation(request: AuthenticatedHttpRequest, code: str) -> HttpResponse:
    """The emailed link: the offer, and Accept and Decline (a POST with ``answer``).

    GET changes nothing. An invitation to an email address is answered here
    only, by whichever account is logged in: the page names that account.
    """
    try:
        found = invitations.invitation_get_by_token(request.user, code)
    except invitations.NotYours as not_yours:
        return _invitation_page(request, None, not_yours.message, status=403, by_link=True)
    if request.method == "POST":
        return _answer(request, found, team_pages.link_answer(request.POST), by_link=True)
    error = "" if found.state == "pending" else invitations.InvitationClosed(found).message
    return _invitation_page(request, found, error, status=409 if error else 200, by_link=True)


def _invitation_page(
    request: AuthenticatedHttpRequest,
    found: TeamInvitation | None,
    error: str,
    *,
    status: int,
    by_link: bool,
) -> HttpResponse:
    """The offer; its buttons only on the link's own page, while the invitation is pending."""
    link = request.path if by_link else ""
    context = team_pages.invitation_page_context(request, found, error, link=link)
    return render(request, "workspace/settings/invitation.html", context, status=status)


def _answer(
    request: AuthenticatedHttpRequest,
    found: TeamInvitation,
    answer: str | None,
    *,
    by_link: bool = False,
) -> HttpResponse:
    """Accept or decline ``found``, already checked to be the user's to answer."""
    if answer not in team_pages.ANSWERS:
        message = "Press Accept or Decline."
        return _invitation_page(request, found, message, status=400, by_link=by_link)
    try:
        if answer == "accept":
            invitations.invitation_accept(
                invitation=found, user=request.user, ip=request_ip(request), by_link=by_link
            )
        else:
            invitations.invitation_decline(invitation=found, user=request.user)
    except ApplicationError as error:
        if error.status == 404:
            raise
        found.refresh_from_db()  # a refused accept rolled back what it had stamped
        return _invitation_page(request, found, error.message, status=error.status, by_link=by_link)
    if answer == "accept":
        messages.success(request, f"You joined {found.team.slug} as {found.role}.")
        return redirect("team", team=found.team.slug)
    messages.success(request, f"You declined the invitation to {found.team.slug}.")
    return redirect("settings-invitations")


@login_required
@require_POST
@http_errors
def invitation_accept(request: AuthenticatedHttpRequest, invitation_id: int) -> HttpResponse:
    found = invitations.invitation_get_for_user(request.user, invitation_id)
    return _answer(request, found, "accept")


@login_required
@require_POST
@http_errors
def invitation_decline(request: AuthenticatedHttpRequest, invitation_id: int) -> HttpResponse:
    found = invitations.invitation_get_for_user(request.user, invitation_id)
    return _answer(request, found, "decline")


@login_required
@require_POST
@http_errors
def member_role(request: AuthenticatedHttpRequest, team: str, user_id: int) -> HttpResponse:
    found = selectors.team_with_role(request.user, team)
    services.require_owner(found.role)
    membership = selectors.membership_get(found, user_id)
    changed, form = forms.submit(
        lambda: services.membership_role_change(
            membership=membership,
            role=request.POST.get("role", ""),
            actor=request.user,
            ip=request_ip(request),
        ),
        request.POST,
        fields=("role",),
    )
    if changed is None:
        row_error = team_pages.RowError(user_id, form.message)
        return _members_page(request, found, forms.Form(), row_error)
    name = membership.user.get_username()
    messages.success(request, f"{name} is now {changed.role} in {found.slug}.")
    return redirect("settings-team", team=found.slug)


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def member_remove(request: AuthenticatedHttpRequest, team: str, user_id: int) -> HttpResponse:
    """The confirmation page; only its button (a POST with ``confirm=yes``) removes."""
    found = selectors.team_with_role(request.user, team)
    services.require_owner(found.role)
    membership = selectors.membership_get(found, user_id)
    if request.method == "GET" or request.POST.get("confirm") != team_pages.CONFIRM_REMOVE:
        context = team_pages.member_remove_context(found, membership, you=request.user)
        return render(request, "workspace/settings/member_remove.html", context)
    _, form = forms.submit(
        lambda: services.membership_remove(
            team=found, user=membership.user, actor=request.user, ip=request_ip(request)
        ),
        request.POST,
        fields=("role",),
    )
    if form.errors:
        row_error = team_pages.RowError(user_id, form.message)
        return _members_page(request, found, forms.Form(), row_error)
    if membership.user_id == request.user.pk:
        messages.success(request, f"You left {found.slug}.")
        return redirect("home")
    messages.success(request, f"Removed {membership.user.get_username()} from {found.slug}.")
    return redirect("settings-team", team=found.slug)


# --- Settings: project ----------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@http_errors
def project_settings(request: AuthenticatedHttpRequest, team: str, project: str) -> HttpResponse:
    found = selectors.project_at(request.user, team, project)
    form = team_pages.project_form(found)
    if request.method == "POST":
        services.require_write(found.role)
        updated, form = forms.submit(
            lambda: team_pages.project_update(found, request.POST),
            request.POST,
            fields=team_pages.PROJECT_FIELDS,
        )
        if updated is not None:
            messages.success(request, f"Saved the settings of {updated.full_name}.")
            return redirect("project-settings", team=updated.team.slug, project=updated.slug)
    context = team_pages.project_settings_context(found, form=form)
    return render(request, "workspace/settings/project.html", context, status=forms.status(form))


@login_required
@require_POST
@http_errors
def project_delete(request: AuthenticatedHttpRequest, team: str, project: str) -> HttpResponse:
    found = selectors.project_at(request.user, team, project)
    services.require_owner(found.role)
    runs, delete_form = forms.submit(
        lambda: team_pages.project_delete(found, request.POST),
        request.POST,
        fields=("confirm",),
    )
    if delete_form.errors:
        context = team_pages.project_settings_context(
            found, form=team_pages.project_form(found), delete_form=delete_form
        )
        return render(request, "workspace/settings/project.html", context, status=400)
    deleted = f"{runs} run{pluralize(runs)}"
    messages.success(request, f"Deleted project {found.full_name} and its {deleted}.")
    return redirect("team", team=found.team.slug)
