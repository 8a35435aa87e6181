"""Images, tables and histograms from ``run.log()`` to a real server and back.

The SDK side is tracking/sdk/media.py; the server's, tracking/media.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from tests.sdk.conftest import script_env
from tests.sdk.server import ROOT, LabbookServer
from tracking import sdk
from tracking.sdk.sync import REFUSED_FILE

pytestmark = pytest.mark.timeout(120)


def items(server: LabbookServer, run_id: int, key: str) -> list[dict[str, Any]]:
    return server.get(f"/api/v1/runs/{run_id}/media/{key}", limit=1000)["items"]


def pixels(server: LabbookServer, item: dict[str, Any]) -> np.ndarray:
    """The stored file of an image item, decoded by Pillow."""
    with server.client() as client:
        data = client.get(item["url"]).raise_for_status().content
    return np.asarray(PILImage.open(io.BytesIO(data)))


def counts_by_key(server: LabbookServer, run_id: int) -> dict[str, int]:
    keys = server.get(f"/api/v1/runs/{run_id}/media")["media"]
    return {entry["key"]: entry["count"] for entry in keys}


def gradient(height: int = 6, width: int = 8) -> np.ndarray:
    """An RGB uint8 image whose pixels all differ a little."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 20, cols * 30, rows + cols], axis=-1).astype(np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_images_tables_and_histograms_round_trip_beside_numbers(
    server: LabbookServer, start_run: Any, tmp_path: Path
) -> None:
    rgb = gradient()
    grey = rgb[:, :, 0]
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    floats = np.arange(48, dtype=np.float32).reshape(6, 8) / 255  # exact after x255
    path = tmp_path / "sample.png"
    path.write_bytes(png_bytes(rgb))
    run = start_run()
    run.log(
        {
            "loss": 0.5,
            "rgb": sdk.Image(rgb, caption="epoch 1"),
            "grey": sdk.Image(grey[:, :, None]),
            "rgba": sdk.Image(rgba),
            "floats": sdk.Image(floats.astype(np.float64)),
            "file": sdk.Image(path),
            "bytes": sdk.Image(path.read_bytes()),
            "pil": sdk.Image(PILImage.fromarray(rgb)),
            "pair": [sdk.Image(rgb), sdk.Image(grey)],
            "preds": sdk.Table(
                columns=["id", "label", "p"],
                rows=[[1, "cat", np.float32(0.5)], [2, None, float("nan")]],
            ),
            "frame": sdk.Table(dataframe=pd.DataFrame({"n": [1, 2], "x": [0.25, None]})),
            "grad/w1": sdk.Histogram([0.0, 1.0, 1.0, 2.0, 3.0, float("nan")], bins=3),
            "grad/np": sdk.Histogram(np.array([0.0, 1.0, 1.0, 2.0, 3.0, np.inf]), bins=3),
            "given": sdk.Histogram(np_histogram=np.histogram([1, 2, 2, 3], bins=2)),
        },
        step=7,
    )
    assert run.flush(30)

    assert server.history(run.id, "loss") == ([7], [0.5])
    [item] = items(server, run.id, "rgb")
    assert (item["step"], item["caption"], item["format"]) == (7, "epoch 1", "png")
    assert (pixels(server, item) == rgb).all()
    assert (pixels(server, items(server, run.id, "grey")[0]) == grey).all()
    assert (pixels(server, items(server, run.id, "rgba")[0]) == rgba).all()
    assert (pixels(server, items(server, run.id, "floats")[0]) == np.arange(48).reshape(6, 8)).all()
    for key in ("file", "bytes", "pil"):
        assert (pixels(server, items(server, run.id, key)[0]) == rgb).all(), key
    pair = items(server, run.id, "pair")
    assert [p.shape for p in (pixels(server, i) for i in pair)] == [(6, 8, 3), (6, 8)]

    [table] = items(server, run.id, "preds")
    with server.client() as client:
        cells = client.get(table["url"]).raise_for_status().json()
    assert cells == {"columns": ["id", "label", "p"], "rows": [[1, "cat", 0.5], [2, None, "NaN"]]}
    [frame] = items(server, run.id, "frame")
    with server.client() as client:
        cells = client.get(frame["url"]).raise_for_status().json()
    assert cells == {"columns": ["n", "x"], "rows": [[1, 0.25], [2, None]]}

    for key in ("grad/w1", "grad/np"):  # pure Python and numpy bin alike; NaN/inf left out
        [histogram] = items(server, run.id, key)
        assert histogram["counts"] == [1, 2, 2], key
        assert histogram["edges"] == [0.0, 1.0, 2.0, 3.0], key
    [given] = items(server, run.id, "given")
    assert (given["counts"], given["edges"]) == ([1, 3], [1.0, 2.0, 3.0])


