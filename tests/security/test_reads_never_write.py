"""A GET never writes: reading MLflow's default experiment "0" with a read-only token
created a project (security review). It still answers, as MLflow's always exists; only a
write that needs it creates it."""

from __future__ import annotations

import pytest

from tests.conftest import World
from tests.tracking.mlflow.test_protocol import API
from tracking import services
from tracking.models import Project, TokenScope

pytestmark = pytest.mark.django_db


def read_only(world: World) -> dict[str, str]:
    _, raw = services.token_create(user=world.viewer.user, name="ro", scope=TokenScope.READ)
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_reading_the_default_experiment_creates_nothing(world: World, client):
    before = set(Project.objects.values_list("pk", flat=True))
    headers = read_only(world)
    got = client.get(f"{API}/experiments/get", {"experiment_id": "0"}, **headers)
    assert got.status_code == 200, got.content  # MLflow's "0" always exists for a client
    experiment = got.json()["experiment"]
    assert experiment["experiment_id"] == "0"
    assert experiment["name"] == "acme/default"
    assert experiment["lifecycle_stage"] == "active"
    searched = client.post(
        f"{API}/runs/search",
        {"experiment_ids": ["0"]},
        content_type="application/json",
        **headers,
    )
    assert searched.status_code == 200, searched.content
    assert searched.json().get("runs", []) == []
    assert set(Project.objects.values_list("pk", flat=True)) == before


def test_a_run_created_without_an_experiment_still_makes_the_default_one(world: World, client):
    _, raw = services.token_create(user=world.editor.user, name="rw")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    created = client.post(
        f"{API}/runs/create", {"run_name": "r"}, content_type="application/json", **headers
    )
    assert created.status_code == 200, created.content
    experiment_id = created.json()["run"]["info"]["experiment_id"]
    got = client.get(f"{API}/experiments/get", {"experiment_id": "0"}, **headers)
    assert got.status_code == 200
    assert got.json()["experiment"]["experiment_id"] == experiment_id
