"""Images, tables and histograms through the REST API (tracking/media.py)."""

from __future__ import annotations

import base64
import io
import json
import zlib

import pytest
from PIL import Image

from tracking import events, media, storage
from tracking.models import MediaItem, Run


@pytest.fixture
def run(world):
    response = world.editor.client().post("/api/v1/runs", {"project": "acme/mnist"}, format="json")
    return Run.objects.get(pk=response.json()["id"])


def png(width=8, height=6, color=(200, 30, 30), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_item(step=0, key="samples", **more):
    return {"key": key, "step": step, "kind": "image", "image": b64(png()), **more}


def post(client, run, items):
    return client.post(
        f"/api/v1/runs/{run.pk}/media",
        json.dumps({"items": items}),
        content_type="application/json",
    )


def error_field(response):
    return response.json()["error"]["field"]


def test_an_image_a_table_and_a_histogram_are_stored_and_read_back(world, run):
    client = world.editor.client()
    items = [
        image_item(step=3, caption="epoch 3"),
        {
            "key": "preds",
            "step": 3,
            "kind": "table",
            "columns": ["id", "label", "p"],
            "rows": [[1, "cat", 0.93], [2, "dog", None]],
        },
        {
            "key": "grad/w1",
            "step": 3,
            "kind": "histogram",
            "counts": [1, 4, 2],
            "edges": [0, 1, 2, 3],
        },
    ]
    response = post(client, run, items)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (3, 0)

    keys = client.get(f"/api/v1/runs/{run.pk}/media").json()["media"]
    assert [(k["key"], k["kind"], k["count"]) for k in keys] == [
        ("grad/w1", "histogram", 1),
        ("preds", "table", 1),
        ("samples", "image", 1),
    ]
    image = client.get(f"/api/v1/runs/{run.pk}/media/samples").json()
    assert image["steps"] == [3]
    (shown,) = image["items"]
    assert (shown["width"], shown["height"], shown["format"], shown["caption"]) == (
        8,
        6,
        "png",
        "epoch 3",
    )
    file = client.get(shown["url"])
    assert file.status_code == 200
    assert file["Content-Type"] == "image/png"
    assert file["X-Content-Type-Options"] == "nosniff"
    assert b"".join(file.streaming_content) == png()

    table = client.get(f"/api/v1/runs/{run.pk}/media/preds").json()["items"][0]
    assert (table["columns"], table["rows"]) == (["id", "label", "p"], 2)
    content = json.loads(b"".join(client.get(table["url"]).streaming_content))
    assert content == {
        "columns": ["id", "label", "p"],
        "rows": [[1, "cat", 0.93], [2, "dog", None]],
    }

    histogram = client.get(f"/api/v1/runs/{run.pk}/media/grad/w1").json()["items"][0]
    assert (histogram["counts"], histogram["edges"]) == ([1, 4, 2], [0, 1, 2, 3])
    assert "url" not in histogram


def test_the_same_content_again_is_a_duplicate_and_other_content_at_a_step_is_another_item(
    world, run
):
    client = world.editor.client()
    assert post(client, run, [image_item(step=1)]).json()["accepted"] == 1
    again = post(client, run, [image_item(step=1), image_item(step=1)]).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    other = {**image_item(step=1), "image": b64(png(color=(0, 0, 255)))}
    assert post(client, run, [other]).json()["accepted"] == 1
    assert MediaItem.objects.filter(run=run, key="samples", step=1).count() == 2
    assert post(client, run, [image_item(step=2)]).json()["accepted"] == 1  # same file, new step
    assert media.media_steps(run, "samples") == [1, 2]


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"key": "k", "step": 0, "kind": "video", "image": "x"}, "items[1].kind"),
        ({"key": "k", "step": -1, "kind": "image", "image": b64(png())}, "items[1].step"),
        ({"key": " k", "step": 0, "kind": "image", "image": b64(png())}, "items[1].key"),
        ({"key": "k", "step": 0, "kind": "image"}, "items[1].image"),
        ({"key": "k", "step": 0, "kind": "image", "image": "not base64!"}, "items[1].image"),
        (
            {"key": "k", "step": 0, "kind": "image", "image": b64(b"GIF89a" + b"\0" * 40)},
            "items[1].image",
        ),
        ({"key": "k", "step": 0, "kind": "image", "image": b64(png()[:60])}, "items[1].image"),
        ({"key": "k", "step": 0, "kind": "image", "image": b64(png(fmt="BMP"))}, "items[1].image"),
        ({"key": "k", "step": 0, "kind": "image", "image": b64(b"<svg/>")}, "items[1].image"),
        (
            {"key": "k", "step": 0, "kind": "image", "image": b64(png()), "rows": []},
            "items[1].rows",
        ),
        ({"key": "k", "step": 0, "kind": "table", "columns": [], "rows": []}, "items[1].columns"),
        (
            {"key": "k", "step": 0, "kind": "table", "columns": ["a", "a"], "rows": []},
            "items[1].columns",
        ),
        (
            {"key": "k", "step": 0, "kind": "table", "columns": ["a"], "rows": [[1, 2]]},
            "items[1].rows[0]",
        ),
        (
            {"key": "k", "step": 0, "kind": "table", "columns": ["a"], "rows": [[{"x": 1}]]},
            "items[1].rows[0]",
        ),
        (
            {"key": "k", "step": 0, "kind": "histogram", "counts": [1], "edges": [1, 1]},
            "items[1].edges",
        ),
        (
            {"key": "k", "step": 0, "kind": "histogram", "counts": [-1], "edges": [0, 1]},
            "items[1].counts",
        ),
        (
            {"key": "k", "step": 0, "kind": "histogram", "counts": [1, 2], "edges": [0, 1]},
            "items[1].edges",
        ),
        (
            {"key": "k", "step": 0, "kind": "histogram", "counts": [], "edges": [0]},
            "items[1].counts",
        ),
    ],
)
def test_a_bad_item_is_a_400_naming_its_field_and_nothing_of_the_batch_is_stored(
    world, run, item, field
):
    response = post(world.editor.client(), run, [image_item(), item])
    assert response.status_code == 400, response.json()
    assert error_field(response) == field
    assert not MediaItem.objects.filter(run=run).exists()


