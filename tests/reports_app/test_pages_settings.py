"""The settings pages: API tokens, team members and project settings.

Each page is checked for every persona; every POST is also sent by the roles
that may not make it, which must be refused and change nothing.
"""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from tests.conftest import World
from tracking import services
from tracking.ingest import Point, metrics_ingest
from tracking.models import (
    ApiToken,
    Membership,
    MetricSeries,
    Project,
    Role,
    Run,
    TeamInvitation,
)
from workspace.team_pages import NEW_TOKEN_KEY

TOKENS = "/settings/tokens/"
MEMBERS = "/settings/teams/acme/"
PROJECT = "/acme/mnist/settings/"
DELETE = "/acme/mnist/settings/delete"
NON_OWNERS = [("editor", 403), ("viewer", 403), ("outsider", 404)]  # members 403, others 404
RAW_TOKEN = re.compile(r'id="new-token-value" class="token-value" value="(lb_[^"]+)"')


def _login(client, world: World, persona: str):
    client.force_login(world.persona(persona).user)
    return client


def _get(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def _field_error(page: str, error_id: str) -> str:
    return page.split(f'id="{error_id}"')[1].split("</p>")[0]


def _only_the_logout_form(page: str) -> bool:
    # The email banner's Dismiss (the personas have no address) is the user's own, like Log out.
    forms = page.count("<form") - page.count('data-form="email-banner"')
    return forms == 1 and 'action="/logout/"' in page


def _role(world: World, user) -> str | None:
    memberships = Membership.objects.filter(team=world.team, user=user)
    return memberships.values_list("role", flat=True).first()


def _teams_status(raw: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/v1/teams").status_code


@pytest.mark.parametrize("url", [TOKENS, MEMBERS, PROJECT])
def test_it_redirects_anonymous_visitors_to_login(client, world, url):
    for response in (client.get(url), client.post(url, {"name": "x"})):
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


def test_it_sends_settings_to_the_tokens_page(client, world):
    response = _login(client, world, "viewer").get("/settings/")
    assert (response.status_code, response["Location"]) == (302, TOKENS)


# --- API tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["owner", "editor", "viewer", "outsider"])
def test_it_lists_my_tokens_only(client, world, persona):
    page = _get(_login(client, world, persona), TOKENS)
    mine = world.persona(persona)
    token = ApiToken.objects.get(user=mine.user)
    assert f'<tr data-token-id="{token.pk}">' in page
    assert f"<code>{token.prefix}…</code>" in page
    assert "never" in page  # not used yet
    assert '<span class="pill pill-active">active</span>' in page
    assert page.count("<tr data-token-id=") == 1
    assert mine.token not in page  # only the prefix, ever


def test_it_shows_a_new_token_once(client, world):
    _login(client, world, "owner")
    response = client.post(TOKENS, {"name": "training box"})
    assert (response.status_code, response["Location"]) == (302, TOKENS)

    page = _get(client, TOKENS)
    raw = RAW_TOKEN.search(page).group(1)
    assert "Your new token “training box”" in page
    assert 'data-copy="new-token-value"' in page  # the copy button
    assert f'curl -H "Authorization: Bearer {raw}" http://testserver/api/v1/teams' in page
    assert "labbook/settings.js" in page
    assert NEW_TOKEN_KEY not in client.session

    again = _get(client, TOKENS)
    assert raw not in again
    assert "data-new-token" not in again
    assert "training box" in again  # listed, without its secret
    assert _teams_status(raw) == 200


def test_it_keeps_the_page_with_a_new_token_out_of_caches(client, world):
    _login(client, world, "owner").post(TOKENS, {"name": "ci"})
    response = client.get(TOKENS)
    assert "no-store" in response["Cache-Control"]


def test_it_stores_only_a_hash_of_the_token(client, world):
    _login(client, world, "owner").post(TOKENS, {"name": "ci"})
    raw = RAW_TOKEN.search(_get(client, TOKENS)).group(1)
    token = ApiToken.objects.get(name="ci")
    assert raw not in (token.key_hash, token.prefix)
    assert token.key_hash == services.token_hash(raw)


def test_it_wants_a_token_name(client, world):
    _login(client, world, "owner")
    response = client.post(TOKENS, {"name": "   "})
    assert response.status_code == 400
    page = response.content.decode()
    assert "may not be blank" in _field_error(page, "token-name-error")
    assert 'aria-invalid="true"' in page
    assert ApiToken.objects.filter(user=world.owner.user).count() == 1


def test_it_shows_when_a_token_was_last_used(client, world):
    assert _teams_status(world.owner.token) == 200
    page = _get(_login(client, world, "owner"), TOKENS)
    assert "never" not in page
    assert "minutes ago" in page.split("<tbody>")[1]


def test_it_revokes_a_token_which_then_stops_working(client, world):
    token = ApiToken.objects.get(user=world.owner.user)
    _login(client, world, "owner")
    response = client.post(f"/settings/tokens/{token.pk}/revoke", follow=True)
    assert response.redirect_chain == [(TOKENS, 302)]
    page = response.content.decode()
    assert "Revoked the token alice&#x27;s laptop" in page
    assert "pill-revoked" in page
    assert f'action="/settings/tokens/{token.pk}/revoke"' not in page
    assert _teams_status(world.owner.token) == 401


def test_it_hides_other_peoples_tokens_from_revoke(client, world):
    theirs = ApiToken.objects.get(user=world.outsider.user)
    _login(client, world, "owner")
    assert client.post(f"/settings/tokens/{theirs.pk}/revoke").status_code == 404
    assert client.post("/settings/tokens/999999/revoke").status_code == 404
    assert _teams_status(world.outsider.token) == 200


def test_it_revokes_only_by_post(client, world):
    token = ApiToken.objects.get(user=world.owner.user)
    _login(client, world, "owner")
    assert client.get(f"/settings/tokens/{token.pk}/revoke").status_code == 405
    assert _teams_status(world.owner.token) == 200


def test_it_says_so_when_i_have_no_tokens(client, world):
    ApiToken.objects.filter(user=world.viewer.user).delete()
    assert "You have no API tokens yet" in _get(_login(client, world, "viewer"), TOKENS)


# --- Team members ------------------------------------------------------------------------

INVITE_FORM = 'data-form="invite-member"'


@pytest.mark.parametrize("persona", ["owner", "editor", "viewer"])
def test_it_lists_the_members_with_their_roles(client, world, persona):
    page = _get(_login(client, world, persona), MEMBERS)
    table = page.split('<table class="table members">')[1]
    assert re.findall(r"<strong>(\w+)</strong>", table) == ["alice", "bob", "carol"]


def test_it_hides_the_members_from_outsiders(client, world):
    _login(client, world, "outsider")
    assert client.get(MEMBERS).status_code == 404
    assert client.get("/settings/teams/nope/").status_code == 404


def test_it_gives_owners_the_member_controls(client, world):
    page = _get(_login(client, world, "owner"), MEMBERS)
    assert INVITE_FORM in page
    bob = world.editor.user.pk
    assert f'action="/settings/teams/acme/members/{bob}/role"' in page
    assert f'href="/settings/teams/acme/members/{bob}/remove"' in page  # a confirmation page
    assert '<option value="editor" selected>Editor</option>' in page


@pytest.mark.parametrize("persona", ["editor", "viewer"])
def test_it_shows_other_members_a_read_only_list(client, world, persona):
    page = _get(_login(client, world, persona), MEMBERS)
    assert INVITE_FORM not in page
    assert "/members/" not in page
    assert "<select" not in page
    assert _only_the_logout_form(page)
    assert "only its owners can invite, change or remove members" in page
    assert '<span class="pill pill-owner">owner</span>' in page


def test_it_invites_rather_than_adds_a_member_by_username(client, world):
    dave, _ = services.user_get_or_create(username="dave")
    _login(client, world, "owner")
    response = client.post(MEMBERS, {"member": "dave", "role": "viewer"}, follow=True)
    assert response.redirect_chain == [(MEMBERS, 302)]
    page = response.content.decode()
    assert "Invitation sent to dave." in page
    assert re.findall(r"<td>([^<]+)</td>", page.split('class="table invitations"')[1]) == [
        "dave",
        "alice",
    ]
    assert _role(world, dave) is None  # not until dave accepts
    invitation = TeamInvitation.objects.get(team=world.team)
    assert (invitation.invited_as, invitation.user, invitation.role) == ("dave", dave, "viewer")


def test_it_invites_an_email_address_lowercased(client, world):
    _login(client, world, "owner").post(MEMBERS, {"member": "Dave@Example.com", "role": "editor"})
    invitation = TeamInvitation.objects.get(team=world.team)
    assert (invitation.invited_as, invitation.email, invitation.user) == (
        "dave@example.com",
        "dave@example.com",
        None,
    )


@pytest.mark.parametrize(
    ("data", "error_id", "message"),
    [
        ({"member": "", "role": "editor"}, "member-name-error", "Enter a username or an email"),
        ({"member": "carol", "role": "editor"}, "member-name-error", "already a member"),
        ({"member": "not@an@email", "role": "editor"}, "member-name-error", "not an email"),
        ({"member": "mallory", "role": "admin"}, "member-role-error", "Role must be one of"),
    ],
)
def test_it_shows_a_bad_member_next_to_the_field(client, world, data, error_id, message):
    _login(client, world, "owner")
    response = client.post(MEMBERS, data)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in _field_error(page, error_id)
    assert f'value="{data["member"]}"' in page
    assert not TeamInvitation.objects.exists()
    assert _role(world, world.viewer.user) == Role.VIEWER


def test_it_changes_a_members_role(client, world):
    _login(client, world, "owner")
    url = f"/settings/teams/acme/members/{world.viewer.user.pk}/role"
    response = client.post(url, {"role": "editor"}, follow=True)
    assert response.redirect_chain == [(MEMBERS, 302)]
    assert "carol is now editor in acme." in response.content.decode()
    assert _role(world, world.viewer.user) == Role.EDITOR


def test_it_removes_a_member(client, world):
    _login(client, world, "owner")
    url = f"/settings/teams/acme/members/{world.editor.user.pk}/remove"
    response = client.post(url, {"confirm": "yes"})
    assert (response.status_code, response["Location"]) == (302, MEMBERS)
    assert _role(world, world.editor.user) is None


def test_it_keeps_the_last_owner(client, world):
    owner = world.owner.user.pk
    _login(client, world, "owner")
    for action, data in (("role", {"role": "viewer"}), ("remove", {"confirm": "yes"})):
        response = client.post(f"/settings/teams/acme/members/{owner}/{action}", data)
        assert response.status_code == 400
        error = _field_error(response.content.decode(), f"row-error-{owner}")
        assert "alice is the last owner of acme: make another member an owner first." in error
    assert _role(world, world.owner.user) == Role.OWNER


def test_an_owner_may_leave_when_another_owner_remains(client, world):
    services.membership_set(team=world.team, user=world.editor.user, role=Role.OWNER)
    _login(client, world, "owner")
    url = f"/settings/teams/acme/members/{world.owner.user.pk}/remove"
    response = client.post(url, {"confirm": "yes"})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert _role(world, world.owner.user) is None
    assert client.get(MEMBERS).status_code == 404


@pytest.mark.parametrize(("persona", "status"), NON_OWNERS)
def test_it_refuses_member_changes_by_non_owners(client, world, persona, status):
    dave, _ = services.user_get_or_create(username="dave")
    _login(client, world, persona)
    viewer = world.viewer.user.pk
    assert client.post(MEMBERS, {"member": "dave", "role": "owner"}).status_code == status
    assert not TeamInvitation.objects.exists()
    assert client.post(f"{MEMBERS}members/{viewer}/role", {"role": "owner"}).status_code == status
    remove = f"{MEMBERS}members/{viewer}/remove"
    assert client.get(remove).status_code == status
    assert client.post(remove, {"confirm": "yes"}).status_code == status
    assert _role(world, dave) is None
    assert _role(world, world.viewer.user) == Role.VIEWER


def test_it_finds_no_member_outside_the_team(client, world):
    _login(client, world, "owner")
    outsider = world.outsider.user.pk
    assert client.post(f"{MEMBERS}members/{outsider}/role", {"role": "viewer"}).status_code == 404
    assert client.post(f"{MEMBERS}members/{outsider}/remove", {"confirm": "yes"}).status_code == 404
    rival_owner = f"/settings/teams/rival/members/{outsider}/remove"
    assert client.get(rival_owner).status_code == 404
    assert client.post(rival_owner, {"confirm": "yes"}).status_code == 404
    assert Membership.objects.filter(team=world.rival, user_id=outsider).exists()


# session, user, team (+ role), members with their users, pending invitations, teams in the top bar
MEMBERS_QUERIES = 6


def test_it_costs_the_same_queries_for_3_and_30_members(client, world, django_assert_num_queries):
    _login(client, world, "owner")
    with django_assert_num_queries(MEMBERS_QUERIES):
        _get(client, MEMBERS)
    for i in range(27):
        user, _ = services.user_get_or_create(username=f"member{i}")
        services.membership_add(team=world.team, user=user, role=Role.VIEWER)
    with django_assert_num_queries(MEMBERS_QUERIES):
        page = _get(client, MEMBERS)
    assert "member26" in page


# --- Project settings ------------------------------------------------------------------------

DETAILS_FORM = 'data-form="project-details"'
DELETE_FORM = 'data-form="delete-project"'


def test_it_gives_owners_every_project_control(client, world):
    page = _get(_login(client, world, "owner"), PROJECT)
    assert DETAILS_FORM in page
    assert DELETE_FORM in page
    assert "Type <code>acme/mnist</code> to confirm" in page


def test_it_lets_editors_edit_but_not_delete(client, world):
    page = _get(_login(client, world, "editor"), PROJECT)
    assert DETAILS_FORM in page
    assert DELETE_FORM not in page
    assert 'action="/acme/mnist/settings/delete"' not in page
    assert "Only owners of acme can delete this project." in page


def test_it_shows_viewers_a_read_only_page(client, world):
    page = _get(_login(client, world, "viewer"), PROJECT)
    assert DETAILS_FORM not in page
    assert DELETE_FORM not in page
    assert "<textarea" not in page
    assert _only_the_logout_form(page)
    assert "only editors and owners can change this project" in page


def test_it_hides_project_settings_from_outsiders(client, world):
    _login(client, world, "outsider")
    assert client.get(PROJECT).status_code == 404
    assert client.get("/rival/mnist/settings/").status_code == 404


def test_it_renames_a_project_and_moves_its_pages(client, world):
    _login(client, world, "editor")
    response = client.post(PROJECT, {"name": "digits", "description": "MNIST, renamed"})
    assert (response.status_code, response["Location"]) == (302, "/acme/digits/settings/")
    page = _get(client, "/acme/digits/settings/")
    assert "Saved the settings of acme/digits." in page
    assert "MNIST, renamed</textarea>" in page
    assert client.get(PROJECT).status_code == 404
    assert client.get("/acme/mnist/").status_code == 404
    assert client.get("/acme/digits/").status_code == 200


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad name", "Use letters, digits"),
        ("", "This field is required"),
        ("cifar", "already exists"),
    ],
)
def test_it_shows_a_bad_name_next_to_the_field(client, world, name, message):
    services.project_create(user=world.owner.user, team_slug="acme", slug="cifar")
    _login(client, world, "owner")
    response = client.post(PROJECT, {"name": name, "description": "typed"})
    assert response.status_code == 400
    page = response.content.decode()
    assert message in _field_error(page, "project-name-error")
    assert "typed</textarea>" in page
    assert 'action="/acme/mnist/settings/"' in page  # the form still posts to the old name
    assert Project.objects.get(pk=world.project.pk).slug == "mnist"
    assert Project.objects.get(pk=world.project.pk).description == ""


