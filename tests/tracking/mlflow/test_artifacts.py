"""MLflow's proxied artifact store (``mlflow-artifacts``) and Labbook's own artifact API.

Requests are shaped as ``mlflow.store.artifact.http_artifact_repo`` sends them:
a raw-body PUT per file, GET to download, ``GET artifacts?path=`` to list one
folder, DELETE without a body.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import warnings
from pathlib import Path

import pytest
from mlflow.exceptions import _UnsupportedMultipartUploadException

from tracking import services
from tracking.mlflow import artifacts
from tracking.models import Run

LIST_URL = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture(autouse=True)
def home(settings, tmp_path: Path) -> Path:
    settings.LABBOOK_HOME = tmp_path
    return tmp_path


@pytest.fixture
def run(world) -> Run:
    return services.run_create(user=world.owner.user, project=world.project)


def run_path(run: Run, rel: str = "") -> str:
    return f"{run.project_id}/{run.pk}/artifacts" + (f"/{rel}" if rel else "")


def url(run: Run, rel: str = "", *, prefix: str = "api") -> str:
    return f"/{prefix}/2.0/mlflow-artifacts/artifacts/{run_path(run, rel)}"


def put(client, target: str, body: bytes):
    return client.put(target, data=body, content_type="application/octet-stream")


def upload(client, run: Run, rel: str, body: bytes) -> None:
    response = put(client, url(run, rel), body)
    assert response.status_code == 200, response.content
    assert response.json() == {}


def listing(client, path: str):
    return client.get(LIST_URL, {"path": path})


def content(response) -> bytes:
    return b"".join(response.streaming_content)


def error_code(response) -> str:
    return response.json()["error_code"]


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --- Upload and download ------------------------------------------------------------------------


def test_it_round_trips_a_nested_file_byte_for_byte(world, run, home):
    body = os.urandom(200_000)  # several 64 KiB chunks
    upload(world.editor.client(), run, "model/weights/w.bin", body)

    response = world.editor.client().get(url(run, "model/weights/w.bin"))

    assert response.status_code == 200
    assert content(response) == body
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    stored = home / "artifacts" / str(run.project_id) / str(run.pk) / "artifacts"
    assert (stored / "model" / "weights" / "w.bin").read_bytes() == body


def test_it_answers_under_the_ui_prefix_too(world, run):
    client = world.owner.client()
    assert put(client, url(run, "a.txt", prefix="ajax-api"), b"hi").status_code == 200
    assert content(client.get(url(run, "a.txt", prefix="ajax-api"))) == b"hi"


def test_it_accepts_the_token_as_a_basic_auth_password(world, run, anonymous):
    basic = base64.b64encode(f"alice:{world.owner.token}".encode()).decode()
    anonymous.credentials(HTTP_AUTHORIZATION=f"Basic {basic}")
    assert put(anonymous, url(run, "a.txt"), b"hi").status_code == 200


def test_it_types_inert_files_and_always_sends_an_attachment(world, run):
    client = world.owner.client()
    upload(client, run, "metrics.json", b"{}")
    upload(client, run, "page.html", b"<script>alert(1)</script>")
    metrics = client.get(url(run, "metrics.json"))
    page = client.get(url(run, "page.html"))
    metrics.close()  # headers only: the files need not be read
    page.close()
    assert metrics["Content-Type"] == "application/json"
    assert page["Content-Type"] == "application/octet-stream"  # never a page of the site
    assert page["Content-Disposition"] == 'attachment; filename="page.html"'
    assert page["X-Content-Type-Options"] == "nosniff"


def test_it_replaces_a_file_and_leaves_no_temporary_file(world, run, home):
    client = world.owner.client()
    upload(client, run, "model.pt", b"first")
    upload(client, run, "model.pt", b"second")
    assert content(client.get(url(run, "model.pt"))) == b"second"
    assert files_under(home / "artifacts" / str(run.project_id) / str(run.pk) / "artifacts") == [
        "model.pt"
    ]


def test_it_streams_a_download_block_by_block_under_asgi(tmp_path):
    path = tmp_path / "big.bin"
    body = os.urandom(10_000)
    path.write_bytes(body)
    response = artifacts.file_response(path)
    response.block_size = 4096

    async def receive() -> list[bytes]:
        return [block async for block in response]

    with warnings.catch_warnings():
        # Django's fallback warns that it gathers a synchronous iterator into one list.
        warnings.simplefilter("error")
        blocks = asyncio.run(receive())
    response.file_to_stream.close()
    assert [len(block) for block in blocks] == [4096, 4096, 1808]
    assert b"".join(blocks) == body


@pytest.mark.parametrize("rel", ["missing.txt", "folder", ""])
def test_it_answers_404_for_a_folder_or_a_missing_file(world, run, rel):
    upload(world.owner.client(), run, "folder/inside.txt", b"x")
    response = world.owner.client().get(url(run, rel) + ("/" if not rel else ""))
    assert response.status_code == 404
    assert error_code(response) == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize("rel", ["", "folder"])
def test_it_refuses_an_upload_without_a_file_name_or_onto_a_folder(world, run, rel):
    upload(world.owner.client(), run, "folder/inside.txt", b"x")
    response = put(world.owner.client(), url(run, rel) + "/", b"data")
    assert response.status_code == 400
    assert error_code(response) == "INVALID_PARAMETER_VALUE"


def test_it_refuses_an_upload_below_a_file(world, run):
    upload(world.owner.client(), run, "model.pt", b"x")
    response = put(world.owner.client(), url(run, "model.pt/inside"), b"data")
    assert response.status_code == 400
    assert error_code(response) == "INVALID_PARAMETER_VALUE"


def test_it_answers_mlflow_json_for_other_methods_and_paths(world, run):
    client = world.owner.client()
    assert error_code(client.post(url(run, "a.txt"))) == "ENDPOINT_NOT_FOUND"
    assert client.post(url(run, "a.txt")).status_code == 405
    response = client.get("/api/2.0/mlflow-artifacts/nothing-here")
    assert (response.status_code, error_code(response)) == (404, "ENDPOINT_NOT_FOUND")


def test_it_tells_a_client_forcing_multipart_upload_to_fall_back(world, run):
    response = world.owner.client().post(
        f"/api/2.0/mlflow-artifacts/mpu/create/{run_path(run)}", {}, format="json"
    )
    assert response.status_code == 501
    assert response.json()["message"].startswith(_UnsupportedMultipartUploadException.MESSAGE)


# --- Size limit -------------------------------------------------------------------------------


def test_it_refuses_an_oversized_upload_and_keeps_nothing(world, run, settings, home):
    settings.LABBOOK = {**settings.LABBOOK, "ARTIFACTS_MAX_BYTES": 10}
    client = world.owner.client()

    response = put(client, url(run, "new/folder/big.bin"), b"x" * 11)

    assert response.status_code == 413
    assert error_code(response) == "INVALID_PARAMETER_VALUE"
    assert "10 bytes" in response.json()["message"]
    assert files_under(home / "artifacts") == []
    assert put(client, url(run, "new/folder/fits.bin"), b"x" * 10).status_code == 200


def test_it_counts_a_body_of_unknown_length_and_keeps_nothing(run, home):
    location = artifacts.run_location(run, "new/folder/big.bin")
    with pytest.raises(artifacts.TooLarge):
        artifacts.artifact_write(
            location=location, stream=io.BytesIO(b"x" * 200_000), max_bytes=100_000
        )
    assert files_under(home) == []


# --- Listing ------------------------------------------------------------------------------------


def test_it_lists_one_folder_with_paths_relative_to_it(world, run):
    client = world.owner.client()
    upload(client, run, "a.txt", b"abc")
    upload(client, run, "sub/b.txt", b"hello")
    upload(client, run, "sub/deeper/c.txt", b"")

    assert listing(client, run_path(run)).json() == {
        "files": [
            {"path": "a.txt", "is_dir": False, "file_size": 3},
            {"path": "sub", "is_dir": True},
        ]
    }
    assert listing(client, run_path(run, "sub/")).json() == {
        "files": [
            {"path": "b.txt", "is_dir": False, "file_size": 5},
            {"path": "deeper", "is_dir": True},
        ]
    }


def test_it_lists_a_run_without_artifacts_as_nothing(world, run):
    assert listing(world.owner.client(), run_path(run)).json() == {}


@pytest.mark.parametrize("rel", ["missing", "a.txt"])
def test_it_lists_a_missing_folder_or_a_file_as_nothing(world, run, rel):
    upload(world.owner.client(), run, "a.txt", b"abc")
    assert listing(world.owner.client(), run_path(run, rel)).json() == {}


def test_it_refuses_to_list_above_a_run_folder(world, run):
    client = world.owner.client()
    upload(client, run, "a.txt", b"abc")
    for path in ["", str(run.project_id), f"{run.project_id}/{run.pk}", f"x/{run.pk}/artifacts"]:
        response = listing(client, path)
        assert response.status_code == 400, path
        assert error_code(response) == "INVALID_PARAMETER_VALUE"
    assert client.get(LIST_URL).status_code == 400


# --- Delete -------------------------------------------------------------------------------------


def test_it_deletes_a_file_then_a_folder_then_everything(world, run):
    client = world.owner.client()
    for rel in ["a.txt", "sub/b.txt", "sub/c.txt", "other/d.txt"]:
        upload(client, run, rel, b"x")

    assert client.delete(url(run, "a.txt")).json() == {}
    assert client.delete(url(run, "sub")).json() == {}
    assert listing(client, run_path(run)).json() == {"files": [{"path": "other", "is_dir": True}]}
    assert client.delete(url(run) + "/").status_code == 200  # delete_artifacts() with no path
    assert listing(client, run_path(run)).json() == {}


def test_it_deletes_a_missing_artifact_without_complaint(world, run):
    response = world.owner.client().delete(url(run, "never/was.txt"))
    assert (response.status_code, response.json()) == (200, {})


# --- Unsafe paths -------------------------------------------------------------------------------


UNSAFE = [
    "../../../etc/passwd",
    "sub/../../other",
    "%2E%2E/%2E%2E/x",  # Django decodes the path once: this is "../../x"
    "a%5Cb",  # a backslash
    "./a.txt",
    "a//b",
    ".labbook-upload-x",  # the temporary files' prefix
    "x" * 256,
]


@pytest.mark.parametrize("rel", UNSAFE)
def test_it_refuses_an_unsafe_path_in_every_verb(world, run, home, rel):
    client = world.owner.client()
    target = url(run, rel)
    for response in [put(client, target, b"x"), client.get(target), client.delete(target)]:
        assert response.status_code == 400, (rel, response.content)
        assert error_code(response) == "INVALID_PARAMETER_VALUE"
    decoded = rel.replace("%2E", ".").replace("%5C", "\\")
    assert error_code(listing(client, run_path(run, decoded))) == "INVALID_PARAMETER_VALUE"
    assert files_under(home) == []


def test_it_refuses_an_absolute_path(world, run):
    client = world.owner.client()
    assert put(client, f"{LIST_URL}//tmp/evil", b"x").status_code == 400
    assert error_code(client.get(f"{LIST_URL}//etc/passwd")) == "INVALID_PARAMETER_VALUE"
    assert error_code(listing(client, f"/{run_path(run)}")) == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    "path", ["a/../b", "/abs", "a\\b", "a\x00b", "./a", "a//b", "..", ".labbook-upload-1"]
)
def test_clean_path_refuses_what_could_climb_out(path):
    with pytest.raises(artifacts.ApplicationError) as raised:
        artifacts.clean_path(path)
    assert raised.value.status == 400


def test_clean_path_keeps_ordinary_names():
    assert artifacts.clean_path("model/v1.2/weights..bin") == ["model", "v1.2", "weights..bin"]
    assert artifacts.clean_path("folder/") == ["folder"]
    assert artifacts.clean_path("") == []


def test_it_refuses_a_nul_in_the_path(world, run):
    assert world.owner.client().get(url(run, "a%00b")).status_code == 400


def test_it_does_not_follow_a_symlink_out_of_the_run_folder(world, run, home):
    outside = home / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = artifacts.run_root(run)
    root.mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "a.txt").write_text("ok")
    client = world.owner.client()

    for response in [
        client.get(url(run, "link/secret.txt")),
        put(client, url(run, "link/new.txt"), b"x"),
        client.delete(url(run, "link")),
        listing(client, run_path(run, "link")),
    ]:
        assert response.status_code == 400
        assert error_code(response) == "INVALID_PARAMETER_VALUE"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert listing(client, run_path(run)).json()["files"] == [
        {"path": "a.txt", "is_dir": False, "file_size": 2}
    ]
    body = client.get(f"/api/v1/runs/{run.pk}/artifacts").json()
    assert body == {"artifacts": [{"path": "a.txt", "size": 2}]}


# --- Who may do what ----------------------------------------------------------------------------


def test_a_viewer_can_read_but_not_write(world, run):
    upload(world.owner.client(), run, "a.txt", b"abc")
    viewer = world.viewer.client()

    assert content(viewer.get(url(run, "a.txt"))) == b"abc"
    assert listing(viewer, run_path(run)).status_code == 200
    for response in [put(viewer, url(run, "b.txt"), b"x"), viewer.delete(url(run, "a.txt"))]:
        assert response.status_code == 403
        assert error_code(response) == "PERMISSION_DENIED"
    assert listing(viewer, run_path(run)).json()["files"] == [
        {"path": "a.txt", "is_dir": False, "file_size": 3}
    ]


def test_an_outsider_sees_nothing(world, run, home):
    upload(world.owner.client(), run, "a.txt", b"abc")
    outsider = world.outsider.client()

    for response in [
        outsider.get(url(run, "a.txt")),
        put(outsider, url(run, "b.txt"), b"x"),
        outsider.delete(url(run, "a.txt")),
        listing(outsider, run_path(run)),
    ]:
        assert response.status_code == 404
        assert error_code(response) == "RESOURCE_DOES_NOT_EXIST"
    assert files_under(artifacts.run_root(run)) == ["a.txt"]


def test_another_experiment_id_names_no_run(world, run):
    upload(world.owner.client(), run, "a.txt", b"abc")
    other = services.project_create(user=world.owner.user, team_slug="acme", slug="other")
    client = world.owner.client()
    for path in [
        f"{other.pk}/{run.pk}/artifacts/a.txt",
        f"0{run.project_id}/{run.pk}/artifacts/a.txt",
        f"{run.project_id}/0{run.pk}/artifacts/a.txt",
        f"{run.project_id}/{run.pk + 1000}/artifacts/a.txt",
    ]:
        response = client.get(f"{LIST_URL}/{path}")
        assert response.status_code == 404, path
        assert error_code(response) == "RESOURCE_DOES_NOT_EXIST"


def test_it_needs_a_token(world, run, anonymous):
    upload(world.owner.client(), run, "a.txt", b"abc")
    for response in [
        anonymous.get(url(run, "a.txt")),
        put(anonymous, url(run, "b.txt"), b"x"),
        anonymous.delete(url(run, "a.txt")),
        listing(anonymous, run_path(run)),
    ]:
        assert response.status_code == 401
        assert error_code(response) == "UNAUTHENTICATED"
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert anonymous.get(url(run, "a.txt")).status_code == 401


# --- Labbook's API --------------------------------------------------------------------------------


def test_the_api_lists_every_file_by_path(world, run, django_assert_max_num_queries):
    client = world.owner.client()
    for rel, body in [("z.txt", b"1"), ("model/b.bin", b"22"), ("model/a/c.bin", b"333")]:
        upload(client, run, rel, body)

    with django_assert_max_num_queries(3):
        response = world.viewer.client().get(f"/api/v1/runs/{run.pk}/artifacts")

    assert response.json() == {
        "artifacts": [
            {"path": "model/a/c.bin", "size": 3},
            {"path": "model/b.bin", "size": 2},
            {"path": "z.txt", "size": 1},
        ]
    }


def test_the_api_lists_a_run_without_artifacts_as_empty(world, run):
    response = world.owner.client().get(f"/api/v1/runs/{run.pk}/artifacts")
    assert response.json() == {"artifacts": []}


def test_the_api_downloads_one_file(world, run):
    body = os.urandom(70_000)
    upload(world.owner.client(), run, "model/w.bin", body)
    response = world.viewer.client().get(f"/api/v1/runs/{run.pk}/artifacts/model/w.bin")
    assert response.status_code == 200
    assert content(response) == body


def test_the_api_answers_missing_unsafe_and_hidden_in_its_own_shape(world, run):
    upload(world.owner.client(), run, "model/w.bin", b"x")
    client = world.owner.client()
    missing = client.get(f"/api/v1/runs/{run.pk}/artifacts/model")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    unsafe = client.get(f"/api/v1/runs/{run.pk}/artifacts/%2E%2E/x")
    assert (unsafe.status_code, unsafe.json()["error"]["field"]) == (400, "path")
    for target in [
        f"/api/v1/runs/{run.pk}/artifacts",
        f"/api/v1/runs/{run.pk}/artifacts/model/w.bin",
    ]:
        assert world.outsider.client().get(target).status_code == 404


@pytest.mark.parametrize(
    ("name", "served_as"),
    [
        ("evil.js", "application/octet-stream"),
        ("evil.html", "application/octet-stream"),
        ("evil.svg", "application/octet-stream"),
        ("style.css", "application/octet-stream"),
        ("plot.png", "image/png"),
        ("log.txt", "text/plain"),
    ],
)
def test_an_uploaded_file_is_never_served_as_something_a_browser_runs(tmp_path, name, served_as):
    """A script or page uploaded as an artifact must not run as the site (security review):
    active types go out as bytes, with nosniff and a sandboxing policy, as an attachment."""
    path = tmp_path / name
    path.write_bytes(b"alert(document.cookie)")
    response = artifacts.file_response(path)
    response.file_to_stream.close()
    assert response["Content-Type"].split(";")[0] == served_as
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"].startswith("sandbox")
    assert response["Content-Disposition"].startswith("attachment")
