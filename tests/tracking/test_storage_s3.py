"""Run files in an S3-compatible object store: a real S3 server process (moto's), not a mock.

Each test gets its own bucket and points ``STORAGES["artifacts"]`` at it the way
``ARTIFACTS_S3_*`` would; uploads, downloads, listings and deletes go through
Labbook's real HTTP endpoints, and the bucket is read back with boto3.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import mlflow
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from mlflow import MlflowClient
from PIL import Image as PILImage

from labbook.env import artifact_storage
from tests.sdk.server import ROOT, LabbookServer
from tests.support import free_port, services_free, wait_until
from tests.tracking import test_artifact_versions as versions
from tracking import services
from tracking.mlflow import artifacts
from tracking.models import Run

pytestmark = pytest.mark.subprocess

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "labbook-test", "AWS_SECRET_ACCESS_KEY": "labbook-test"}
REGION = "us-east-1"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
@services_free
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the module."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until(lambda: _answers(url, process), timeout=60, interval=0.1):
            raise RuntimeError("moto's S3 server did not answer within 60 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _answers(url: str, process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"moto's S3 server exited with {process.returncode}")
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.fixture
def bucket(s3_url, settings, monkeypatch, tmp_path) -> Iterator[Any]:
    """A fresh bucket that the ``artifacts`` storage now points at; LABBOOK_HOME is empty."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    name = f"labbook-{uuid.uuid4().hex[:12]}"
    resource = boto3.resource("s3", endpoint_url=s3_url, region_name=REGION)
    resource.create_bucket(Bucket=name)
    settings.LABBOOK_HOME = tmp_path
    storage = artifact_storage(bucket=name, endpoint_url=s3_url, region=REGION)
    settings.STORAGES = {**settings.STORAGES, "artifacts": storage}
    yield resource.Bucket(name)
    assert files_on_disk(tmp_path) == []  # every file went to the bucket


@pytest.fixture
def run(world) -> Run:
    return services.run_create(user=world.owner.user, project=world.project)


def url(run: Run, rel: str = "") -> str:
    tail = f"{run.project_id}/{run.pk}/artifacts" + (f"/{rel}" if rel else "")
    return f"/api/2.0/mlflow-artifacts/artifacts/{tail}"


def upload(client, run: Run, rel: str, body: bytes) -> None:
    response = client.put(url(run, rel), data=body, content_type="application/octet-stream")
    assert response.status_code == 200, response.content


def listing(client, run: Run, rel: str = "") -> Any:
    path = f"{run.project_id}/{run.pk}/artifacts" + (f"/{rel}" if rel else "")
    return client.get("/api/2.0/mlflow-artifacts/artifacts", {"path": path}).json()


def content(response) -> bytes:
    return b"".join(response.streaming_content)


def keys(bucket) -> dict[str, bytes]:
    return {item.key: item.get()["Body"].read() for item in bucket.objects.all()}


def files_on_disk(home: Path) -> list[Path]:
    return [path for path in home.rglob("*") if path.is_file()]


# --- Upload and download ----------------------------------------------------------------------


