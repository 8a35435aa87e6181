"""MLflow's images, tables, figures and texts become Labbook media (media_artifacts.py).

The first part sends requests shaped as the client's (raw-body PUTs, set-tag)
through Django's test client; the second runs the unmodified ``mlflow`` client
against a live Labbook server and reads the items back through ``/api/v1``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from tests.sdk.proxy import FaultProxy
from tests.sdk.server import LabbookServer
from tests.support import services_free, wait_until
from tests.tracking.mlflow.test_client import client_env
from tracking import services, storage
from tracking.mlflow import media_artifacts
from tracking.mlflow.media_artifacts import Source, source_of
from tracking.models import MediaItem, MediaKind, Run

WAIT = 60.0
STEPPED = "images/samples~a+step+3+timestamp+1796552492286+9d9f9de9-8cc2-4d4b-84d7-be5092662198"


def png(color: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG", size=(8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def table_json(rows: list[list[Any]]) -> bytes:
    return json.dumps({"columns": ["a", "b"], "data": rows}).encode()


# --- Which files stand for which items ----------------------------------------------------------


def test_a_stepped_image_is_its_key_and_step_and_its_thumbnail_nothing():
    assert source_of(f"{STEPPED}.png", {}) == Source("image", "samples/a", 3, 1796552492.286)
    assert source_of(f"{STEPPED}+compressed.webp", {}) is None


def test_other_image_files_are_keyed_by_path_and_cell_images_are_not_items():
    assert source_of("plots/fig.png", {}) == Source("image", "plots/fig.png")
    assert source_of("x.JPG", {}) == Source("image", "x.JPG")
    assert source_of("table_images/preds/1f.png", {}) is None
    assert source_of("images/k+step+-1+timestamp+5+abc.png", {}) is None  # a negative step


def test_a_json_file_is_a_table_only_when_the_tag_lists_it_and_else_a_text():
    tags = {"mlflow.loggedArtifacts": json.dumps([{"path": "d/preds.json", "type": "table"}])}
    assert source_of("d/preds.json", tags) == Source("table", "d/preds.json")
    assert source_of("d/other.json", tags) == Source("text", "d/other.json")
    assert source_of("d/preds.json", {}) == Source("text", "d/preds.json")
    bad_tag = {"mlflow.loggedArtifacts": "not json"}
    assert source_of("d/preds.json", bad_tag) == Source("text", "d/preds.json")


def test_the_files_of_a_logged_model_stay_files():
    for name in ("MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt"):
        assert source_of(f"model/{name}", {}) is None
    assert source_of("notes/requirements.md", {}) == Source("text", "notes/requirements.md")


# --- Through the proxied artifact endpoints ------------------------------------------------------


@pytest.fixture(autouse=True)
def home(settings, tmp_path: Path) -> Path:
    settings.LABBOOK_HOME = tmp_path
    return tmp_path


@pytest.fixture
def run(world) -> Run:
    return services.run_create(user=world.owner.user, project=world.project)


def url(run: Run, rel: str) -> str:
    return f"/api/2.0/mlflow-artifacts/artifacts/{run.project_id}/{run.pk}/artifacts/{rel}"


def upload(client, run: Run, rel: str, body: bytes) -> None:
    response = client.put(url(run, rel), data=body, content_type="application/octet-stream")
    assert response.status_code == 200, response.content
    assert response.json() == {}


def set_tag(client, run: Run, key: str, value: str) -> None:
    body = {"run_id": str(run.pk), "key": key, "value": value}
    response = client.post("/api/2.0/mlflow/runs/set-tag", body, format="json")
    assert response.status_code == 200, response.content


def tag_tables(client, run: Run, *paths: str) -> None:
    listed = [{"path": path, "type": "table"} for path in paths]
    set_tag(client, run, media_artifacts.TABLES_TAG, json.dumps(listed))


def items(run: Run) -> list[MediaItem]:
    return list(MediaItem.objects.filter(run=run).order_by("key", "step", "id"))


def test_a_stepped_image_points_at_the_stored_file_and_its_thumbnail_is_no_item(world, run):
    client = world.editor.client()
    upload(client, run, f"{STEPPED}.png", png())
    upload(client, run, f"{STEPPED}+compressed.webp", png(fmt="WEBP"))
    [item] = items(run)
    assert (item.key, item.step, item.kind) == ("samples/a", 3, MediaKind.IMAGE)
    assert item.file == f"{run.project_id}/{run.pk}/artifacts/{STEPPED}.png"  # no copy
    assert item.meta == {"width": 8, "height": 6, "format": "png", "artifact": f"{STEPPED}.png"}
    assert item.timestamp == pytest.approx(1796552492.286)
    answer = client.get(f"/api/v1/media/{item.pk}")
    assert answer["Content-Type"] == "image/png"
    assert b"".join(answer.streaming_content) == png()


def test_a_file_that_does_not_decode_stays_a_plain_file(world, run):
    client = world.editor.client()
    upload(client, run, "broken.png", png()[:40])
    upload(client, run, "notes.txt", "hello".encode("utf-16"))  # text, but not UTF-8
    assert items(run) == []
    listed = client.get(f"/api/2.0/mlflow/artifacts/list?run_id={run.pk}").json()["files"]
    assert [entry["path"] for entry in listed] == ["broken.png", "notes.txt"]


def test_the_same_file_uploaded_twice_is_one_item(world, run):
    client = world.editor.client()
    upload(client, run, "x.png", png())
    upload(client, run, "x.png", png())
    assert [(item.key, item.step) for item in items(run)] == [("x.png", 0)]


def test_a_replaced_image_replaces_its_item_and_a_bad_replacement_removes_it(world, run):
    client = world.editor.client()
    upload(client, run, "x.png", png((1, 2, 3)))
    first = items(run)[0]
    upload(client, run, "x.png", png((4, 5, 6)))
    [second] = items(run)
    assert second.digest != first.digest
    upload(client, run, "x.png", b"not an image any more")
    assert items(run) == []


def test_a_folder_of_images_becomes_at_most_max_plain_files_items(world, run, monkeypatch):
    monkeypatch.setattr(media_artifacts, "MAX_PLAIN_FILES", 3)
    client = world.editor.client()
    for index in range(5):
        upload(client, run, f"dataset/{index}.png", png(color=(index, 0, 0)))
    upload(client, run, f"{STEPPED}.png", png())  # a stepped image is not counted
    upload(client, run, "dataset/0.png", png(color=(9, 9, 9)))  # a replaced one stays current
    shown = [(item.key, item.step) for item in items(run)]
    assert shown == [
        ("dataset/0.png", 0),
        ("dataset/1.png", 0),
        ("dataset/2.png", 0),
        ("samples/a", 3),
    ]
    assert items(run)[0].meta["artifact"] == "dataset/0.png"


def test_a_jpeg_named_jpg_is_kept_as_a_copy_served_as_jpeg(world, run):
    client = world.editor.client()
    upload(client, run, "photos/cat.jpg", png(fmt="JPEG"))
    [item] = items(run)
    assert item.file.endswith(".jpeg") and "/media/" in item.file
    answer = client.get(f"/api/v1/media/{item.pk}")
    answer.close()
    assert answer["Content-Type"] == "image/jpeg"


def test_a_table_is_media_once_tagged_and_follows_its_file_when_rows_are_appended(world, run):
    client = world.editor.client()
    upload(client, run, "preds.json", table_json([[1, "x"], [2, "y"]]))
    assert [i.kind for i in items(run)] == [MediaKind.TEXT]  # any JSON; the tag says a table
    tag_tables(client, run, "preds.json")
    [first] = items(run)
    assert (first.key, first.step, first.kind) == ("preds.json", 0, MediaKind.TABLE)
    assert first.meta == {"columns": ["a", "b"], "rows": 2, "artifact": "preds.json"}

    upload(client, run, "preds.json", table_json([[1, "x"], [2, "y"], [3, "z"]]))  # appended
    [second] = items(run)
    assert second.meta["rows"] == 3
    answer = client.get(f"/api/v1/media/{second.pk}")
    assert json.loads(b"".join(answer.streaming_content)) == {
        "columns": ["a", "b"],
        "rows": [[1, "x"], [2, "y"], [3, "z"]],
    }
    tag_tables(client, run, "preds.json", "other.json")  # a second table: the first is kept
    assert [item.pk for item in items(run)] == [second.pk]


def test_a_table_with_image_cells_stays_a_plain_file(world, run):
    client = world.editor.client()
    cell = {"type": "image", "filepath": "table_images/t/1.png"}
    upload(client, run, "t.json", json.dumps({"columns": ["img"], "data": [[cell]]}).encode())
    tag_tables(client, run, "t.json")
    assert items(run) == []


def test_deleting_a_file_or_its_folder_removes_its_items(world, run):
    client = world.editor.client()
    upload(client, run, "plots/a.png", png((1, 1, 1)))
    upload(client, run, "plots/b.png", png((2, 2, 2)))
    upload(client, run, "top.png", png((3, 3, 3)))
    assert client.delete(url(run, "plots/a.png")).status_code == 200
    assert [item.key for item in items(run)] == ["plots/b.png", "top.png"]
    assert client.delete(url(run, "plots")).status_code == 200
    assert [item.key for item in items(run)] == ["top.png"]


def test_a_copy_kept_for_an_item_goes_with_it_and_a_text_is_no_copy(
    world, run, django_capture_on_commit_callbacks
):
    client = world.editor.client()
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, run, "a.jpg", png(fmt="JPEG"))  # kept as a copy under media/
        upload(client, run, "notes.md", b"# Notes\n")
        [copy] = [item.file for item in items(run) if "/media/" in item.file]
        assert storage.kind(copy) == "file"
        assert client.delete(url(run, "a.jpg")).status_code == 200
        assert client.delete(url(run, "notes.md")).status_code == 200
    assert items(run) == []
    assert storage.kind(copy) is None
    assert storage.listing(f"{run.project_id}/{run.pk}", f"{run.project_id}/{run.pk}/media") == []


# --- The unmodified mlflow client against a live server -------------------------------------------


@pytest.fixture(scope="module")
@services_free
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    with LabbookServer(tmp_path_factory.mktemp("mlflow-media") / "home") as running:
        yield running


@pytest.fixture
def live(server: LabbookServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    for name, value in client_env(server).items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(server.url)
    return MlflowClient()


def media_of(server: LabbookServer, run_id: str, key: str) -> list[dict[str, Any]]:
    with server.client() as http:
        answer = http.get(f"/api/v1/runs/{run_id}/media/{key}")
    return answer.json()["items"] if answer.status_code == 200 else []


def wait_for_items(server: LabbookServer, run_id: str, key: str, count: int) -> list[Any]:
    assert wait_until(lambda: len(media_of(server, run_id, key)) >= count, timeout=WAIT)
    return media_of(server, run_id, key)


def file_bytes(server: LabbookServer, item: dict[str, Any]) -> bytes:
    with server.client() as http:
        return http.get(item["url"]).raise_for_status().content


def artifact_bytes(live: MlflowClient, run_id: str, path: str, tmp_path: Path) -> bytes:
    return Path(live.download_artifacts(run_id, path, str(tmp_path))).read_bytes()


@pytest.mark.subprocess
def test_log_image_with_a_key_and_step_from_numpy_and_pil(
    server: LabbookServer, live: MlflowClient, tmp_path: Path
):
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    pixels[:, :, 1] = 200
    # The fluent call uploads from a background thread. An experiment named: the fluent API
    # remembers the last one another test of this process set.
    with mlflow.start_run(experiment_id="0") as active:
        mlflow.log_image(pixels, key="samples/val", step=3)
        mlflow.log_image(Image.new("RGB", (10, 10), (9, 9, 9)), key="samples/val", step=4)
    run_id = active.info.run_id
    found = wait_for_items(server, run_id, "samples/val", 2)
    assert [(item["step"], item["width"], item["height"]) for item in found] == [
        (3, 30, 20),
        (4, 10, 10),
    ]
    names = [entry.path for entry in live.list_artifacts(run_id, "images")]
    assert len(names) == 4  # each image and its compressed thumbnail: still plain files
    original = next(name for name in names if "+step+3+" in name and name.endswith(".png"))
    assert found[0]["artifact"] == original
    assert file_bytes(server, found[0]) == artifact_bytes(live, run_id, original, tmp_path)
    keys = server.get(f"/api/v1/runs/{run_id}/media")["media"]
    assert [(entry["key"], entry["kind"], entry["count"]) for entry in keys] == [
        ("samples/val", "image", 2)
    ]


@pytest.mark.subprocess
def test_log_image_to_an_artifact_file_and_the_same_file_twice(
    server: LabbookServer, live: MlflowClient
):
    run_id = live.create_run("0").info.run_id
    live.log_image(run_id, np.full((5, 7), 128, dtype=np.uint8), artifact_file="plots/gray.png")
    live.log_image(run_id, Image.new("RGBA", (4, 4)), artifact_file="rgba.png")
    live.log_image(run_id, Image.new("RGBA", (4, 4)), artifact_file="rgba.png")
    [gray] = media_of(server, run_id, "plots/gray.png")
    assert (gray["step"], gray["width"], gray["height"], gray["format"]) == (0, 7, 5, "png")
    assert len(media_of(server, run_id, "rgba.png")) == 1
    listed = {entry.path for entry in live.list_artifacts(run_id)}
    assert listed == {"plots", "rgba.png"}


@pytest.mark.subprocess
def test_log_table_is_a_table_that_follows_appended_rows(server: LabbookServer, live: MlflowClient):
    run_id = live.create_run("0").info.run_id
    live.log_table(run_id, {"id": [1, 2], "label": ["cat", "dog"]}, artifact_file="eval/preds.json")
    [first] = media_of(server, run_id, "eval/preds.json")
    assert (first["kind"], first["columns"], first["rows"]) == ("table", ["id", "label"], 2)
    live.log_table(run_id, {"id": [3], "label": ["eel"]}, artifact_file="eval/preds.json")
    [latest] = media_of(server, run_id, "eval/preds.json")
    assert latest["rows"] == 3 and latest["digest"] != first["digest"]
    assert json.loads(file_bytes(server, latest))["rows"] == [[1, "cat"], [2, "dog"], [3, "eel"]]
    assert len(live.load_table("0", "eval/preds.json", run_ids=[run_id])) == 3  # MLflow's view


@pytest.mark.subprocess
def test_log_figure_from_matplotlib_is_an_image(server: LabbookServer, live: MlflowClient):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(2, 1.5), dpi=50)
    axes.plot([0, 1], [1, 0])
    run_id = live.create_run("0").info.run_id
    live.log_figure(run_id, figure, "figures/loss.png")
    pyplot.close(figure)
    [item] = media_of(server, run_id, "figures/loss.png")
    assert (item["kind"], item["width"], item["height"]) == ("image", 100, 75)


@pytest.mark.subprocess
def test_a_plotly_figure_saved_as_html_stays_a_file(server: LabbookServer, live: MlflowClient):
    from plotly import graph_objects

    run_id = live.create_run("0").info.run_id
    live.log_figure(run_id, graph_objects.Figure(graph_objects.Scatter(x=[0, 1])), "fig.html")
    assert server.get(f"/api/v1/runs/{run_id}/media")["media"] == []
    assert [entry.path for entry in live.list_artifacts(run_id)] == ["fig.html"]


@pytest.mark.subprocess
def test_images_and_tables_through_503s_and_lost_answers_are_stored_once(
    server: LabbookServer, live: MlflowClient, monkeypatch: pytest.MonkeyPatch
):
    """The client retries an upload whose answer it never got, or that a proxy refused:
    the server has the file already, and the media mirror it once."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    run_id = live.create_run("0").info.run_id
    with FaultProxy(server.url) as proxy:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        mlflow.set_tracking_uri(proxy.url)
        through = MlflowClient()
        uploads = r"/mlflow-artifacts/artifacts/.+\.(png|json)$"
        proxy.fail("drop_response", 1, method="PUT", path=uploads)  # stored, answer lost
        proxy.fail("status", 2, status=503, method="PUT", path=uploads)
        through.log_image(run_id, np.full((6, 6, 3), 40, dtype=np.uint8), key="s", step=1)
        proxy.fail("drop_response", 1, method="PUT", path=uploads)
        through.log_table(run_id, {"id": [1, 2]}, artifact_file="t.json")
        proxy.fail("drop_response", 1, method="PUT", path=uploads)
        through.log_figure(run_id, _figure(), "fig.png")
        faults = [r.outcome for r in proxy.counters.where(method="PUT") if r.outcome != "forwarded"]
    assert sorted(faults) == ["dropped response"] * 3 + ["status 503"] * 2
    assert [item["step"] for item in media_of(server, run_id, "s")] == [1]
    [table] = media_of(server, run_id, "t.json")
    assert (table["kind"], table["rows"]) == ("table", 2)
    assert len(media_of(server, run_id, "fig.png")) == 1


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(2, 2))
    axes.plot([0, 1], [1, 0])
    return figure


