"""Runs and projects deleted through the MLflow API: hidden from Labbook's lists, kept by id."""

from __future__ import annotations

from django.utils import timezone

from tracking import services
from tracking.models import Project, Run


def test_a_deleted_run_leaves_the_lists_but_keeps_its_page(client, world):
    kept = services.run_create(user=world.owner.user, project=world.project, name="kept")
    gone = services.run_create(user=world.owner.user, project=world.project, name="gone")
    Run.objects.filter(pk=gone.pk).update(deleted_at=timezone.now())
    api = world.owner.client()
    listed = api.get("/api/v1/runs", {"project": "acme/mnist"}).json()["results"]
    assert [run["id"] for run in listed] == [kept.pk]
    assert api.get(f"/api/v1/runs/{gone.pk}").status_code == 200
    client.force_login(world.viewer.user)
    table = client.get("/acme/mnist/").content.decode()
    assert "kept" in table and f"/runs/{gone.pk}" not in table
    page = client.get(f"/acme/mnist/runs/{gone.pk}").content.decode()
    assert "This run was deleted through the MLflow API" in page
    assert f'restore_run("{gone.pk}")' in page
    assert "deleted through" not in client.get(f"/acme/mnist/runs/{kept.pk}").content.decode()


def test_a_deleted_project_leaves_the_lists(client, world):
    other = services.project_create(user=world.owner.user, team_slug="acme", slug="old")
    Project.objects.filter(pk=other.pk).update(deleted_at=timezone.now())
    listed = world.owner.client().get("/api/v1/projects").json()
    names = [project["full_name"] for project in listed]
    assert "acme/mnist" in names and "acme/old" not in names
    client.force_login(world.owner.user)
    assert "acme/old" not in client.get("/").content.decode()