def test_it_stores_an_upload_as_an_object_and_streams_it_back(world, run, bucket, tmp_path):
    body = os.urandom(9 * MIB)  # past boto3's 8 MiB threshold: a multipart upload
    upload(world.editor.client(), run, "model/weights/w.bin", body)

    response = world.viewer.client().get(url(run, "model/weights/w.bin"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="w.bin"'
    assert response["Content-Length"] == str(len(body))
    assert content(response) == body
    assert keys(bucket) == {f"{run.project_id}/{run.pk}/artifacts/model/weights/w.bin": body}
    assert files_on_disk(tmp_path) == []


def test_it_keeps_the_download_headers_for_inert_and_active_types(world, run, bucket):
    client = world.owner.client()
    upload(client, run, "metrics.json", b"{}")
    upload(client, run, "page.html", b"<script>alert(1)</script>")
    metrics, page = client.get(url(run, "metrics.json")), client.get(url(run, "page.html"))
    assert metrics["Content-Type"] == "application/json"
    assert page["Content-Type"] == "application/octet-stream"
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Content-Security-Policy"].startswith("sandbox")
    assert content(page) == b"<script>alert(1)</script>"


def test_it_replaces_a_file_and_refuses_a_folder_or_a_file_as_a_parent(world, run, bucket):
    client = world.owner.client()
    upload(client, run, "model.pt", b"first")
    upload(client, run, "model.pt", b"second")
    upload(client, run, "folder/inside.txt", b"x")
    for rel in ["folder", "model.pt/inside"]:
        response = client.put(url(run, rel), data=b"no", content_type="application/octet-stream")
        assert response.status_code == 400, rel
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert content(client.get(url(run, "model.pt"))) == b"second"
    assert sorted(keys(bucket)) == [
        f"{run.project_id}/{run.pk}/artifacts/folder/inside.txt",
        f"{run.project_id}/{run.pk}/artifacts/model.pt",
    ]


@pytest.mark.parametrize("rel", ["missing.txt", "folder"])
def test_it_answers_404_for_a_folder_or_a_missing_file(world, run, bucket, rel):
    upload(world.owner.client(), run, "folder/inside.txt", b"x")
    response = world.owner.client().get(url(run, rel))
    assert (response.status_code, response.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


# --- Size limit -------------------------------------------------------------------------------


def test_it_refuses_an_oversized_upload_and_keeps_nothing(world, run, bucket, settings):
    settings.LABBOOK = {**settings.LABBOOK, "ARTIFACTS_MAX_BYTES": 10}
    response = world.owner.client().put(
        url(run, "big.bin"), data=b"x" * 11, content_type="application/octet-stream"
    )
    assert response.status_code == 413
    assert "10 bytes" in response.json()["message"]
    assert keys(bucket) == {}
    upload(world.owner.client(), run, "fits.bin", b"x" * 10)
    assert list(keys(bucket)) == [f"{run.project_id}/{run.pk}/artifacts/fits.bin"]


@pytest.mark.parametrize("size", [200_000, 12 * MIB])  # one PUT; a multipart upload
def test_a_body_of_unknown_length_is_counted_and_nothing_is_kept(run, bucket, size):
    location = artifacts.run_location(run, "new/big.bin")
    with pytest.raises(artifacts.TooLarge):
        artifacts.artifact_write(
            location=location, stream=io.BytesIO(b"x" * size), max_bytes=size - 1
        )
    assert keys(bucket) == {}
    assert bucket.meta.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []
    written = artifacts.artifact_write(
        location=location, stream=io.BytesIO(b"x" * size), max_bytes=size
    )
    assert (written, bucket.Object(location.key).content_length) == (size, size)


# --- Listings ---------------------------------------------------------------------------------


def test_it_lists_one_folder_with_files_and_subfolders(world, run, bucket):
    client = world.owner.client()
    upload(client, run, "a.txt", b"abc")
    upload(client, run, "sub/b.txt", b"hello")
    upload(client, run, "sub/deeper/c.txt", b"")

    assert listing(client, run) == {
        "files": [
            {"path": "a.txt", "is_dir": False, "file_size": 3},
            {"path": "sub", "is_dir": True},
        ]
    }
    assert listing(client, run, "sub") == {
        "files": [
            {"path": "b.txt", "is_dir": False, "file_size": 5},
            {"path": "deeper", "is_dir": True},
        ]
    }
    assert listing(client, run, "missing") == {}
    assert listing(client, run, "a.txt") == {}


def test_the_run_id_listing_and_get_artifact_read_the_bucket(world, run, bucket):
    client = world.owner.client()
    upload(client, run, "d/b.txt", b"hello")
    run_id = str(run.pk)  # MLflow's run id is Labbook's

    listed = client.get("/api/2.0/mlflow/artifacts/list", {"run_id": run_id, "path": "d"}).json()
    assert listed["files"] == [{"path": "d/b.txt", "is_dir": False, "file_size": 5}]
    got = client.get("/get-artifact", {"run_id": run_id, "path": "d/b.txt"})
    assert (got.status_code, got["Content-Type"], content(got)) == (200, "text/plain", b"hello")
    folder = client.get("/get-artifact", {"run_id": run_id, "path": "d"})
    assert folder.status_code == 400
    assert "refers to a directory" in folder.json()["message"]
    missing = client.get("/get-artifact", {"run_id": run_id, "path": "d/none.txt"})
    assert missing.status_code == 404


def test_the_api_lists_every_file_and_downloads_one(world, run, bucket):
    client = world.owner.client()
    for rel, body in [("z.txt", b"1"), ("model/b.bin", b"22"), ("model/a/c.bin", b"333")]:
        upload(client, run, rel, body)

    assert world.viewer.client().get(f"/api/v1/runs/{run.pk}/artifacts").json() == {
        "artifacts": [
            {"path": "model/a/c.bin", "size": 3},
            {"path": "model/b.bin", "size": 2},
            {"path": "z.txt", "size": 1},
        ]
    }
    response = world.viewer.client().get(f"/api/v1/runs/{run.pk}/artifacts/model/b.bin")
    assert content(response) == b"22"

    site = Client()
    site.force_login(world.viewer.user)
    assert content(site.get(f"/acme/mnist/runs/{run.pk}/artifacts/model/a/c.bin")) == b"333"


# --- Deletes ----------------------------------------------------------------------------------


def test_it_deletes_a_file_then_a_folder_then_everything(world, run, bucket):
    client = world.owner.client()
    for rel in ["a.txt", "sub/b.txt", "sub/c.txt", "other/d.txt"]:
        upload(client, run, rel, b"x")

    assert client.delete(url(run, "a.txt")).json() == {}
    assert client.delete(url(run, "sub")).json() == {}
    assert listing(client, run) == {"files": [{"path": "other", "is_dir": True}]}
    assert client.delete(url(run, "never/was.txt")).status_code == 200
    assert client.delete(url(run) + "/").status_code == 200
    assert keys(bucket) == {}


def test_deleting_a_project_deletes_its_objects_only(
    world, run, bucket, django_capture_on_commit_callbacks
):
    other = services.project_create(user=world.owner.user, team_slug="acme", slug="kept")
    kept = services.run_create(user=world.owner.user, project=other)
    upload(world.owner.client(), run, "model.pt", b"gone")
    upload(world.owner.client(), kept, "model.pt", b"kept")

    site = Client()
    site.force_login(world.owner.user)

    with django_capture_on_commit_callbacks(execute=True):
        response = site.post("/acme/mnist/settings/delete", {"confirm": "acme/mnist"})

    assert response.status_code == 302, response.content
    assert keys(bucket) == {f"{other.pk}/{kept.pk}/artifacts/model.pt": b"kept"}


# --- Who may do what --------------------------------------------------------------------------


def test_team_checks_hold_on_the_object_store(world, run, bucket):
    upload(world.owner.client(), run, "a.txt", b"abc")
    viewer, outsider = world.viewer.client(), world.outsider.client()
    refused = viewer.put(url(run, "b.txt"), data=b"x", content_type="application/octet-stream")
    assert refused.status_code == 403
    assert viewer.delete(url(run, "a.txt")).status_code == 403
    for response in [outsider.get(url(run, "a.txt")), outsider.delete(url(run, "a.txt"))]:
        assert response.status_code == 404
    assert list(keys(bucket)) == [f"{run.project_id}/{run.pk}/artifacts/a.txt"]


# --- Settings ---------------------------------------------------------------------------------


def test_the_filesystem_is_the_default_and_s3_needs_a_bucket():
    assert artifact_storage(bucket="", endpoint_url="", region="") == {
        "BACKEND": "tracking.storage.ArtifactFileStorage"
    }
    with pytest.raises(ImproperlyConfigured, match="ARTIFACTS_S3_BUCKET"):
        artifact_storage(bucket="", endpoint_url="http://minio:9000", region="")
    with pytest.raises(ImproperlyConfigured, match="ARTIFACTS_S3_ENDPOINT_URL"):
        artifact_storage(bucket="labbook-artifacts", endpoint_url="minio:9000", region="")
    with pytest.raises(ImproperlyConfigured, match="ARTIFACTS_S3_BUCKET must be a bucket name"):
        artifact_storage(bucket="s3://labbook", endpoint_url="", region="")


# --- The mlflow client against a live server --------------------------------------------------


def test_the_mlflow_client_round_trips_through_a_server_on_s3(
    s3_url, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    name = f"labbook-{uuid.uuid4().hex[:12]}"
    resource = boto3.resource("s3", endpoint_url=s3_url, region_name=REGION, **_boto_credentials())
    resource.create_bucket(Bucket=name)
    env = {
        **CREDENTIALS,
        "ARTIFACTS_S3_BUCKET": name,
        "ARTIFACTS_S3_ENDPOINT_URL": s3_url,
        "ARTIFACTS_S3_REGION": REGION,
    }
    with LabbookServer(tmp_path / "home", env=env) as server:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        mlflow.set_tracking_uri(server.url)
        client = MlflowClient()
        run = client.create_run(client.create_experiment("lab/s3"))
        source = tmp_path / "notes.txt"
        source.write_text("kept in a bucket")
        client.log_artifact(run.info.run_id, str(source), artifact_path="docs")

        downloaded = client.download_artifacts(run.info.run_id, "docs", str(tmp_path / "out"))

    assert (Path(downloaded) / "notes.txt").read_text() == "kept in a bucket"
    stored = [item.key for item in resource.Bucket(name).objects.all()]
    assert len(stored) == 1 and stored[0].endswith("/artifacts/docs/notes.txt")
    assert not list((tmp_path / "home" / "artifacts").rglob("*.txt"))


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


# --- Media ------------------------------------------------------------------------------------


def test_media_images_and_tables_are_objects_and_a_logged_image_artifact_serves_itself(
    world, run, bucket, tmp_path
):
    """The media API and MLflow's image artifacts keep their files in the bucket too."""
    picture = io.BytesIO()
    PILImage.new("RGB", (6, 4), (1, 2, 3)).save(picture, format="PNG")
    png = picture.getvalue()
    items = [
        {"key": "s", "step": 1, "kind": "image", "image": base64.b64encode(png).decode()},
        {"key": "t", "step": 1, "kind": "table", "columns": ["a"], "rows": [[1], [2]]},
    ]
    client = world.editor.client()
    answer = client.post(f"/api/v1/runs/{run.pk}/media", {"items": items}, format="json")
    assert answer.status_code == 200, answer.content
    image, table = answer.json()["items"]
    assert content(client.get(image["url"])) == png
    assert json.loads(content(client.get(table["url"]))) == {"columns": ["a"], "rows": [[1], [2]]}
    upload(client, run, "figures/loss.png", png)  # log_figure: an artifact that is an image
    mirrored = client.get(f"/api/v1/runs/{run.pk}/media/figures/loss.png").json()["items"][0]
    assert content(client.get(mirrored["url"])) == png
    stored = keys(bucket)
    assert stored[f"{run.project_id}/{run.pk}/artifacts/figures/loss.png"] == png
    assert sum(1 for key in stored if key.startswith(f"{run.project_id}/{run.pk}/media/")) == 2
    assert files_on_disk(tmp_path) == []


# --- Versioned artifacts ----------------------------------------------------------------------


def test_versioned_artifact_files_are_blobs_in_the_bucket_checked_as_they_stream(
    world, run, bucket
):
    """A version's files are objects keyed by content; a file whose bytes are not the
    manifest's is refused mid-stream and leaves no object behind."""
    client = world.editor.client()
    weights = os.urandom(9 * MIB)  # a multipart upload
    files = {"weights.bin": weights, "config.json": b'{"layers": 3}'}
    answer = versions.announce(client, run, {"bad.bin": b"expected"}, name="broken")
    pending = answer.json()["version"]["id"]
    refused = versions.put(
        client, pending, b"something else", versions.entry("x", b"expected")["sha256"]
    )
    assert refused.status_code == 400
    assert keys(bucket) == {}
    committed = versions.log(client, run, files)
    assert committed["version"] == "v0"
    got = client.get("/api/v1/projects/acme/mnist/artifacts/model/v0/files/weights.bin")
    assert content(got) == weights
    blobs = {key for key in keys(bucket) if "/blobs/" in key}
    assert len(blobs) == 2
    assert versions.log(client, run, files)["version"] == "v0"  # the same files: no new version
