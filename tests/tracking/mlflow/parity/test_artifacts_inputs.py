"""A run's artifacts through the tracking API, and its dataset inputs, against a real MLflow.

Artifacts are uploaded to both sides through the ``mlflow-artifacts`` proxy (as the
client's ``log_artifact`` does), then read back with ``artifacts/list`` and
``/get-artifact``; the listings are compared up to ``root_uri`` (which names each
side's ids), the downloads byte for byte. Dataset inputs are logged with
``runs/log-inputs`` and read back with ``runs/get`` and ``runs/search``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tracking.mlflow.parity.conftest import Answer, Pair, _answer, slot

pytestmark = [pytest.mark.subprocess, pytest.mark.xdist_group("mlflow-parity")]

FILES = {
    "a.txt": b"hello",
    "MLmodel": b"flavors: {}\n",
    "d/b.bin": bytes(range(256)) * 300,  # past one 64 KiB block
    "d/e/plot.png": b"\x89PNG\r\n",
    "d/e/page.html": b"<script>alert(1)</script>",
}


@pytest.fixture(autouse=True)
def home(settings, tmp_path: Path) -> Path:
    settings.LABBOOK_HOME = tmp_path
    return tmp_path


# --- Helpers of this module: the pair's calls outside ``api/2.0/mlflow`` -------------------


def upload(pair: Pair, run: str, experiment: str, rel: str, body: bytes) -> None:
    """``rel`` into the run's artifacts on both sides, by the proxy's raw-body PUT."""
    ids = [pair.ids[experiment], pair.ids[run]]
    ours = f"/api/2.0/mlflow-artifacts/artifacts/{ids[0][0]}/{ids[1][0]}/artifacts/{rel}"
    response = pair.labbook_client.generic(
        "PUT", ours, body, content_type="application/octet-stream", **pair.headers
    )
    assert response.status_code == 200, response.content
    theirs = f"/api/2.0/mlflow-artifacts/artifacts/{ids[0][1]}/{ids[1][1]}/artifacts/{rel}"
    assert pair.mlflow_client.put(theirs, content=body).status_code == 200


def get_artifact(pair: Pair, query: dict[str, str]) -> tuple[Answer, Answer]:
    """``GET /get-artifact`` (MLflow serves it at the root) on both sides."""
    ours = pair.labbook_client.get("/get-artifact", pair._fill(query, side=0), **pair.headers)
    content = b"".join(ours.streaming_content) if ours.streaming else ours.content
    theirs = pair.mlflow_client.get("/get-artifact", params=pair._fill(query, side=1))
    return (
        _answer(ours.status_code, content, ours.get("Content-Type", "")),
        _answer(theirs.status_code, theirs.content, theirs.headers.get("Content-Type", "")),
    )


def same_naming(
    pair: Pair, ours: Answer, theirs: Answer, **texts: tuple[str, str]
) -> tuple[Any, ...]:
    """``Pair.same``, putting back only ``texts`` (placeholder -> what names it on each
    side): Labbook's run and experiment ids may be the same number, which ``Pair.neutral``
    cannot tell apart."""

    def neutral(answer: Answer, side: int) -> tuple[Any, ...]:
        status, code, message = answer.error
        for name, text in texts.items():
            message = (message or "").replace(text[side], slot(name))
        return status, code, message

    mine, reference = neutral(ours, 0), neutral(theirs, 1)
    assert mine == reference, f"\nLabbook: {mine}\nMLflow:  {reference}"
    return mine


def root(pair: Pair) -> tuple[str, str]:
    """Where each side stores run ``{r}``'s files: ``<experiment>/<run>/artifacts``."""
    ours, theirs = (f"{pair.ids['e'][side]}/{pair.ids['r'][side]}/artifacts" for side in (0, 1))
    return ours, theirs


