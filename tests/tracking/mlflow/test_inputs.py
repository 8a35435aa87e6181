"""Dataset inputs and a run's artifacts through the tracking API: who may, what is kept, what goes.

In process through Django's test client, except the last test: the unmodified mlflow
client logging a pandas dataset and an artifact to a live Labbook server. MLflow's own
answers to the same calls are compared in ``parity/test_artifacts_inputs.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from mlflow import MlflowClient

from tests.sdk.server import LabbookServer
from tests.support import services_free
from tracking import services
from tracking.models import Dataset, Run, RunInput, TokenScope

API = "/api/2.0/mlflow"


@pytest.fixture(autouse=True)
def home(settings, tmp_path: Path) -> Path:
    settings.LABBOOK_HOME = tmp_path
    return tmp_path


@pytest.fixture
def run(world) -> Run:
    return services.run_create(user=world.owner.user, project=world.project)


def dataset(name: str = "train", digest: str = "abc") -> dict[str, Any]:
    fields = {"name": name, "digest": digest, "source_type": "local", "source": "{}"}
    return {"dataset": fields, "tags": [{"key": "mlflow.data.context", "value": "train"}]}


def log_inputs(client, run: Run, *datasets: dict[str, Any]):
    body = {"run_id": str(run.pk), "datasets": list(datasets)}
    return client.post(f"{API}/runs/log-inputs", body, format="json")


def run_inputs(client, run: Run) -> dict[str, Any]:
    response = client.get(f"{API}/runs/get", {"run_id": str(run.pk)})
    assert response.status_code == 200, response.content
    return response.json()["run"]["inputs"]


def upload(client, run: Run, rel: str, body: bytes) -> None:
    target = f"/api/2.0/mlflow-artifacts/artifacts/{run.project_id}/{run.pk}/artifacts/{rel}"
    response = client.put(target, data=body, content_type="application/octet-stream")
    assert response.status_code == 200, response.content


# --- Who may -------------------------------------------------------------------------------


def test_it_keeps_an_editors_inputs_and_shows_them_to_a_viewer(world, run):
    assert log_inputs(world.editor.client(), run, dataset()).status_code == 200
    (entry,) = run_inputs(world.viewer.client(), run)["dataset_inputs"]
    assert entry["dataset"]["name"] == "train"
    assert entry["tags"] == [{"key": "mlflow.data.context", "value": "train"}]


def test_a_viewer_may_not_log_inputs(world, run):
    response = log_inputs(world.viewer.client(), run, dataset())
    assert (response.status_code, response.json()["error_code"]) == (403, "PERMISSION_DENIED")
    assert not RunInput.objects.exists() and not Dataset.objects.exists()


def test_an_outsider_neither_logs_nor_reads_inputs_nor_artifacts(world, run):
    upload(world.owner.client(), run, "notes/a.txt", b"secret")
    outsider = world.outsider.client()
    assert log_inputs(outsider, run, dataset()).status_code == 404
    assert not Dataset.objects.exists()
    query = {"run_id": str(run.pk), "path": "notes"}
    listing = outsider.get(f"{API}/artifacts/list", query)
    download = outsider.get("/get-artifact", {"run_id": str(run.pk), "path": "notes/a.txt"})
    for response in (listing, download):
        assert response.status_code == 404
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert b"secret" not in response.content and b"a.txt" not in response.content


def test_a_viewer_reads_artifacts_through_the_tracking_api(world, run):
    upload(world.owner.client(), run, "notes/a.txt", b"hello")
    viewer = world.viewer.client()
    listing = viewer.get(f"{API}/artifacts/list", {"run_id": str(run.pk), "path": "notes"})
    assert listing.json()["files"] == [{"path": "notes/a.txt", "is_dir": False, "file_size": 5}]
    download = viewer.get("/get-artifact", {"run_uuid": str(run.pk), "path": "notes/a.txt"})
    assert b"".join(download.streaming_content) == b"hello"
    assert download["Content-Type"] == "text/plain"
    assert download["Content-Disposition"] == 'attachment; filename="a.txt"'
    assert download["X-Content-Type-Options"] == "nosniff"


def test_an_ingest_token_logs_inputs_but_reads_no_artifacts(world, run):
    _, raw = services.token_create(user=world.owner.user, name="ci", scope=TokenScope.INGEST)
    client = world.owner.client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert log_inputs(client, run, dataset()).status_code == 200
    listing = client.get(f"{API}/artifacts/list", {"run_id": str(run.pk)})
    assert (listing.status_code, listing.json()["error_code"]) == (403, "PERMISSION_DENIED")


# --- What is kept, what goes ----------------------------------------------------------------


def test_a_dataset_is_shared_within_a_project_and_not_across(world, run):
    other = services.run_create(user=world.owner.user, project=world.project)
    project = services.project_create(user=world.owner.user, team_slug="acme", slug="cifar")
    elsewhere = services.run_create(user=world.owner.user, project=project)
    for target in (run, other, elsewhere):
        assert log_inputs(world.owner.client(), target, dataset()).status_code == 200
    assert Dataset.objects.filter(project=world.project).count() == 1
    assert Dataset.objects.filter(project=project).count() == 1
    assert RunInput.objects.count() == 3


def test_inputs_go_with_their_run_and_datasets_with_their_project(world, run):
    other = services.run_create(user=world.owner.user, project=world.project)
    for target in (run, other):
        log_inputs(world.owner.client(), target, dataset(), dataset("eval", "def"))
    run.delete()
    assert RunInput.objects.filter(run=other).count() == 2
    assert Dataset.objects.count() == 2  # still the other run's
    services.project_delete(project=world.project)
    assert not RunInput.objects.exists() and not Dataset.objects.exists()


def test_a_bad_input_among_good_ones_keeps_nothing(world, run):
    bad = dataset("x" * 501)
    response = log_inputs(world.owner.client(), run, dataset(), bad)
    assert response.status_code == 400
    assert response.json()["message"] == "'name' exceeds the maximum length of 500 characters"
    assert not Dataset.objects.exists()


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ({"dataset": {"name": 5}}, "datasets[0].dataset.name"),
        ({"dataset": "x"}, "datasets[0].dataset"),
        ("x", "datasets[0]"),
        ({"dataset": {}, "tags": [{"key": "k", "value": ["v"]}]}, "datasets[0].tags[0].value"),
        ({"dataset": {"source": "a\x00b"}}, "datasets[0].dataset.source"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_it(world, run, entry, path):
    """MLflow's parser would empty these silently; Labbook refuses them (a NUL would fail
    PostgreSQL's text columns: a 500)."""
    response = log_inputs(world.owner.client(), run, entry)
    assert response.status_code == 400
    assert f"'{path}'" in response.json()["message"]