# --- Texts: log_text and log_dict (issue 21) ----------------------------------------------------


def test_text_files_are_texts_keyed_by_path_in_the_format_their_extension_names():
    assert source_of("notes/summary.txt", {}) == Source("text", "notes/summary.txt")
    for path in ("train.log", "README.md", "config.json", "config.yaml", "c.YML"):
        assert source_of(path, {}) == Source("text", path)
    assert [media_artifacts.text_format(p) for p in ("a.json", "b.yml", "c.md", "d.csv")] == [
        "json",
        "yaml",
        "text",
        None,
    ]
    for path in ("data.csv", "model.pkl", "txt", "notes", "fig.html"):
        assert source_of(path, {}) is None


def test_a_text_file_is_a_text_item_kept_as_uploaded(world, run):
    client = world.editor.client()
    body = "lr: 0.001\nlayers:\n- 64\n- 32\nnote: grüße\n".encode()
    upload(client, run, "config/params.yaml", body)
    [item] = items(run)
    assert (item.key, item.step, item.kind) == ("config/params.yaml", 0, MediaKind.TEXT)
    assert item.meta == {
        "chars": len(body.decode()),
        "lines": 5,
        "format": "yaml",
        "artifact": "config/params.yaml",
    }
    assert item.file == f"{run.project_id}/{run.pk}/artifacts/config/params.yaml"  # no copy
    answer = client.get(f"/api/v1/media/{item.pk}")
    assert answer["Content-Type"] == "text/plain; charset=utf-8"
    assert b"".join(answer.streaming_content) == body
    upload(client, run, "config/params.yaml", b"lr: 0.01\n")  # replaced: its item follows
    [replaced] = items(run)
    assert replaced.meta["chars"] == 9 and replaced.digest != item.digest