def test_the_limits_are_enforced(world, run):
    client = world.editor.client()
    too_many = [image_item(step=i) for i in range(media.MAX_ITEMS_PER_REQUEST + 1)]
    assert error_field(post(client, run, too_many)) == "items"
    rows = [[i] for i in range(media.TABLE_MAX_ROWS + 1)]
    table = {"key": "t", "step": 0, "kind": "table", "columns": ["a"], "rows": rows}
    assert error_field(post(client, run, [table])) == "items[0].rows"
    bins = media.HISTOGRAM_MAX_BINS + 1
    histogram = {
        "key": "h",
        "step": 0,
        "kind": "histogram",
        "counts": [1] * bins,
        "edges": list(range(bins + 1)),
    }
    assert error_field(post(client, run, [histogram])) == "items[0].counts"
    assert not MediaItem.objects.filter(run=run).exists()


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding(world, run):
    """A PNG whose header claims 20,000 x 20,000 pixels, a few hundred bytes on the wire."""
    side = 20_000
    header = b"\x89PNG\r\n\x1a\n"

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    bomb = (
        header
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )
    response = post(world.editor.client(), run, [image_item(image=b64(bomb))])
    assert response.status_code == 400
    assert error_field(response) == "items[0].image"
    assert "pixels" in response.json()["error"]["message"]


def test_viewers_cannot_log_media_and_strangers_cannot_read_it(world, run):
    assert post(world.viewer.client(), run, [image_item()]).status_code == 403
    stored = post(world.editor.client(), run, [image_item()]).json()["items"][0]
    assert world.viewer.client().get(stored["url"]).status_code == 200
    outsider = world.outsider.client()
    assert outsider.get(stored["url"]).status_code == 404
    assert outsider.get(f"/api/v1/runs/{run.pk}/media/samples").status_code == 404
    assert post(outsider, run, [image_item(step=5)]).status_code == 404


def test_an_unknown_key_is_a_404_naming_the_key(world, run):
    response = world.editor.client().get(f"/api/v1/runs/{run.pk}/media/nothing")
    assert response.status_code == 404
    assert error_field(response) == "key"


def test_the_files_go_through_the_storage_and_leave_with_the_project(world, run):
    stored = post(world.editor.client(), run, [image_item()]).json()["items"][0]
    item = MediaItem.objects.get(pk=stored["id"])
    assert item.file.startswith(f"{run.project_id}/{run.pk}/media/")
    assert storage.kind(item.file) == "file"


