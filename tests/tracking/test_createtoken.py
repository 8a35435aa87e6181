"""`manage.py createtoken`: one token on stdout, notes on stderr, user and team made on demand."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tracking import services
from tracking.models import ApiToken, Membership, Role, Team


def createtoken(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("createtoken", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def role_of(username: str, team: str) -> str:
    return Membership.objects.get(user__username=username, team__slug=team).role


@pytest.mark.django_db
def test_it_prints_only_a_token_that_authenticates() -> None:
    out, _ = createtoken("ci", "--team", "ml")
    assert out.count("\n") == 1
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.strip()}")
    assert client.get("/api/v1/projects").status_code == 200


@pytest.mark.django_db
def test_it_creates_the_user_and_team_with_the_user_as_owner() -> None:
    _, err = createtoken("ci", "--team", "ml", "--role", "viewer")
    user = get_user_model().objects.get(username="ci")
    assert not user.has_usable_password()
    assert role_of("ci", "ml") == Role.OWNER
    assert "Created user 'ci'" in err and "Created team 'ml'" in err


@pytest.mark.django_db
def test_it_adds_a_newcomer_to_an_existing_team_with_the_role(world) -> None:
    createtoken("dave", "--team", "acme", "--role", "viewer")
    assert role_of("dave", "acme") == Role.VIEWER
    assert Team.objects.filter(slug="acme").count() == 1


@pytest.mark.django_db
def test_it_makes_a_newcomer_an_editor_by_default(world) -> None:
    createtoken("dave", "--team", "acme")
    assert role_of("dave", "acme") == Role.EDITOR


@pytest.mark.django_db
def test_it_changes_the_role_of_a_member(world) -> None:
    createtoken("carol", "--team", "acme", "--role", "editor")
    assert role_of("carol", "acme") == Role.EDITOR


@pytest.mark.django_db
def test_it_keeps_the_role_of_a_member_without_role(world) -> None:
    _, err = createtoken("alice", "--team", "acme")
    assert role_of("alice", "acme") == Role.OWNER
    assert "'alice' is owner in team 'acme'" in err


@pytest.mark.django_db
def test_it_refuses_to_demote_the_last_owner(world) -> None:
    with pytest.raises(CommandError, match="only owner"):
        createtoken("alice", "--team", "acme", "--role", "viewer")
    assert role_of("alice", "acme") == Role.OWNER


@pytest.mark.django_db
def test_it_stores_only_the_hash_of_the_token() -> None:
    out, _ = createtoken("ci", "--name", "nightly")
    raw = out.strip()
    token = ApiToken.objects.get(user__username="ci")
    assert token.name == "nightly"
    assert token.key_hash == services.token_hash(raw)
    stored = ApiToken.objects.values_list("name", "prefix", "key_hash")
    assert all(raw not in field for row in stored for field in row)


@pytest.mark.django_db
def test_it_works_without_a_team() -> None:
    out, _ = createtoken("ci")
    assert out.strip().startswith(services.TOKEN_PREFIX)
    assert not Membership.objects.filter(user__username="ci").exists()


@pytest.mark.django_db
def test_it_rejects_a_bad_role() -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        createtoken("ci", "--team", "ml", "--role", "admin")
    assert not get_user_model().objects.filter(username="ci").exists()


@pytest.mark.django_db
def test_it_rejects_a_bad_team_slug_and_writes_nothing() -> None:
    with pytest.raises(CommandError, match="letters, digits"):
        createtoken("ci", "--team", "no spaces")
    assert not get_user_model().objects.filter(username="ci").exists()
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_it_rejects_a_bad_username() -> None:
    with pytest.raises(CommandError, match="username"):
        createtoken("bad name!")


@pytest.mark.django_db
def test_it_rejects_a_role_without_a_team() -> None:
    with pytest.raises(CommandError, match="--role needs --team"):
        createtoken("ci", "--role", "viewer")
