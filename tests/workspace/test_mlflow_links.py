"""MLflow UI links (``workspace.mlflow_links``): each sends a member to the Labbook page of
what it names, an outsider to the same 404 as a missing id, and an anonymous visitor to log in
with the link kept."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from tracking import services

NOT_FOUND_TEXT = b"There is nothing at this address"
CSRF_TOKEN = re.compile(rb"[A-Za-z0-9]{64}")  # masked anew in every page


@pytest.fixture
def run(world):
    return services.run_create(user=world.owner.user, project=world.project, name="resnet")


@pytest.fixture
def other_run(world):
    """A second run, in another project of acme."""
    project = services.project_create(user=world.owner.user, team_slug="acme", slug="cifar")
    return services.run_create(user=world.owner.user, project=project, name="vgg")


def _as(client, world, persona):
    client.force_login(world.persona(persona).user)
    return client


def _redirect(response) -> str:
    assert response.status_code == 302, response.content[:300]
    return response["Location"]


def _not_found(response) -> None:
    assert response.status_code == 404
    assert NOT_FOUND_TEXT in response.content


def _listed(*runs) -> str:
    """``runs=`` as MLflow's UI writes it: a JSON list of run ids."""
    return quote(json.dumps([str(getattr(run, "pk", run)) for run in runs]))


def _links(world, run) -> dict[str, str]:
    """Each kind of link to ``run`` (or its experiment), and where a member lands."""
    exp, page = world.project.pk, f"/acme/mnist/runs/{run.pk}"
    listed = _listed(run)
    return {
        f"/experiments/{exp}/runs/{run.pk}": page,  # what the mlflow client prints, hash dropped
        f"/experiments/{exp}/runs/{run.pk}/artifacts/model/MLmodel": page,
        f"/experiments/{exp}/runs/{run.pk}/model-metrics": page,
        f"/experiments/{exp}/evaluation-runs/{run.pk}": page,
        f"/experiments/{exp}/evaluation-runs?selectedRunUuid={run.pk}": page,
        f"/runs/{run.pk}": page,
        f"/experiments/{exp}": "/acme/mnist/",
        f"/experiments/{exp}/runs": "/acme/mnist/",
        f"/experiments/{exp}/overview": "/acme/mnist/",
        f"/compare-runs?runs={listed}&experiments=[]": f"/acme/mnist/compare?runs={run.pk}",
        f"/metric?runs={listed}&metric=%22loss%22": f"/acme/mnist/compare?runs={run.pk}",
    }


@pytest.mark.parametrize("persona", ["owner", "editor", "viewer"])
def test_it_sends_members_to_the_page_the_link_names(client, world, run, persona):
    client = _as(client, world, persona)
    for link, page in _links(world, run).items():
        assert _redirect(client.get(link)) == page, link
        assert client.get(page).status_code == 200, page


def test_it_finds_nothing_for_an_outsider_as_for_a_missing_id(client, world, run):
    client = _as(client, world, "outsider")
    for link in _links(world, run):
        _not_found(client.get(link))
    missing = client.get(f"/experiments/{world.project.pk}/runs/987654321")
    found = client.get(f"/experiments/{world.project.pk}/runs/{run.pk}")
    assert CSRF_TOKEN.sub(b"", found.content) == CSRF_TOKEN.sub(b"", missing.content)


def test_it_sends_anonymous_visitors_to_log_in_and_keeps_the_link(client, world, run):
    for link in _links(world, run):
        location = _redirect(client.get(link))
        assert location.startswith("/login/?next="), link
        assert location == f"/login/?next={quote(link, safe='/')}", link


def test_it_sends_to_the_link_after_logging_in(client, world, run):
    world.owner.user.set_password("correct horse battery")
    world.owner.user.save()
    link = f"/experiments/{world.project.pk}/runs/{run.pk}"
    response = client.post(
        "/login/", {"username": "alice", "password": "correct horse battery", "next": link}
    )
    assert _redirect(response) == link
    assert _redirect(client.get(link)) == f"/acme/mnist/runs/{run.pk}"


def test_experiment_zero_is_the_default_project_once_it_exists(client, world):
    client = _as(client, world, "owner")
    _not_found(client.get("/experiments/0"))  # not made yet: nothing to show
    services.project_create(user=world.owner.user, team_slug="acme", slug="default")
    assert _redirect(client.get("/experiments/0")) == "/acme/default/"


@pytest.mark.parametrize(
    "link",
    [
        "/experiments/987654321",
        "/experiments/987654321/runs/1",
        "/experiments/abc",
        "/experiments/-1",
        "/experiments/99999999999999999999999",
        "/experiments/1e3/runs/x",
        "/experiments/%C2%B2/runs/%C2%B2",
        "/runs/abc",
        "/runs/0",
        "/runs/99999999999999999999",
        "/runs/%C2%B2",
        "/compare-runs",
        "/compare-runs?runs=nonsense",
        "/compare-runs?runs=%7B%7D",
        "/compare-runs?runs=[1e400]",
        "/compare-runs?runs=[%22987654321%22]",
        "/compare-runs?runs=[[1]]",
        "/metric",
    ],
)
def test_it_answers_404_to_unknown_and_garbage_ids(client, world, run, link):
    _not_found(_as(client, world, "owner").get(link))


def test_a_run_under_another_experiments_id_is_not_found(client, world, run, other_run):
    client = _as(client, world, "owner")
    _not_found(client.get(f"/experiments/{other_run.project_id}/runs/{run.pk}"))


def test_a_deleted_experiment_is_not_found(client, world, run):
    client = _as(client, world, "owner")
    services.project_update(project=world.project, description="gone soon")
    world.project.deleted_at = run.created_at
    world.project.save(update_fields=["deleted_at"])
    _not_found(client.get(f"/experiments/{world.project.pk}"))


def test_compare_runs_keeps_the_first_runs_project_and_the_runs_one_may_read(
    client, world, run, other_run
):
    rival = services.project_create(user=world.outsider.user, team_slug="rival", slug="x")
    secret = services.run_create(user=world.outsider.user, project=rival, name="secret")
    listed = _listed(secret, run, other_run, run)
    location = _redirect(_as(client, world, "owner").get(f"/compare-runs?runs={listed}"))
    assert location == f"/acme/mnist/compare?runs={run.pk}"


def test_the_links_only_read(client, world, run):
    response = _as(client, world, "owner").post(f"/experiments/{world.project.pk}")
    assert response.status_code == 405


def test_the_home_and_login_pages_carry_the_script_that_follows_hash_links(client, world):
    assert b"labbook/mlflow_links" in client.get("/login/").content
    assert b"labbook/mlflow_links" in _as(client, world, "owner").get("/").content