@pytest.fixture
def stored(pair: Pair) -> Pair:
    """A run ``{r}`` in ``{e}`` holding ``FILES`` on both sides."""
    pair.experiment("e", "artifacts")
    pair.run("r", "e")
    for rel, body in FILES.items():
        upload(pair, "r", "e", rel, body)
    return pair


def listing(pair: Pair, **query: str) -> tuple[Answer, Answer]:
    return pair.call("GET", "artifacts/list", {"run_id": "{r}", **query})


def without_root(answer: Answer) -> dict[str, Any]:
    return {key: value for key, value in answer.body.items() if key != "root_uri"}


# --- artifacts/list -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [None, "", "d", "d/", "d/e", "d/./e", "a.txt", "nope", "a%20b"])
def test_a_listing_names_what_mlflow_names(stored, path):
    query = {} if path is None else {"path": path}
    ours, theirs = listing(stored, **query)
    assert ours.status == theirs.status == 200, (ours.body, theirs.body)
    assert without_root(ours) == without_root(theirs)
    assert stored.neutral(ours.body["root_uri"], side=0) == "mlflow-artifacts:/{e}/{r}/artifacts"
    assert stored.neutral(theirs.body["root_uri"], side=1) == "mlflow-artifacts:/{e}/{r}/artifacts"


def test_a_listing_is_one_page_whatever_the_token(stored):
    ours, theirs = listing(stored, page_token="anything")
    assert ours.status == theirs.status == 200
    assert without_root(ours) == without_root(theirs)
    assert "next_page_token" not in ours.body


def test_the_run_uuid_names_the_run_too(stored):
    ours, theirs = stored.call("GET", "artifacts/list", {"run_uuid": "{r}", "path": "d"})
    assert without_root(ours) == without_root(theirs) != {}


@pytest.mark.parametrize("path", ["../x", "d/../../x", "/etc", "%2e%2e/x", "a#b", "C:\\x"])
def test_a_path_that_could_climb_out_is_refused_as_mlflow_refuses_it(stored, path):
    assert stored.same(*listing(stored, path=path)) == (
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid path",
    )


def test_listing_without_a_run_is_refused(stored):
    ours, theirs = stored.call("GET", "artifacts/list", {"path": "d"})
    assert ours.error[:2] == theirs.error[:2] == (400, "INVALID_PARAMETER_VALUE")


def test_listing_an_unknown_run_is_not_found(stored):
    ours, theirs = stored.call("GET", "artifacts/list", {"run_id": "1234567"})
    assert ours.error[:2] == theirs.error[:2] == (404, "RESOURCE_DOES_NOT_EXIST")


# --- get-artifact ---------------------------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(FILES))
def test_a_download_is_the_uploaded_bytes(stored, rel):
    ours, theirs = get_artifact(stored, {"run_id": "{r}", "path": rel})
    assert ours.status == theirs.status == 200
    assert ours.content == theirs.content == FILES[rel]


@pytest.mark.parametrize("rel", ["a.txt", "MLmodel", "d/b.bin", "d/e/plot.png"])
def test_a_download_is_typed_as_mlflow_types_it(stored, rel):
    ours, theirs = get_artifact(stored, {"run_uuid": "{r}", "path": rel})
    assert ours.content_type == theirs.content_type


def test_a_page_is_sent_as_bytes_where_mlflow_sends_html(stored):
    """Kept on purpose: no artifact goes out as a type a browser would run (artifacts.py)."""
    ours, theirs = get_artifact(stored, {"run_id": "{r}", "path": "d/e/page.html"})
    assert (ours.content_type, theirs.content_type) == ("application/octet-stream", "text/html")


@pytest.mark.parametrize("rel", ["nope", "d/nope.txt", "a.txt/x"])
def test_a_missing_file_is_not_found_naming_where_it_would_be(stored, rel):
    answer = get_artifact(stored, {"run_id": "{r}", "path": rel})
    assert same_naming(stored, *answer, root=root(stored))[0] == 404