def test_a_text_file_too_big_with_nul_or_empty_stays_a_plain_file(world, run):
    client = world.editor.client()
    upload(client, run, "big.log", b"x" * (media_artifacts.TEXT_FILE_MAX_BYTES + 1))
    upload(client, run, "nul.txt", b"a\x00b")
    upload(client, run, "empty.md", b"")
    assert items(run) == []
    upload(client, run, "edge.log", b"x" * media_artifacts.TEXT_FILE_MAX_BYTES)
    assert [item.key for item in items(run)] == ["edge.log"]


def test_a_table_file_is_a_text_until_the_tag_says_it_is_a_table(world, run):
    """log_table uploads its file first and sets the tag after it."""
    client = world.editor.client()
    upload(client, run, "preds.json", table_json([[1, "x"]]))
    [text] = items(run)
    assert (text.kind, text.meta["format"]) == (MediaKind.TEXT, "json")
    tag_tables(client, run, "preds.json")
    [table] = items(run)
    assert (table.key, table.kind, table.meta["rows"]) == ("preds.json", MediaKind.TABLE, 1)


def test_images_and_texts_share_the_cap_on_files_without_a_step(world, run, monkeypatch):
    monkeypatch.setattr(media_artifacts, "MAX_PLAIN_FILES", 3)
    client = world.editor.client()
    upload(client, run, "a.png", png())
    for index in range(4):
        upload(client, run, f"configs/{index}.json", b'{"i": %d}' % index)
    upload(client, run, "t.json", table_json([[1, 2]]))
    tag_tables(client, run, "t.json")  # a table log_table asked for is not capped
    assert [(item.key, item.kind) for item in items(run)] == [
        ("a.png", MediaKind.IMAGE),
        ("configs/0.json", MediaKind.TEXT),
        ("configs/1.json", MediaKind.TEXT),
        ("t.json", MediaKind.TABLE),
    ]


