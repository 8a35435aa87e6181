"""The error pages say what happened and where to go, in the site's own frame: 404, 403 and
400 pages with the top bar, the 500 page even without a request (Django renders it bare)."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.test import Client

from tracking import services


def test_a_missing_page_says_so_and_leads_home(client: Client, world) -> None:
    client.force_login(world.viewer.user)
    response = client.get("/acme/no-such-project/")
    assert response.status_code == 404
    page = response.content.decode()
    assert '<p class="error-code">404</p>' in page
    # the address is not echoed: a 404 must read the same whatever it named (an outsider
    # cannot tell acme's objects from missing ones, tests/security/test_authorization_matrix.py)
    assert "Page not found" in page and "no-such-project" not in page
    assert '<a class="button" href="/">Go to your projects</a>' in page
    assert 'class="topbar"' in page and "labbook.css" in page


def test_a_stranger_is_offered_the_login(client: Client, db) -> None:
    response = client.get("/s/nothing/here/at/all")
    assert response.status_code == 404
    assert '<a class="button" href="/login/?next=/s/nothing/here/at/all">Log in</a>' in (
        response.content.decode()
    )


def test_a_refused_action_says_why(client: Client, world) -> None:
    run = services.run_create(user=world.owner.user, project=world.project, name="r")
    client.force_login(world.viewer.user)  # a viewer may not edit a run's notes
    response = client.post(f"/acme/mnist/runs/{run.pk}", {"notes": "mine"})
    assert response.status_code == 403
    page = response.content.decode()
    assert '<p class="error-code">403</p>' in page and "You cannot do this here" in page
    assert "A team owner can change your role." in page


def test_the_500_page_needs_no_request() -> None:
    page = render_to_string("500.html")  # as django.views.defaults.server_error renders it
    assert "Something went wrong on our side" in page
    assert '<a class="button" href="/">Go to your projects</a>' in page
