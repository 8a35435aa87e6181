"""Versioned artifacts through the REST API (tracking/artifact_versions.py)."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest
from django.db import connection

from tracking import artifact_versions, services, storage
from tracking.models import ArtifactState, ArtifactUse, ArtifactVersion, Run


@pytest.fixture(autouse=True)
def home(settings, tmp_path):
    settings.LABBOOK_HOME = tmp_path
    return tmp_path


@pytest.fixture
def run(world):
    response = world.editor.client().post("/api/v1/runs", {"project": "acme/mnist"}, format="json")
    return Run.objects.get(pk=response.json()["id"])


def entry(path: str, data: bytes) -> dict:
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def announce(client, run, files: dict[str, bytes], name="model", **more):
    body = {"name": name, "files": [entry(p, d) for p, d in files.items()], **more}
    return client.post(f"/api/v1/runs/{run.pk}/artifact-versions", body, format="json")


def put(client, version_id: int, data: bytes, sha256: str | None = None):
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    return client.generic(
        "PUT",
        f"/api/v1/artifact-versions/{version_id}/files/{sha256}",
        data,
        content_type="application/octet-stream",
    )


def commit(client, version_id: int):
    return client.post(f"/api/v1/artifact-versions/{version_id}/commit")


def log(client, run, files: dict[str, bytes], **more) -> dict:
    """Announce, upload what is asked, commit: the committed version."""
    answer = announce(client, run, files, **more)
    assert answer.status_code in (200, 201), answer.content
    body = answer.json()
    if not body["created"]:
        return body["version"]
    by_sha = {hashlib.sha256(d).hexdigest(): d for d in files.values()}
    for upload in body["uploads"]:
        assert put(client, body["version"]["id"], by_sha[upload["sha256"]]).status_code == 200
    done = commit(client, body["version"]["id"])
    assert done.status_code == 200, done.content
    return done.json()


FILES = {"weights.bin": b"\x00\x01weights", "config/model.json": b'{"layers": 3}'}


def test_a_version_is_numbered_at_commit_and_the_same_files_are_the_same_version(world, run):
    client = world.editor.client()
    first = log(client, run, FILES, type="model", description="The net.")
    assert first["version"] == "v0" and first["state"] == "committed"
    assert first["reference"] == "acme/mnist/model:v0"
    assert first["producer"]["id"] == run.pk
    again = announce(client, run, FILES)
    assert again.status_code == 200
    assert again.json()["created"] is False and again.json()["uploads"] == []
    assert again.json()["version"]["version"] == "v0"
    second = log(client, run, {**FILES, "weights.bin": b"better weights"})
    assert second["version"] == "v1"
    assert ArtifactVersion.objects.count() == 2
    detail = client.get("/api/v1/projects/acme/mnist/artifacts/model").json()
    assert [v["version"] for v in detail["versions"]] == ["v1", "v0"]
    assert detail["type"] == "model"


def test_a_file_in_two_versions_is_stored_once_and_only_missing_ones_are_asked(world, run):
    client = world.editor.client()
    log(client, run, FILES)
    answer = announce(client, run, {**FILES, "extra.txt": b"new"}).json()
    assert [u["sha256"] for u in answer["uploads"]] == [hashlib.sha256(b"new").hexdigest()]
    blobs = list(storage.walk(f"{world.project.pk}/blobs"))
    assert len(blobs) == 2


def test_an_upload_whose_bytes_are_not_the_manifests_is_refused_and_nothing_kept(world, run):
    client = world.editor.client()
    version = announce(client, run, {"a.bin": b"right bytes"}).json()["version"]
    wrong = put(client, version["id"], b"wrong bytes", hashlib.sha256(b"right bytes").hexdigest())
    assert wrong.status_code == 400
    assert wrong.json()["error"]["field"] == "body"
    shorter = put(client, version["id"], b"right", hashlib.sha256(b"right bytes").hexdigest())
    assert shorter.status_code == 400
    assert list(storage.walk(f"{world.project.pk}/blobs")) == []
    unknown = put(client, version["id"], b"other")
    assert unknown.status_code == 404


def test_a_commit_with_a_missing_file_is_a_409_naming_it(world, run):
    client = world.editor.client()
    body = announce(client, run, {"a.bin": b"aaa", "b.bin": b"bbb"}).json()
    assert put(client, body["version"]["id"], b"aaa").status_code == 200
    refused = commit(client, body["version"]["id"])
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "files_missing"
    assert ArtifactVersion.objects.get().state == ArtifactState.PENDING
    # A pending version is not visible.
    assert world.owner.client().get("/api/v1/projects/acme/mnist/artifacts").json() == {
        "artifacts": []
    }
    resumed = announce(client, run, {"a.bin": b"aaa", "b.bin": b"bbb"}).json()
    assert resumed["version"]["id"] == body["version"]["id"]
    assert [u["sha256"] for u in resumed["uploads"]] == [hashlib.sha256(b"bbb").hexdigest()]


def test_use_records_the_consumer_and_the_file_downloads(world, run):
    client = world.editor.client()
    log(client, run, FILES)
    consumer = services.run_create(user=world.editor.user, project=world.project, name="eval")
    used = client.post(
        f"/api/v1/runs/{consumer.pk}/artifact-uses",
        {"artifact": "acme/mnist/model:latest"},
        format="json",
    )
    assert used.status_code == 200 and used.json()["recorded"] is True
    assert {f["path"] for f in used.json()["version"]["files"]} == set(FILES)
    again = client.post(
        f"/api/v1/runs/{consumer.pk}/artifact-uses",
        {"artifact": "acme/mnist/model:0"},
        format="json",
    )
    assert again.json()["recorded"] is False
    assert ArtifactUse.objects.count() == 1
    version = world.viewer.client().get("/api/v1/projects/acme/mnist/artifacts/model/v0").json()
    assert [c["id"] for c in version["consumers"]] == [consumer.pk]
    lineage = client.get(f"/api/v1/runs/{consumer.pk}/artifact-versions").json()
    assert [v["reference"] for v in lineage["used"]] == ["acme/mnist/model:v0"]
    file = client.get("/api/v1/projects/acme/mnist/artifacts/model/v0/files/config/model.json")
    assert file.status_code == 200
    assert b"".join(file.streaming_content) == FILES["config/model.json"]
    assert 'filename="model.json"' in file["Content-Disposition"]


def test_viewers_read_but_cannot_log_and_outsiders_find_nothing(world, run):
    log(world.editor.client(), run, FILES)
    viewer, outsider = world.viewer.client(), world.outsider.client()
    assert viewer.get("/api/v1/projects/acme/mnist/artifacts/model/latest").status_code == 200
    assert announce(viewer, run, {"x": b"x"}).status_code == 403
    pending = announce(world.editor.client(), run, {"x": b"x"}).json()["version"]
    assert put(viewer, pending["id"], b"x").status_code == 403
    assert commit(viewer, pending["id"]).status_code == 403
    assert outsider.get("/api/v1/projects/acme/mnist/artifacts/model/latest").status_code == 404
    assert put(outsider, pending["id"], b"x").status_code == 404
    assert commit(outsider, pending["id"]).status_code == 404
    mallory_run = services.run_create(
        user=world.outsider.user,
        project=services.project_create(user=world.outsider.user, team_slug="rival", slug="lab"),
    )
    stolen = outsider.post(
        f"/api/v1/runs/{mallory_run.pk}/artifact-uses",
        {"artifact": "acme/mnist/model:v0"},
        format="json",
    )
    assert stolen.status_code == 404


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ([{"path": "../x", "sha256": "0" * 64, "size": 1}], "files[0].path"),
        ([{"path": "a", "sha256": "A" * 64, "size": 1}], "files[0].sha256"),
        ([{"path": "a", "sha256": "0" * 64, "size": -1}], "files[0].size"),
        (
            [
                {"path": "a", "sha256": "0" * 64, "size": 1},
                {"path": "a/b", "sha256": "0" * 64, "size": 1},
            ],
            "files",
        ),
        ([], "files"),
    ],
)
def test_a_bad_manifest_is_a_400_naming_its_field(world, run, files, where):
    body = {"name": "model", "files": files}
    answer = world.editor.client().post(
        f"/api/v1/runs/{run.pk}/artifact-versions",
        json.dumps(body),
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == where


@pytest.mark.parametrize("name", ["a/b", "a:b", "-a", "a b", ""])
def test_a_name_that_would_not_parse_in_a_reference_is_refused(world, run, name):
    assert announce(world.editor.client(), run, {"a": b"a"}, name=name).status_code == 400


def test_deleting_the_project_removes_its_blobs(world, run):
    log(world.editor.client(), run, FILES)
    key = artifact_versions.blob_key(
        world.project.pk, hashlib.sha256(FILES["weights.bin"]).hexdigest()
    )
    assert storage.kind(key) == "file"
    storage.remove_project_files(world.project.pk)
    assert storage.kind(key) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_commits_never_share_a_number(world, run):
    if connection.vendor == "sqlite":
        pytest.skip("in-memory SQLite has no concurrent writers")
    client = world.editor.client()
    pending = []
    for index in range(6):
        files = {"f.bin": f"content {index}".encode()}
        body = announce(client, run, files).json()
        assert put(client, body["version"]["id"], files["f.bin"]).status_code == 200
        pending.append(body["version"]["id"])
    start = threading.Barrier(len(pending))
    failures: list[BaseException] = []

    def commit_one(version_id: int) -> None:
        try:
            start.wait()
            artifact_versions.version_commit(
                ArtifactVersion.objects.select_related("artifact").get(pk=version_id)
            )
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=commit_one, args=(v,)) for v in pending]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    numbers = sorted(ArtifactVersion.objects.values_list("version", flat=True))
    assert numbers == list(range(len(pending)))


def test_the_artifact_page_shows_producer_consumers_and_files(client, world, run):
    log(world.editor.client(), run, FILES)
    consumer = services.run_create(user=world.editor.user, project=world.project, name="eval-run")
    world.editor.client().post(
        f"/api/v1/runs/{consumer.pk}/artifact-uses", {"artifact": "acme/mnist/model"}, format="json"
    )
    client.force_login(world.viewer.user)
    page = client.get("/acme/mnist/artifacts/model").content.decode()
    assert run.get_absolute_url() in page and "eval-run" in page and "config/model.json" in page
    run_page = client.get(consumer.get_absolute_url()).content.decode()
    assert "Artifacts used" in run_page and "acme/mnist/model:v0" in run_page
    producer_page = client.get(run.get_absolute_url()).content.decode()
    assert "Artifacts logged" in producer_page and "model:v0" in producer_page
    assert client.get("/acme/mnist/artifacts/nothing").status_code == 404


def test_only_a_put_of_a_versions_file_may_carry_an_artifacts_size():
    from labbook.body_limit import is_upload

    sha256 = "0" * 64
    assert is_upload({"method": "PUT", "path": f"/api/v1/artifact-versions/3/files/{sha256}"})
    assert not is_upload({"method": "PUT", "path": "/api/v1/artifact-versions/3/files/x"})
    assert not is_upload({"method": "POST", "path": "/api/v1/runs/3/artifact-versions"})
    assert not is_upload({"method": "POST", "path": "/api/v1/artifact-versions/3/commit"})