@pytest.mark.parametrize("rel", ["d", "d/e", ""])
def test_a_folder_is_refused(stored, rel):
    answer = get_artifact(stored, {"run_id": "{r}", "path": rel})
    assert same_naming(stored, *answer, root=root(stored))[0] == 400


@pytest.mark.parametrize("rel", ["../a.txt", "/etc/passwd", "%2e%2e/a.txt", "d#x"])
def test_a_download_that_could_climb_out_is_refused(stored, rel):
    answer = stored.same(*get_artifact(stored, {"run_id": "{r}", "path": rel}))
    assert answer == (400, "INVALID_PARAMETER_VALUE", "Invalid path")


def test_a_download_of_an_unknown_run_is_not_found(stored):
    for query in ({"run_id": "1234567", "path": "a.txt"}, {"path": "a.txt"}):
        ours, theirs = get_artifact(stored, query)
        assert ours.error[:2] == theirs.error[:2] == (404, "RESOURCE_DOES_NOT_EXIST")


def test_a_download_without_a_path_is_a_bad_request(stored):
    """MLflow answers Flask's HTML 400 page; Labbook the JSON error its client reads."""
    ours, theirs = get_artifact(stored, {"run_id": "{r}"})
    assert ours.status == theirs.status == 400
    assert ours.body["error_code"] == "INVALID_PARAMETER_VALUE"


# --- runs/log-inputs ------------------------------------------------------------------------


def dataset(**fields: str) -> dict[str, str]:
    return {"name": "n", "digest": "d", "source_type": "local", "source": "{}", **fields}


def context(value: str) -> list[dict[str, str]]:
    return [{"key": "mlflow.data.context", "value": value}]


@pytest.fixture
def runs(pair: Pair) -> Pair:
    """Runs ``{r}`` and ``{s}`` in ``{e}`` on both sides."""
    pair.experiment("e", "inputs")
    pair.run("r", "e")
    pair.run("s", "e")
    return pair


def log_inputs(pair: Pair, run: str, *datasets: dict[str, Any]) -> None:
    ours, theirs = pair.call(
        "POST", "runs/log-inputs", {"run_id": slot(run), "datasets": list(datasets)}
    )
    assert ours.status == theirs.status == 200, (ours.body, theirs.body)
    assert ours.body == theirs.body == {}


def inputs_of(pair: Pair, run: str) -> tuple[Any, Any]:
    ours, theirs = pair.call("GET", "runs/get", {"run_id": slot(run)})
    return ours.body["run"]["inputs"], theirs.body["run"]["inputs"]


def test_inputs_read_back_as_mlflow_shapes_them(runs):
    full = dataset(schema='{"a": 1}', profile='{"rows": 2}')
    log_inputs(runs, "r", {"dataset": full, "tags": context("train")})
    log_inputs(runs, "r", {"dataset": dataset(name="bare", schema="")}, {"dataset": {}})
    ours, theirs = inputs_of(runs, "r")
    assert ours == theirs
    assert [entry["dataset"]["name"] for entry in ours["dataset_inputs"]] == ["n", "bare", ""]


def test_a_run_without_inputs_has_empty_inputs(runs):
    ours, theirs = inputs_of(runs, "r")
    assert ours == theirs == {}


def test_the_first_logging_of_a_dataset_in_an_experiment_fixes_it(runs):
    """Deduplicated by (name, digest): in one request, for a run, and across the experiment."""
    log_inputs(
        runs,
        "r",
        {"dataset": dataset(), "tags": context("train")},
        {"dataset": dataset(source="second"), "tags": context("eval")},
    )
    log_inputs(runs, "r", {"dataset": dataset(), "tags": context("eval")})
    log_inputs(runs, "s", {"dataset": dataset(source="elsewhere"), "tags": context("test")})
    for run in ("r", "s"):
        ours, theirs = inputs_of(runs, run)
        assert ours == theirs
    assert ours["dataset_inputs"][0]["dataset"]["source"] == "{}"


