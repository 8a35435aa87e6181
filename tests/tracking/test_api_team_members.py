"""GET /api/v1/teams/{team}/members: who a comment box offers after "@", for members only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.conftest import World, make_persona
from tracking import services
from tracking.models import Role, TokenScope

pytestmark = pytest.mark.django_db

URL = "/api/v1/teams/acme/members"


def test_it_lists_the_members_owners_first_with_names_and_no_addresses(world: World) -> None:
    get_user_model().objects.filter(username="bob").update(
        first_name="Bob", last_name="Builder", email="bob@example.com"
    )
    response = world.viewer.client().get(URL)
    assert response.status_code == 200
    assert response.json() == [
        {"username": "alice", "name": "", "role": "owner"},
        {"username": "bob", "name": "Bob Builder", "role": "editor"},
        {"username": "carol", "name": "", "role": "viewer"},
    ]


def test_it_leaves_out_deactivated_members(world: World) -> None:
    get_user_model().objects.filter(username="bob").update(is_active=False)
    names = [member["username"] for member in world.owner.client().get(URL).json()]
    assert names == ["alice", "carol"]


def test_it_answers_an_outsider_as_if_the_team_did_not_exist(world: World) -> None:
    hidden = world.outsider.client().get(URL)
    missing = world.outsider.client().get("/api/v1/teams/no-such-team/members")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["field"] == "team"
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"]


def test_it_requires_a_login(anonymous: APIClient) -> None:
    assert anonymous.get(URL).status_code == 401


def test_an_ingest_token_may_not_list_members(world: World) -> None:
    _, raw = services.token_create(user=world.owner.user, name="ci", scope=TokenScope.INGEST)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.get(URL)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_it_lists_in_a_constant_number_of_queries(world: World) -> None:
    client = world.viewer.client()
    client.get(URL)  # the token's first use is recorded

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        return len(queries)

    few = count()
    for i in range(10):
        services.membership_set(
            team=world.team, user=make_persona(f"member{i}").user, role=Role.VIEWER
        )
    assert count() == few