@pytest.mark.parametrize(("persona", "status"), [("viewer", 403), ("outsider", 404)])
def test_it_refuses_edits_by_viewers_and_outsiders(client, world, persona, status):
    _login(client, world, persona)
    assert client.post(PROJECT, {"name": "hijacked", "description": "x"}).status_code == status
    project = Project.objects.get(pk=world.project.pk)
    assert (project.slug, project.description) == ("mnist", "")


def _project_with_metrics(world: World) -> Run:
    run = services.run_create(user=world.owner.user, project=world.project, name="r")
    metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1.0)])
    return run


@pytest.mark.parametrize("typed", ["", "mnist", "acme/MNIST", "rival/mnist"])
def test_it_deletes_only_with_the_full_name_typed(client, world, typed):
    _project_with_metrics(world)
    _login(client, world, "owner")
    response = client.post(DELETE, {"confirm": typed})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Type acme/mnist exactly to confirm." in _field_error(page, "delete-confirm-error")
    assert Project.objects.filter(pk=world.project.pk).exists()
    assert Run.objects.count() == 1


def test_it_deletes_a_project_with_its_runs_and_metrics(client, world):
    _project_with_metrics(world)
    _login(client, world, "owner")
    response = client.post(DELETE, {"confirm": " acme/mnist "}, follow=True)
    assert response.redirect_chain == [("/acme/", 302)]
    assert "Deleted project acme/mnist and its 1 run." in response.content.decode()
    assert not Project.objects.filter(pk=world.project.pk).exists()
    assert (Run.objects.count(), MetricSeries.objects.count()) == (0, 0)
    assert client.get(PROJECT).status_code == 404