def test_runs_search_carries_the_inputs(runs):
    log_inputs(runs, "s", {"dataset": dataset(name="m"), "tags": context("train")})
    ours, theirs = runs.call("POST", "runs/search", {"experiment_ids": ["{e}"]})

    def by_run(answer: Answer, side: int) -> dict[str, Any]:
        """Inputs by placeholder (Labbook's run ids may equal its experiment ids)."""
        names = {runs.ids[name][side]: slot(name) for name in ("r", "s")}
        return {names[run["info"]["run_id"]]: run["inputs"] for run in answer.body["runs"]}

    assert by_run(ours, 0) == by_run(theirs, 1)
    assert by_run(ours, 0)["{r}"] == {}


@pytest.mark.parametrize(
    ("field", "limit"),
    [("name", 500), ("digest", 36), ("source", 65535), ("schema", 1048575)],
)
def test_a_dataset_over_mlflows_limit_is_refused_and_nothing_is_kept(runs, field, limit):
    too_long = {"dataset": {**dataset(name="kept-not"), field: "x" * (limit + 1)}}
    body = {"run_id": "{r}", "datasets": [{"dataset": dataset(name="ok")}, too_long]}
    assert runs.same(*runs.call("POST", "runs/log-inputs", body))[0] == 400
    ours, theirs = inputs_of(runs, "r")
    assert ours == theirs == {}


@pytest.mark.parametrize(("field", "limit"), [("key", 255), ("value", 500)])
def test_an_input_tag_over_mlflows_limit_is_refused(runs, field, limit):
    tag = {"key": "k", "value": "v", field: "x" * (limit + 1)}
    body = {"run_id": "{r}", "datasets": [{"dataset": dataset(), "tags": [tag]}]}
    assert runs.same(*runs.call("POST", "runs/log-inputs", body))[0] == 400


def test_a_profile_over_mlflows_limit_is_refused(runs, settings):
    """Only with MAX_REQUEST_BYTES above its 16 MiB default: the body is larger than that."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024
    body = {"run_id": "{r}", "datasets": [{"dataset": dataset(profile="x" * 16_777_216)}]}
    ours = runs.labbook("POST", "runs/log-inputs", body)
    assert ours.error == (
        400,
        "INVALID_PARAMETER_VALUE",
        "'profile' exceeds the maximum length of 16777215 characters",
    )


def test_log_inputs_to_a_deleted_run_is_refused(runs):
    runs.call("POST", "runs/delete", {"run_id": "{r}"})
    body = {"run_id": "{r}", "datasets": [{"dataset": dataset()}]}
    assert same_naming(runs, *runs.call("POST", "runs/log-inputs", body), r=runs.ids["r"])[0] == 400


def test_log_inputs_to_an_unknown_run_is_not_found(runs):
    body = {"run_id": "1234567", "datasets": [{"dataset": dataset()}]}
    ours, theirs = runs.call("POST", "runs/log-inputs", body)
    assert ours.error[:2] == theirs.error[:2] == (404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.parametrize("body", [{}, {"run_id": "{r}", "datasets": "x"}])
def test_log_inputs_refuses_what_mlflow_refuses(runs, body):
    ours, theirs = runs.call("POST", "runs/log-inputs", body)
    assert ours.error[:2] == theirs.error[:2] == (400, "INVALID_PARAMETER_VALUE")


def test_a_tag_key_twice_in_one_input_is_a_bad_request_not_a_500(runs):
    tags = [{"key": "k", "value": "a"}, {"key": "k", "value": "b"}]
    body = {"run_id": "{r}", "datasets": [{"dataset": dataset(), "tags": tags}]}
    ours, theirs = runs.call("POST", "runs/log-inputs", body)
    assert ours.error[:2] == theirs.error[:2] == (400, "BAD_REQUEST")
