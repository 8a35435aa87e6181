"""The team page (projects, recent runs, runs needing attention, a new project) and the top bar."""

from __future__ import annotations

import pytest

from tests.conftest import World
from tracking import services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Project, Role, Run

URL = "/acme/"
NEW_PROJECT_FORM = 'data-form="new-project"'


def _login(client, world: World, persona: str):
    client.force_login(world.persona(persona).user)
    return client


def _get(client, url: str = URL) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def _run(world: World, name: str, project: Project | None = None, **fields) -> Run:
    project = project or world.project
    return services.run_create(user=world.owner.user, project=project, name=name, **fields)


@pytest.mark.parametrize("persona", ["owner", "editor", "viewer"])
def test_it_shows_members_the_projects_with_run_counts(client, world, persona):
    _run(world, "a")
    _run(world, "b")
    services.project_create(
        user=world.owner.user, team_slug="acme", slug="cifar", description="Ten"
    )
    page = _get(_login(client, world, persona))
    assert 'href="/acme/mnist/"' in page
    assert "2 runs" in page
    assert 'href="/acme/cifar/"' in page
    assert "0 runs" in page
    assert "Ten" in page
    assert 'href="/acme/mnist/settings/"' in page
    assert f"your role: {getattr(Role, persona.upper())}" in page


def test_it_hides_the_team_from_outsiders(client, world):
    _login(client, world, "outsider")
    assert client.get(URL).status_code == 404
    assert client.get("/no-such-team/").status_code == 404


def test_it_redirects_anonymous_visitors_to_login(client, world):
    for response in (client.get(URL), client.post(URL, {"name": "x"})):
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    assert not Project.objects.filter(slug="x").exists()


def test_it_lists_recent_runs_of_this_team_only(client, world):
    run = _run(world, "visible-run")
    rival = services.project_create(user=world.outsider.user, team_slug="rival", slug="x")
    services.run_create(user=world.outsider.user, project=rival, name="rival-run")
    beta = services.team_create(slug="beta", owner=world.viewer.user)
    other = services.project_create(user=world.viewer.user, team_slug=beta.slug, slug="p")
    services.run_create(user=world.viewer.user, project=other, name="other-team-run")
    page = _get(_login(client, world, "viewer"))
    assert f'href="/acme/mnist/runs/{run.pk}"' in page
    assert "rival-run" not in page
    assert "other-team-run" not in page  # the viewer's other team has its own page
    assert "other-team-run" in _get(client, "/beta/")


def test_it_flags_failed_runs_of_the_team(client, world):
    failed = _run(world, "boom")
    services.run_update(run=failed, data={"status": "failed", "error": "ValueError: boom"})
    _run(world, "healthy")
    page = _get(_login(client, world, "viewer"))
    attention = page.split("Needs attention")[1].split("Recent runs")[0]
    assert "boom" in attention
    assert "ValueError: boom" in attention
    assert "healthy" not in attention


def test_it_says_so_when_the_team_is_empty(client, world):
    services.team_create(slug="fresh", owner=world.owner.user)
    page = _get(_login(client, world, "owner"), "/fresh/")
    assert "No projects in fresh yet" in page
    assert "Nothing needs attention in fresh" in page
    assert "No runs in fresh yet" in page


@pytest.mark.parametrize("persona", ["owner", "editor"])
def test_it_offers_writers_a_new_project_form(client, world, persona):
    assert NEW_PROJECT_FORM in _get(_login(client, world, persona))


def test_it_offers_viewers_no_form(client, world):
    page = _get(_login(client, world, "viewer"))
    assert NEW_PROJECT_FORM not in page
    assert 'action="/acme/"' not in page
    # only "Log out" in the user menu (and the email banner's Dismiss: carol has no address)
    assert page.count("<form") - page.count('data-form="email-banner"') == 1