@pytest.mark.parametrize(("persona", "status"), NON_OWNERS)
def test_it_refuses_deletes_by_non_owners(client, world, persona, status):
    _project_with_metrics(world)
    _login(client, world, persona)
    assert client.post(DELETE, {"confirm": "acme/mnist"}).status_code == status
    assert Project.objects.filter(pk=world.project.pk).exists()
    assert Run.objects.count() == 1


def test_it_deletes_only_by_post(client, world):
    assert _login(client, world, "owner").get(DELETE).status_code == 405
    assert Project.objects.filter(pk=world.project.pk).exists()


# --- New team ---------------------------------------------------------------------------

NEW_TEAM = "/settings/new-team/"


def test_it_lets_anyone_logged_in_start_a_team_and_own_it(client, world):
    _login(client, world, "viewer")
    assert 'data-form="new-team"' in _get(client, NEW_TEAM)
    response = client.post(NEW_TEAM, {"slug": "vision", "name": "Vision group"})
    assert response.status_code == 302 and response["Location"] == "/vision/"
    membership = Membership.objects.get(team__slug="vision")
    assert (membership.user, membership.role) == (world.viewer.user, Role.OWNER)
    assert "Created the team vision" in _get(client, "/vision/")


@pytest.mark.parametrize(
    ("slug", "name", "field", "message"),
    [
        ("acme", "", "slug", "already exists"),
        ("settings", "", "slug", "reserved"),
        ("no spaces", "", "slug", "letters"),
        ("fine", "x" * 121, "name", "At most 120 characters."),
    ],
)
def test_it_explains_a_bad_team_next_to_its_field(client, world, slug, name, field, message):
    _login(client, world, "owner")
    response = client.post(NEW_TEAM, {"slug": slug, "name": name})
    assert response.status_code == 400
    assert message.lower() in _field_error(response.content.decode(), f"team-{field}-error").lower()
    assert not Membership.objects.filter(team__slug="fine").exists()


def test_it_sends_anonymous_visitors_from_new_team_to_login(client, world):
    response = client.post(NEW_TEAM, {"slug": "x"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")
