"""The run page lists the run's artifacts (logged by the mlflow client) and serves them."""

from __future__ import annotations

import pytest

from tracking import services
from tracking.mlflow import artifacts


@pytest.fixture
def run(world, settings, tmp_path):
    settings.LABBOOK_HOME = tmp_path
    run = services.run_create(user=world.owner.user, project=world.project, name="r")
    root = artifacts.run_root(run)
    (root / "plots").mkdir(parents=True)
    (root / "plots" / "loss curve.png").write_bytes(b"\x89PNG fake")
    (root / "labels.json").write_text('{"classes": 2}')
    return run


def test_the_run_page_lists_its_artifacts_with_sizes(client, world, run):
    client.force_login(world.viewer.user)
    page = client.get(f"/acme/mnist/runs/{run.pk}").content.decode()
    section = page.split('id="artifacts"')[1].split("</section>")[0]
    assert section.index("labels.json") < section.index("plots/loss curve.png")
    assert f'href="/acme/mnist/runs/{run.pk}/artifacts/plots/loss%20curve.png"' in section
    assert "14\xa0bytes" in section  # labels.json


def test_a_member_downloads_an_artifact(client, world, run):
    client.force_login(world.viewer.user)
    response = client.get(f"/acme/mnist/runs/{run.pk}/artifacts/plots/loss%20curve.png")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x89PNG fake"
    assert response["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize(
    "path", ["missing.txt", "plots", "../../../secret", "plots/../../labels.json"]
)
def test_what_is_not_a_file_of_the_run_is_404(client, world, run, path):
    client.force_login(world.owner.user)
    assert client.get(f"/acme/mnist/runs/{run.pk}/artifacts/{path}").status_code == 404


def test_outsiders_and_strangers_get_nothing(client, world, run):
    url = f"/acme/mnist/runs/{run.pk}/artifacts/labels.json"
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(world.outsider.user)
    assert client.get(url).status_code == 404


def test_a_run_without_artifacts_shows_no_section(client, world, settings, tmp_path):
    settings.LABBOOK_HOME = tmp_path
    run = services.run_create(user=world.owner.user, project=world.project, name="bare")
    client.force_login(world.owner.user)
    assert 'id="artifacts"' not in client.get(f"/acme/mnist/runs/{run.pk}").content.decode()
