"""Who may do what: every v1 endpoint for every persona.

Outsiders get 404 (existence is not revealed), viewers read but get 403 on
writes, editors and owners write, anonymous callers get 401.
"""

from __future__ import annotations

import pytest

from tracking import services
from tracking.ingest import Point, metrics_ingest

PERSONAS = ["anonymous", "outsider", "viewer", "editor", "owner"]
READ = {"anonymous": 401, "outsider": 404, "viewer": 200, "editor": 200, "owner": 200}
WRITE = {"anonymous": 401, "outsider": 404, "viewer": 403, "editor": 200, "owner": 200}

MATRIX = [
    ("get", "/api/v1/projects/acme/mnist", None, READ),
    ("get", "/api/v1/runs/{run}", None, READ),
    ("patch", "/api/v1/runs/{run}", {"notes": "n"}, WRITE),
    ("post", "/api/v1/runs/{run}/heartbeat", None, WRITE),
    ("get", "/api/v1/runs/{run}/metrics", None, READ),
    (
        "post",
        "/api/v1/runs/{run}/metrics",
        {"points": [{"key": "x", "step": 9, "value": 1}]},
        WRITE,
    ),
    ("get", "/api/v1/runs/{run}/metrics/loss", None, READ),
    ("post", "/api/v1/runs", {"project": "acme/mnist"}, {**WRITE, "editor": 201, "owner": 201}),
    (
        "post",
        "/api/v1/projects",
        {"team": "acme", "name": "p-{persona}"},
        {**WRITE, "editor": 201, "owner": 201},
    ),
]


@pytest.fixture
def run(world):
    run = services.run_create(user=world.owner.user, project=world.project)
    metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1.0)])
    return run


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX)
def test_the_permission_matrix(world, anonymous, run, persona, method, path, body, expected):
    client = anonymous if persona == "anonymous" else world.persona(persona).client()
    url = path.format(run=run.pk, persona=persona)
    if body is not None:
        body = {
            k: (v.format(persona=persona) if isinstance(v, str) else v) for k, v in body.items()
        }
    response = getattr(client, method)(url, body, format="json")
    assert response.status_code == expected[persona], response.content


@pytest.mark.parametrize("persona", PERSONAS)
def test_lists_show_nothing_of_other_teams(world, anonymous, run, persona):
    client = anonymous if persona == "anonymous" else world.persona(persona).client()
    runs = client.get("/api/v1/runs")
    projects = client.get("/api/v1/projects")
    if persona == "anonymous":
        assert (runs.status_code, projects.status_code) == (401, 401)
        return
    visible = persona != "outsider"
    assert bool(runs.json()["results"]) is visible
    assert any(p["full_name"] == "acme/mnist" for p in projects.json()) is visible