def test_runs_search_reads_inputs_in_one_query_whatever_the_runs(
    world, django_assert_max_num_queries
):
    client = world.owner.client()
    body = {"experiment_ids": [str(world.project.pk)]}

    def add_runs(count: int) -> None:
        for index in range(count):
            target = services.run_create(user=world.owner.user, project=world.project)
            log_inputs(client, target, dataset(), dataset(f"eval{index}", "x"))

    add_runs(2)
    client.post(f"{API}/runs/search", body, format="json")  # the token's first use
    with CaptureQueriesContext(connection) as few:
        assert len(client.post(f"{API}/runs/search", body, format="json").json()["runs"]) == 2
    measured = len(few)  # now: the next request clears the connection's query log
    add_runs(10)
    with django_assert_max_num_queries(measured):
        found = client.post(f"{API}/runs/search", body, format="json").json()["runs"]
    assert [len(run["inputs"]["dataset_inputs"]) for run in found] == [2] * 12


# --- The unmodified client against a live server ---------------------------------------------


@pytest.fixture(scope="module")
@services_free
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    with LabbookServer(tmp_path_factory.mktemp("mlflow-inputs") / "home") as running:
        yield running


@pytest.mark.subprocess
def test_the_client_logs_a_pandas_dataset_and_reads_artifacts_back(
    server: LabbookServer, monkeypatch: pytest.MonkeyPatch
):
    """``log_input`` goes through runs/log-inputs; the client itself lists and downloads
    through the mlflow-artifacts proxy, and artifacts/list and /get-artifact (MLflow's UI
    and tools) must agree with it."""
    for name, value in {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_TOKEN": server.token,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }.items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(server.url)
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": [0, 1, 0]})
    data = mlflow.data.from_pandas(frame, name="toy", targets="label")
    mlflow.set_experiment("lab/inputs")
    with mlflow.start_run() as active:
        mlflow.log_input(data, context="training")
        mlflow.log_text("hello", "notes/hello.txt")
    client = MlflowClient()
    run_id = active.info.run_id

    (used,) = client.get_run(run_id).inputs.dataset_inputs
    assert (used.dataset.name, used.dataset.digest) == ("toy", data.digest)
    assert used.dataset.source_type == "code"
    assert json.loads(used.dataset.schema) == json.loads(data.to_dict()["schema"])
    assert json.loads(used.dataset.profile) == {"num_rows": 3, "num_elements": 6}
    assert [(tag.key, tag.value) for tag in used.tags] == [("mlflow.data.context", "training")]

    with server.client() as http:
        listed = http.get(f"{API}/artifacts/list", params={"run_id": run_id, "path": "notes"})
        fetched = http.get("/get-artifact", params={"run_id": run_id, "path": "notes/hello.txt"})
    by_client = [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id, "notes")]
    assert [(f["path"], f["is_dir"], f["file_size"]) for f in listed.json()["files"]] == by_client
    assert listed.json()["root_uri"] == client.get_run(run_id).info.artifact_uri
    assert (
        fetched.content == Path(client.download_artifacts(run_id, "notes/hello.txt")).read_bytes()
    )
    assert fetched.content == b"hello"