def test_a_live_message_names_the_keys_and_steps_logged(
    world, run, django_capture_on_commit_callbacks
):
    seen = []
    events.subscribe(events.MediaLogged, seen.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            post(world.editor.client(), run, [image_item(step=4), image_item(step=4, key="other")])
    finally:
        events.unsubscribe(events.MediaLogged, seen.append)
    (event,) = seen
    assert event.run_id == run.pk
    assert dict(event.media) == {
        "samples": {"kind": "image", "steps": [4]},
        "other": {"kind": "image", "steps": [4]},
    }


def test_a_key_holds_one_kind(world, run):
    client = world.editor.client()
    assert post(client, run, [image_item(step=1)]).status_code == 200
    table = {"key": "samples", "step": 2, "kind": "table", "columns": ["a"], "rows": [[1]]}
    refused = post(client, run, [image_item(step=2), table])
    assert refused.status_code == 400
    assert error_field(refused) == "items[1].kind"
    assert "'samples' holds images" in refused.json()["error"]["message"]
    histogram = {"key": "h", "step": 0, "kind": "histogram", "counts": [1], "edges": [0, 1]}
    mixed = post(client, run, [histogram, {**table, "key": "h"}])
    assert error_field(mixed) == "items[1].kind"
    assert MediaItem.objects.filter(run=run).count() == 1


# --- Texts (issue 21) --------------------------------------------------------------------------


def text_item(text="epoch 1: loss 0.5\nepoch 2: loss 0.3\n", key="notes", step=0, **more):
    return {"key": key, "step": step, "kind": "text", "text": text, **more}


def test_a_text_is_stored_as_sent_and_served_as_plain_utf8(world, run):
    client = world.editor.client()
    text = "  línea 1 — ok\r\nzeile 2 ✓\n\n  trailing spaces  "  # kept exactly: no trimming
    config = '{"lr": 0.001, "layers": [64, 32]}'
    response = post(
        client, run, [text_item(text, caption="notes"), text_item(config, "cfg", 2, format="json")]
    )
    assert response.status_code == 200, response.json()
    shown, cfg = response.json()["items"]
    assert (shown["kind"], shown["chars"], shown["lines"], shown["format"]) == (
        "text",
        len(text),
        4,
        "text",
    )
    assert (cfg["chars"], cfg["lines"], cfg["format"]) == (len(config), 1, "json")
    assert shown["size"] == len(text.encode())

    file = client.get(shown["url"])
    assert file.status_code == 200
    assert file["Content-Type"] == "text/plain; charset=utf-8"
    assert file["X-Content-Type-Options"] == "nosniff"
    assert file["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert b"".join(file.streaming_content).decode() == text
    item = MediaItem.objects.get(pk=shown["id"])
    assert item.file == f"{run.project_id}/{run.pk}/media/{item.digest}.txt"

    keys = client.get(f"/api/v1/runs/{run.pk}/media").json()["media"]
    assert [(k["key"], k["kind"], k["last_step"]) for k in keys] == [
        ("cfg", "text", 2),
        ("notes", "text", 0),
    ]
    again = post(client, run, [text_item(text, caption="notes")]).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (text_item(""), "items[0].text"),
        (text_item(["a"]), "items[0].text"),
        (text_item("a\x00b"), "items[0].text"),
        (text_item("x" * (media.TEXT_MAX_CHARS + 1)), "items[0].text"),
        (text_item("a", format="html"), "items[0].format"),
        (text_item("a", image="x"), "items[0].image"),
        ({"key": "k", "step": 0, "kind": "text"}, "items[0].text"),
        ({**image_item(), "format": "json"}, "items[0].format"),  # only a text has a format
    ],
)
def test_a_bad_text_is_a_400_naming_its_field(world, run, item, field):
    response = post(world.editor.client(), run, [item])
    assert response.status_code == 400, response.json()
    assert error_field(response) == field
    assert not MediaItem.objects.filter(run=run).exists()


def test_a_text_at_the_limit_is_taken_and_a_lone_surrogate_refused(world, run):
    client = world.editor.client()
    longest = post(client, run, [text_item("é" * media.TEXT_MAX_CHARS)])
    assert longest.status_code == 200, longest.json()
    assert longest.json()["items"][0]["size"] == 2 * media.TEXT_MAX_CHARS
    surrogate = '{"items": [{"key": "k", "step": 0, "kind": "text", "text": "a\\ud800b"}]}'
    response = client.post(
        f"/api/v1/runs/{run.pk}/media", surrogate, content_type="application/json"
    )
    assert response.status_code == 400
    assert error_field(response) == "items[0].text"