def test_it_creates_a_project_and_goes_to_it(client, world):
    _login(client, world, "editor")
    response = client.post(URL, {"name": "cifar", "description": "Ten classes"}, follow=True)
    assert response.redirect_chain == [("/acme/cifar/", 302)]
    project = Project.objects.get(team=world.team, slug="cifar")
    assert (project.description, project.created_by) == ("Ten classes", world.editor.user)
    assert "Created project acme/cifar." in response.content.decode()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "This field is required"),
        ("bad name", "Use letters, digits"),
        ("mnist", "already exists"),
    ],
)
def test_it_shows_a_bad_name_next_to_the_field(client, world, name, message):
    _login(client, world, "owner")
    response = client.post(URL, {"name": name, "description": "kept"})
    assert response.status_code == 400
    page = response.content.decode()
    error = page.split('id="new-project-name-error"')[1].split("</p>")[0]
    assert message in error
    assert 'value="kept"' in page  # what was typed is kept
    assert Project.objects.filter(team=world.team).count() == 1


def test_it_refuses_a_viewer_creating_a_project(client, world):
    _login(client, world, "viewer")
    assert client.post(URL, {"name": "sneaky"}).status_code == 403
    assert not Project.objects.filter(slug="sneaky").exists()


def test_it_refuses_an_outsider_creating_a_project(client, world):
    _login(client, world, "outsider")
    assert client.post(URL, {"name": "sneaky"}).status_code == 404
    assert not Project.objects.filter(slug="sneaky").exists()


# --- Top bar --------------------------------------------------------------------------


def test_the_top_bar_lists_my_teams_and_shows_the_current_one(client, world):
    services.team_create(slug="beta", owner=world.viewer.user)
    page = _get(_login(client, world, "viewer"))
    switcher = page.split('class="menu team-switcher"')[1].split("</details>")[0]
    assert '<span class="visually-hidden">Team: </span>acme</summary>' in switcher
    assert '<a href="/acme/" aria-current="true">acme' in switcher
    assert '<a href="/beta/">beta' in switcher
    assert "rival" not in switcher


def test_the_user_menu_links_settings_docs_and_logs_out(client, world):
    page = _get(_login(client, world, "viewer"), "/")
    menu = page.split('class="menu user-menu"')[1].split("</details>")[0]
    assert "carol</summary>" in menu
    for href in ("/settings/tokens/", "/password/", "/settings/teams/acme/", "/api/docs/"):
        assert f'href="{href}"' in menu
    assert '<form class="menu-section" method="post" action="/logout/">' in menu
    assert "csrfmiddlewaretoken" in menu


def test_the_top_bar_has_no_menus_for_anonymous_visitors(client, world, django_assert_num_queries):
    with django_assert_num_queries(0):
        page = _get(client, "/login/")
    assert "team-switcher" not in page
    assert "user-menu" not in page


def test_the_team_switcher_says_when_i_have_no_team(client, world):
    lonely, _ = services.user_get_or_create(username="lonely")
    client.force_login(lonely)
    assert "You are not in a team yet" in _get(client, "/")


# --- Query counts ----------------------------------------------------------------------

# session, user, team (+ role), projects with counts, recent runs, attention, teams in the top bar
TEAM_QUERIES = 7


def _grow(world: World, start: int, stop: int) -> None:
    for i in range(start, stop):
        project = services.project_create(user=world.owner.user, team_slug="acme", slug=f"p{i}")
        run = _run(world, f"run-{i}", project=project, tags=["x"])
        metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1.0)])
        if i % 2:
            services.run_update(run=run, data={"status": "failed", "error": "boom"})


def test_it_costs_the_same_queries_for_3_and_30_projects(client, world, django_assert_num_queries):
    _login(client, world, "viewer")
    _grow(world, 0, 3)
    with django_assert_num_queries(TEAM_QUERIES):
        _get(client)
    _grow(world, 3, 30)
    with django_assert_num_queries(TEAM_QUERIES):
        page = _get(client)
    assert "p29" in page
