"""Removing a team member takes a confirmation (``workspace.team_views.member_remove``).

The members table links to a confirmation page; only its button, a POST with
``confirm=yes``, removes. A bare POST (a stale page, a forged form) shows the
confirmation again and removes nobody. Works without JavaScript.
"""

from __future__ import annotations

import pytest

from tests.conftest import World
from tracking import services
from tracking.models import Membership, Role

MEMBERS = "/settings/teams/acme/"


def _login(client, world: World, persona: str = "owner"):
    client.force_login(world.persona(persona).user)
    return client


def _remove_url(world: World, persona: str) -> str:
    return f"{MEMBERS}members/{world.persona(persona).user.pk}/remove"


def _is_member(world: World, persona: str) -> bool:
    return Membership.objects.filter(team=world.team, user=world.persona(persona).user).exists()


def _confirm_form(page: str) -> str:
    return page.split("<form")[-1].split("</form>")[0]  # the last form: after the top bar's


def test_the_members_table_links_to_the_confirmation(client, world):
    page = _login(client, world).get(MEMBERS).content.decode()
    row = page.split(f'data-user-id="{world.editor.user.pk}"')[1].split("</tr>")[0]
    assert f'href="{_remove_url(world, "editor")}"' in row
    assert "<form" in row.split('class="actions"')[0]  # the role form; removing is a link
    assert "<form" not in row.split('class="actions"')[1]


def test_the_confirmation_page_names_who_and_removes_nobody(client, world):
    response = _login(client, world).get(_remove_url(world, "editor"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Remove bob from acme?" in page
    form = _confirm_form(page)
    assert f'action="{_remove_url(world, "editor")}"' in form
    assert '<input type="hidden" name="confirm" value="yes">' in form
    assert ">Remove bob</button>" in form
    assert f'href="{MEMBERS}">Cancel</a>' in form
    assert _is_member(world, "editor")


@pytest.mark.parametrize("posted", [{}, {"confirm": ""}, {"confirm": "no"}, {"confirm": "YES"}])
def test_a_post_without_the_confirmation_removes_nobody(client, world, posted):
    response = _login(client, world).post(_remove_url(world, "editor"), posted)
    assert response.status_code == 200
    assert "Remove bob from acme?" in response.content.decode()
    assert _is_member(world, "editor")


def test_the_confirmation_removes(client, world):
    response = _login(client, world).post(_remove_url(world, "editor"), {"confirm": "yes"})
    assert (response.status_code, response["Location"]) == (302, MEMBERS)
    assert not _is_member(world, "editor")
    assert "Removed bob from acme." in client.get(MEMBERS).content.decode()


def test_leaving_is_confirmed_too(client, world):
    services.membership_set(team=world.team, user=world.editor.user, role=Role.OWNER)
    _login(client, world)
    page = client.get(_remove_url(world, "owner")).content.decode()
    assert "Leave acme?" in page and ">Leave acme</button>" in _confirm_form(page)
    assert _is_member(world, "owner")
    response = client.post(_remove_url(world, "owner"), {"confirm": "yes"})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert not _is_member(world, "owner")


def test_the_last_owner_is_kept_after_the_confirmation(client, world):
    response = _login(client, world).post(_remove_url(world, "owner"), {"confirm": "yes"})
    assert response.status_code == 400
    assert "alice is the last owner of acme" in response.content.decode()
    assert _is_member(world, "owner")


@pytest.mark.parametrize(("persona", "status"), [("editor", 403), ("outsider", 404)])
def test_only_owners_see_the_confirmation(client, world, persona, status):
    _login(client, world, persona)
    assert client.get(_remove_url(world, "viewer")).status_code == status
    assert client.post(_remove_url(world, "viewer"), {"confirm": "yes"}).status_code == status
    assert _is_member(world, "viewer")