def test_an_array_changed_after_log_is_stored_as_it_was_logged(
    server: LabbookServer, start_run: Any
) -> None:
    run = start_run()
    array = gradient()
    logged = []
    for step in range(3):
        run.log({"sample": sdk.Image(array)}, step=step)
        logged.append(array.copy())
        array[:] = 255 - array  # the training loop reuses its buffer at once
    assert run.flush(30)
    stored = [pixels(server, item) for item in items(server, run.id, "sample")]
    assert [(got == want).all() for got, want in zip(stored, logged, strict=True)] == [True] * 3


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: sdk.Image("no/such/file.png"), FileNotFoundError, "file.png"),
        (lambda: sdk.Image(b"plain text"), ValueError, "not a PNG, JPEG, WebP or GIF"),
        (lambda: sdk.Image(42), TypeError, "not a int"),
        (lambda: sdk.Image(np.zeros((3, 8, 8))), ValueError, r"not \(3, 8, 8\)"),
        (lambda: sdk.Image(np.zeros((8, 8, 2))), ValueError, "HxWx3 or HxWx4"),
        (lambda: sdk.Image(np.zeros((8, 8), np.int64)), TypeError, "array of int64"),
        (lambda: sdk.Image(np.full((8, 8), 2.0)), ValueError, "float pixels are 0-1"),
        (lambda: sdk.Image(np.zeros((0, 8))), ValueError, "empty array"),
        (lambda: sdk.Image(np.zeros((5000, 4000), np.uint8)), ValueError, "16,777,216 pixels"),
        (lambda: sdk.Table(columns=["a", "a"], rows=[]), ValueError, "must differ"),
        (lambda: sdk.Table(columns=["a"], rows=[[1, 2]]), ValueError, "row 0 is not a list of 1"),
        (lambda: sdk.Table(columns=["a"], rows=[[object()]]), TypeError, "holds a object"),
        (lambda: sdk.Table(rows=[[1]]), TypeError, "needs columns"),
        (lambda: sdk.Histogram([1.0], bins=513), ValueError, "from 1 to 512 bins"),
        (lambda: sdk.Histogram(["a"]), TypeError, "values are numbers"),
        (lambda: sdk.Histogram(np_histogram=([1], [2, 1])), ValueError, "edges must increase"),
    ],
)
def test_bad_media_raise_a_clear_error_when_built(make: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def test_a_list_mixing_media_and_numbers_is_refused_by_log(start_run: Any) -> None:
    run = start_run()
    with pytest.raises(TypeError, match="mixes media"):
        run.log({"samples": [sdk.Image(gradient()), 1.0]})


def test_an_item_the_server_refuses_does_not_hold_back_the_others(
    server: LabbookServer,
    start_run: Any,
    spool_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10  # passes the SDK's cheap check
    run = start_run()
    good = [sdk.Image(gradient(4 + i, 5)) for i in range(3)]
    run.log({"samples": [good[0], sdk.Image(broken), good[1]], "other": good[2]}, step=1)
    run.log({"samples": sdk.Image(gradient(9, 9))}, step=2)
    assert run.flush(30)
    assert counts_by_key(server, run.id) == {"samples": 3, "other": 1}
    assert "refused image 'samples' at step 1" in capsys.readouterr().err
    [folder] = list(spool_dir.iterdir())
    spooled = [json.loads(line) for line in (folder / "records.jsonl").open()]
    assert [(r["kind"], len(r["items"])) for r in spooled] == [("media", 1)]

    run.finish()  # uploads the spool: the refused item is set aside, not retried forever
    refused = [json.loads(line) for line in (folder / REFUSED_FILE).open()]
    assert [(r["item"]["key"], r["item"]["step"]) for r in refused] == [("samples", 1)]
    assert "items[0].image" in refused[0]["error"]
    assert not (folder / "records.jsonl").exists()
    assert counts_by_key(server, run.id) == {"samples": 3, "other": 1}


def sync(server: LabbookServer, spool_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tracking.sdk", "sync", str(spool_dir)],
        cwd=ROOT,
        env=script_env(server, spool_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def log_media(run: Any, steps: range, *, loss: bool = True) -> None:
    for step in steps:
        run.log(
            {
                **({"loss": 1 / (step + 1)} if loss else {}),
                "samples": [sdk.Image(gradient(4, 4 + step)), sdk.Image(gradient(5, 4 + step))],
                "preds": sdk.Table(columns=["step"], rows=[[step]]),
                "grad": sdk.Histogram([step, step + 1, step + 1], bins=2),
            },
            step=step,
        )


def assert_every_item_once(server: LabbookServer, run_id: int, steps: int) -> None:
    assert counts_by_key(server, run_id) == {"samples": 2 * steps, "preds": steps, "grad": steps}
    assert server.get(f"/api/v1/runs/{run_id}/media/samples")["steps"] == list(range(steps))
    assert server.metric_keys(run_id) == {"loss": steps}


@pytest.mark.subprocess
def test_media_logged_while_the_server_is_down_arrive_once_when_it_is_back(
    own_server: LabbookServer, project: str, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABBOOK_RETRY_SECONDS", "1")
    monkeypatch.setenv("LABBOOK_FINISH_TIMEOUT", "5")
    run = sdk.init(project=project, url=own_server.url, token=own_server.token)
    try:
        log_media(run, range(5))
        assert run.flush(30)
        own_server.stop()
        log_media(run, range(5, 20))
        run.flush(30)  # past LABBOOK_RETRY_SECONDS: spooled
        assert any(spool_dir.iterdir()), "nothing was spooled"
        own_server.start()
        log_media(run, range(5, 12), loss=False)  # the same media again: stored once
        run.finish()  # uploads the spool
    finally:
        run.finish()
    assert not any(spool_dir.iterdir()), "the spool was not uploaded"
    assert_every_item_once(own_server, run.id, 20)


@pytest.mark.subprocess
def test_an_offline_run_s_media_are_uploaded_by_sync_exactly_once(
    own_server: LabbookServer, project: str, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABBOOK_RETRY_SECONDS", "1")
    monkeypatch.setenv("LABBOOK_FINISH_TIMEOUT", "5")
    own_server.stop()
    run = sdk.init(project=project, url=own_server.url, token=own_server.token)
    try:
        log_media(run, range(8))
    finally:
        run.finish()
    own_server.start()
    for _ in range(2):
        done = sync(own_server, spool_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        [stored] = own_server.runs(project)
        assert_every_item_once(own_server, stored["id"], 8)


def run_without(module: str, code: str) -> subprocess.CompletedProcess:
    """``code`` in a Python where importing ``module`` fails, as if it were not installed."""
    source = f"import sys\nsys.modules[{module!r}] = None\n{code}"
    return subprocess.run(
        [sys.executable, "-c", source],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.subprocess
def test_the_sdk_works_without_numpy_and_says_when_pillow_is_missing() -> None:
    no_numpy = run_without(
        "numpy",
        "from tracking import sdk\n"
        "from tracking.sdk.media import _binned\n"
        "h = sdk.Histogram([1, 2, 2, 3, float('inf')], bins=2)\n"
        "print(h.item('k', 0, 0.0)['counts'])\n",
    )
    assert no_numpy.returncode == 0, no_numpy.stderr
    assert no_numpy.stdout.strip() == "[1, 3]"

    no_pillow = run_without(
        "PIL",
        "import numpy as np\nfrom tracking import sdk\nsdk.Image(np.zeros((2, 2), np.uint8))\n",
    )
    assert "ImportError: sdk.Image: an array needs Pillow: python -m pip install Pillow" in (
        no_pillow.stderr
    )


def test_a_media_request_is_retried_and_a_lost_answer_stores_nothing_twice(
    server: LabbookServer, proxy: Any, start_run: Any
) -> None:
    run = start_run(url=proxy.url)
    proxy.fail("status", 2, status=503, method="POST", path=r"/media$")
    proxy.fail("drop_response", 1, method="POST", path=r"/media$")  # stored, answer lost
    log_media(run, range(3))
    assert run.flush(30)
    assert len(proxy.failed(path=r"/media$")) == 3
    assert_every_item_once(server, run.id, 3)


# --- Texts (issue 21) --------------------------------------------------------------------------


def test_texts_round_trip_exactly_and_bad_ones_raise_when_built(
    server: LabbookServer, start_run: Any
) -> None:
    completion = "  The cat sat\r\non the mat. 猫 🐈\n\n"  # kept as given: spaces, CRLF, emoji
    config = json.dumps({"lr": 0.001, "layers": [64, 32]})
    run = start_run()
    for step in range(2):
        run.log({"loss": 1.0 / (step + 1), "generated": sdk.Text(f"{completion}{step}")}, step=step)
    run.log({"config": sdk.Text(config, caption="hyper", format="json")}, step=0)
    run.log({"big": sdk.Text("é" * sdk.media.TEXT_MAX_CHARS)}, step=0)  # alone in a request
    assert run.flush(30)

    generated = items(server, run.id, "generated")
    assert [(item["step"], item["format"], item["lines"]) for item in generated] == [
        (0, "text", 4),
        (1, "text", 4),
    ]
    with server.client() as client:
        texts = [client.get(item["url"]).raise_for_status().text for item in generated]
    assert texts == [f"{completion}0", f"{completion}1"]
    [stored] = items(server, run.id, "config")
    assert (stored["caption"], stored["format"], stored["chars"]) == ("hyper", "json", len(config))
    assert items(server, run.id, "big")[0]["size"] == 2 * sdk.media.TEXT_MAX_CHARS

    for make, error, message in [
        (lambda: sdk.Text(b"bytes"), TypeError, "takes a str, not a bytes"),
        (lambda: sdk.Text(""), ValueError, "empty"),
        (lambda: sdk.Text("a\x00b"), ValueError, "NUL"),
        (lambda: sdk.Text("x" * (sdk.media.TEXT_MAX_CHARS + 1)), ValueError, "at most 1,000,000"),
        (lambda: sdk.Text("\ud800"), ValueError, "lone surrogate"),
        (lambda: sdk.Text("{}", format="html"), ValueError, "format is one of"),
    ]:
        with pytest.raises(error, match=message):
            make()