@pytest.mark.subprocess
def test_log_text_and_log_dict_are_texts(server: LabbookServer, live: MlflowClient, tmp_path: Path):
    run_id = live.create_run("0").info.run_id
    live.log_text(run_id, "epoch 1: loss 0.5\nepoch 2: loss 0.3\n", "notes/summary.txt")
    config = {"lr": 0.001, "layers": [64, 32], "name": "mnist-cnn"}
    live.log_dict(run_id, config, "config.json")
    live.log_dict(run_id, config, "config.yaml")
    keys = server.get(f"/api/v1/runs/{run_id}/media")["media"]
    assert [(entry["key"], entry["kind"]) for entry in keys] == [
        ("config.json", "text"),
        ("config.yaml", "text"),
        ("notes/summary.txt", "text"),
    ]
    [summary] = media_of(server, run_id, "notes/summary.txt")
    assert (summary["step"], summary["lines"], summary["format"]) == (0, 2, "text")
    for path, shown in (("config.json", "json"), ("config.yaml", "yaml")):
        [item] = media_of(server, run_id, path)
        assert (item["format"], item["artifact"]) == (shown, path)
        assert file_bytes(server, item) == artifact_bytes(live, run_id, path, tmp_path)
    assert json.loads(file_bytes(server, media_of(server, run_id, "config.json")[0])) == config
    listed = {entry.path for entry in live.list_artifacts(run_id)}
    assert listed == {"config.json", "config.yaml", "notes"}  # still plain files too
