"""Deleting a project deletes its artifact files too (the review found them left on disk),
and only its own: another project's files stay."""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.conftest import World
from tracking import services, storage

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_deleted_projects_files_go_with_it(world: World, settings, tmp_path):
    settings.LABBOOK_HOME = tmp_path
    run = services.run_create(user=world.owner.user, project=world.project, name="r")
    other = services.project_create(user=world.owner.user, team_slug="acme", slug="kept")
    kept = services.run_create(user=world.owner.user, project=other, name="k")
    for project, each in ((world.project, run), (other, kept)):
        folder = storage.run_folder(project.pk, each.pk)
        folder.mkdir(parents=True)
        (folder / "model.pt").write_bytes(b"weights")
    gone = storage.project_folder(world.project.pk)

    services.project_delete(project=world.project)

    assert not gone.exists()
    assert (storage.run_folder(other.pk, kept.pk) / "model.pt").read_bytes() == b"weights"


def test_files_stay_when_the_delete_is_rolled_back(world: World, settings, tmp_path):
    settings.LABBOOK_HOME = tmp_path
    run = services.run_create(user=world.owner.user, project=world.project, name="r")
    folder = storage.run_folder(world.project.pk, run.pk)
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"weights")

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        services.project_delete(project=world.project)
        raise Abort

    assert (folder / "model.pt").exists()
