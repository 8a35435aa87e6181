"""Versioned artifacts from the SDK against a real server (tracking/sdk/artifacts.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.proxy import FaultProxy
from tests.sdk.server import LabbookServer
from tracking import sdk

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(120)]

UPLOADS = r"/api/v1/artifact-versions/\d+/files/"
COMMITS = r"/api/v1/artifact-versions/\d+/commit"
ANNOUNCES = r"/api/v1/runs/\d+/artifact-versions"


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


FILES = {
    "weights.bin": bytes(range(256)) * 300,
    "config/model.json": b'{"layers": 3}',
    "config/tokenizer.json": b'{"vocab": 10}',
}


def versions(server: LabbookServer, project: str, name: str) -> list[dict[str, Any]]:
    return server.get(f"/api/v1/projects/{project}/artifacts/{name}")["versions"]


def test_the_same_folder_twice_is_one_version_and_a_change_makes_the_next(
    server: LabbookServer, project: str, start_run: Callable[..., Any], tmp_path: Path
):
    folder = make_folder(tmp_path / "model", FILES)
    run = start_run()
    first = run.log_artifact(folder, name="model", type="model").wait(60)
    again = run.log_artifact(folder, name="model").wait(60)
    assert first["version"] == again["version"] == "v0"
    assert first["file_count"] == 3 and first["producer"]["id"] == run.id
    (folder / "config/model.json").write_bytes(b'{"layers": 4}')
    changed = run.log_artifact(folder, name="model").wait(60)
    assert changed["version"] == "v1"
    assert [v["version"] for v in versions(server, project, "model")] == ["v1", "v0"]
    lineage = server.get(f"/api/v1/runs/{run.id}/artifact-versions")
    assert [v["version"] for v in lineage["logged"]] == ["v0", "v1"]


def test_use_artifact_downloads_the_right_bytes_and_the_version_shows_its_consumer(
    server: LabbookServer, project: str, start_run: Callable[..., Any], tmp_path: Path
):
    producer = start_run(name="train")
    producer.log_artifact(make_folder(tmp_path / "data", FILES), name="data", type="dataset")
    producer.finish()  # waits for the upload
    consumer = start_run(name="evaluate")
    folder = consumer.use_artifact(f"{project}/data:latest", root=tmp_path / "cache")
    assert folder == tmp_path / "cache" / project / "data" / "v0"
    for path, data in FILES.items():
        assert (folder / path).read_bytes() == data
    version = server.get(f"/api/v1/projects/{project}/artifacts/data/v0")
    assert [c["id"] for c in version["consumers"]] == [consumer.id]
    assert version["producer"]["id"] == producer.id
    # Downloaded again: the files are checked, not fetched; a damaged one is fetched anew.
    (folder / "weights.bin").write_bytes(b"damaged")
    again = sdk.use_artifact(f"{project}/data:v0", root=tmp_path / "cache")
    assert (again / "weights.bin").read_bytes() == FILES["weights.bin"]
    with pytest.raises(sdk.LabbookError):
        sdk.use_artifact(f"{project}/data:v7", root=tmp_path / "cache")


def test_finish_waits_for_an_upload_in_progress(
    server: LabbookServer, project: str, start_run: Callable[..., Any], tmp_path: Path
):
    run = start_run()
    upload = run.log_artifact(make_folder(tmp_path / "ckpt", FILES), name="ckpt")
    run.finish()
    assert upload.done
    assert [v["version"] for v in versions(server, project, "ckpt")] == ["v0"]


def test_an_outage_during_the_upload_resumes_and_sends_nothing_twice(
    server: LabbookServer,
    proxy: FaultProxy,
    project: str,
    start_run: Callable[..., Any],
    tmp_path: Path,
):
    run = start_run(url=proxy.url)
    proxy.fail("status", 3, status=503, method="PUT", path=UPLOADS)  # down for a while
    proxy.fail("drop_response", 1, method="PUT", path=UPLOADS)  # stored; the answer lost
    proxy.fail("close", 1, method="POST", path=ANNOUNCES)  # the resumption fails once too
    proxy.fail("drop_response", 1, method="POST", path=COMMITS)  # committed; the answer lost
    version = run.log_artifact(make_folder(tmp_path / "model", FILES), name="model").wait(90)
    assert version["version"] == "v0"
    assert [v["version"] for v in versions(server, project, "model")] == ["v0"]
    puts = proxy.counters.where(method="PUT", path=UPLOADS)
    reached = [r for r in puts if r.outcome in ("forwarded", "dropped response")]
    refused = [r for r in puts if r.outcome.startswith("status")]
    assert len(refused) == 3
    # Each file reached the server once: the one whose answer was lost was not sent again.
    wanted = {hashlib.sha256(data).hexdigest() for data in FILES.values()}
    assert sorted(r.path.rsplit("/", 1)[1] for r in reached) == sorted(wanted)


def test_a_server_down_for_good_is_reported_by_wait_and_the_run_still_finishes(
    own_server: LabbookServer,
    project: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("LABBOOK_RETRY_SECONDS", "2")
    run = sdk.init(project=project, url=own_server.url, token=own_server.token)
    own_server.stop()
    upload = run.log_artifact(make_folder(tmp_path / "m", {"a.txt": b"a"}), name="m")
    with pytest.raises(Exception, match="was not logged"):
        upload.wait(60)
    run.finish()
