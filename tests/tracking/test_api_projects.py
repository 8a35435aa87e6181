from __future__ import annotations

import pytest

from tracking.models import Membership, Project, Team


def test_it_lists_only_projects_of_my_teams(world):
    response = world.owner.client().get("/api/v1/projects")
    assert response.status_code == 200
    assert [p["full_name"] for p in response.json()] == ["acme/mnist"]
    assert response.json()[0]["role"] == "owner"

    outsider_view = world.outsider.client().get("/api/v1/projects")
    assert outsider_view.json() == []


def test_it_creates_a_project_for_an_editor(world):
    response = world.editor.client().post(
        "/api/v1/projects",
        {"team": "acme", "name": "cifar", "description": "ResNets"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["full_name"] == "acme/cifar"
    assert Project.objects.filter(team=world.team, slug="cifar").exists()


def test_it_refuses_a_viewer_creating_a_project(world):
    response = world.viewer.client().post(
        "/api/v1/projects", {"team": "acme", "name": "cifar"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not Project.objects.filter(slug="cifar").exists()


def test_it_hides_another_teams_existence(world):
    response = world.outsider.client().post(
        "/api/v1/projects", {"team": "acme", "name": "cifar"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "team"


def test_it_rejects_a_duplicate_project(world):
    response = world.owner.client().post(
        "/api/v1/projects", {"team": "acme", "name": "mnist"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "already_exists",
        "message": "Project acme/mnist already exists.",
        "field": "name",
    }


def test_it_names_the_bad_field(world):
    client = world.owner.client()
    cases = [
        ({"team": "acme", "name": "has space"}, "name"),
        ({"team": "acme", "name": ""}, "name"),
        ({"team": "acme", "name": "x" * 101}, "name"),
        ({"team": "acme", "name": 7}, "name"),
        ({"name": "ok"}, "team"),
        ({"team": "acme", "name": "ok", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/projects", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"]["field"] == field, body


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/projects", {"team": "ac\x00me", "name": "cifar"}, "team"),
        ("/api/v1/runs", {"project": "ac\x00me/mnist"}, "project"),
        ("/api/v1/reports", {"project": "acme/mn\x00ist", "title": "Loss"}, "project"),
    ],
)
def test_it_refuses_a_nul_in_a_team_or_project_name(world, path, body, field):
    # Found by tests/reliability/test_api_schema_fuzz.py: PostgreSQL failed the lookup (a 500).
    response = world.owner.client().post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field


def test_it_gets_a_project_by_full_name(world):
    response = world.viewer.client().get("/api/v1/projects/acme/mnist")
    assert response.status_code == 200
    assert response.json()["role"] == "viewer"
    assert world.outsider.client().get("/api/v1/projects/acme/mnist").status_code == 404


def test_it_creates_a_team_with_me_as_owner(world):
    response = world.viewer.client().post("/api/v1/teams", {"slug": "lab"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "owner"
    team = Team.objects.get(slug="lab")
    assert Membership.objects.get(team=team).user == world.viewer.user
    taken = world.viewer.client().post("/api/v1/teams", {"slug": "acme"}, format="json")
    assert taken.status_code == 400
    assert taken.json()["error"]["field"] == "slug"


def test_it_refuses_team_names_that_would_hide_site_pages(world):
    for slug in ("admin", "API", "login", "static"):
        response = world.owner.client().post("/api/v1/teams", {"slug": slug}, format="json")
        assert response.status_code == 400, slug
        assert response.json()["error"]["field"] == "slug"
    assert not Team.objects.filter(slug__iexact="api").exists()
