"""The profile page and the email banner's Dismiss: thin views over ``workspace.accounts``."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from kernel import forms
from kernel.http import AuthenticatedHttpRequest
from workspace import accounts


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = accounts.profile_form(request.user)
    if request.method == "POST":
        saved, form = forms.submit(
            lambda: accounts.profile_save(request.user, request.POST),
            request.POST,
            fields=accounts.PROFILE_FIELDS,
        )
        if saved is not None:
            messages.success(request, "Your profile was saved.")
            return redirect("settings-profile")
    context = accounts.profile_page_context(form)
    return render(request, "workspace/settings/profile.html", context, status=forms.status(form))


@login_required
@require_POST
def email_banner_dismiss(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Hide "Add your email" until the next login; back to the page it was on.

    The page is known from the Referer (sent to the same origin): the banner
    carries no address of its own, so it reads the same on every page.
    """
    accounts.email_banner_dismiss(request)
    back = request.headers.get("Referer", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "/"
    return redirect(back)
