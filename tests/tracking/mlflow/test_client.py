"""The unmodified ``mlflow`` client logging to a live Labbook server, read back through Labbook.

The server is a real uvicorn process on the embedded default; the client is
the real ``mlflow`` package, configured only by ``MLFLOW_TRACKING_URI`` and
``MLFLOW_TRACKING_TOKEN``. Client retries are off so an error shows at once.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from tests.sdk.server import ROOT, LabbookServer, server_env
from tests.support import services_free

pytestmark = pytest.mark.subprocess

EXAMPLE = ROOT / "examples" / "train_with_mlflow.py"


@pytest.fixture(scope="module")
@services_free
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    with LabbookServer(tmp_path_factory.mktemp("mlflow") / "home") as running:
        yield running


def client_env(server: LabbookServer) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_TOKEN": server.token,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    }


@pytest.fixture
def client(server: LabbookServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    for name, value in client_env(server).items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(server.url)
    return MlflowClient()


def api(server: LabbookServer, path: str, **params: Any) -> Any:
    return server.get(path, **params)


def expected_losses(steps: int) -> list[float]:
    """What the example logs as train/loss (the same seeded generator)."""
    rng = random.Random(7)
    return [2.0 * math.exp(-step / 50) + 0.05 * rng.random() for step in range(steps)]


def test_the_example_script_logs_a_failed_run_that_labbook_shows_and_alerts_on(
    server: LabbookServer,
):
    with server.client() as http:
        http.post("/api/v1/projects", json={"team": "lab", "name": "mlflow-e2e"}).raise_for_status()
        http.post(
            "/api/v1/alert-rules",
            json={"project": "lab/mlflow-e2e", "name": "failures", "trigger": "run_failed"},
        ).raise_for_status()
    env = {**server_env(server.home), **client_env(server)}
    env.update(EXPERIMENT="lab/mlflow-e2e", STEPS="200", FAIL="1")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = int(done.stdout.strip().splitlines()[-1])

    run = server.run(run_id)
    assert (run["status"], run["name"], run["project"]) == (
        "failed",
        "sgd-baseline",
        "lab/mlflow-e2e",
    )
    assert run["config"] == {"lr": "0.01", "batch_size": "64", "optimizer": "sgd"}
    assert {"team:vision", "nightly"} <= set(run["tags"])
    assert run["metadata"]["mlflow_tags"]["mlflow.runName"] == "sgd-baseline"
    steps, values = server.history(run_id, "train/loss")
    assert steps == list(range(200))
    assert values == pytest.approx(expected_losses(200), rel=1e-12)
    assert server.metric_keys(run_id) == {"train/acc": 200, "train/loss": 200}
    listed = api(server, f"/api/v1/runs/{run_id}/artifacts")["artifacts"]
    assert [a["path"] for a in listed] == ["labels.json", "model_card.md"]
    with server.client() as http:
        labels = http.get(f"/api/v1/runs/{run_id}/artifacts/labels.json").raise_for_status()
    assert json.loads(labels.content) == {"classes": ["cat", "dog"]}
    (alert,) = api(server, "/api/v1/alerts", project="lab/mlflow-e2e")
    assert (alert["state"], alert["run"]) == ("firing", run_id)


def test_search_runs_filters_orders_and_pages(client: MlflowClient):
    experiment_id = client.create_experiment("lab/search")
    made = {}
    for name, acc, optimizer in [("a", 0.9, "adam"), ("b", 0.7, "adam"), ("c", 0.95, "sgd"),
                                 ("d", 0.3, "adam"), ("e", 0.8, "adam")]:  # fmt: skip
        run = client.create_run(experiment_id, run_name=name)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("acc", acc, 0, 0)],
            params=[Param("optimizer", optimizer)],
        )
        made[name] = run.info.run_id
    found = client.search_runs(
        [experiment_id],
        "metrics.acc > 0.5 and params.optimizer = 'adam'",
        order_by=["metrics.acc DESC"],
    )
    assert [r.info.run_name for r in found] == ["a", "e", "b"]
    assert found[0].data.metrics == {"acc": 0.9}
    assert found[0].data.params == {"optimizer": "adam"}

    first = client.search_runs([experiment_id], order_by=["attributes.run_name ASC"], max_results=2)
    second = client.search_runs(
        [experiment_id], order_by=["attributes.run_name ASC"], max_results=2, page_token=first.token
    )
    assert [r.info.run_name for r in [*first, *second]] == ["a", "b", "c", "d"]

    client.delete_run(made["d"])
    assert len(client.search_runs([experiment_id])) == 4
    client.restore_run(made["d"])
    assert len(client.search_runs([experiment_id])) == 5


def test_metric_history_round_trips_across_pages(client: MlflowClient):
    experiment_id = client.create_experiment("lab/history")
    run_id = client.create_run(experiment_id).info.run_id
    sent = [
        Metric("loss", 1 / (step + 1), 1_700_000_000_000 + step, step) for step in range(30_000)
    ]
    for start in range(0, len(sent), 1000):
        client.log_batch(run_id, metrics=sent[start : start + 1000])
    history = client.get_metric_history(run_id, "loss")  # two pages of 25,000 at most
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (m.step, m.value, m.timestamp) for m in sent
    ]
    assert client.get_run(run_id).data.metrics == {"loss": 1 / 30_000}


def test_the_default_experiment_is_the_first_teams_default_project(
    server: LabbookServer, client: MlflowClient
):
    mlflow.set_experiment(experiment_id="0")
    with mlflow.start_run() as run:
        mlflow.log_param("seed", 1)
    assert server.run(int(run.info.run_id))["project"] == "lab/default"
    assert client.get_experiment_by_name("no-such-experiment") is None
    assert client.get_experiment_by_name("lab/default").experiment_id == run.info.experiment_id


def test_errors_raise_the_exceptions_mlflow_raises(server: LabbookServer, client: MlflowClient):
    with pytest.raises(MlflowException) as unknown:
        client.get_run("999999")
    assert unknown.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    run_id = client.create_run(client.create_experiment("lab/errors")).info.run_id
    client.log_param(run_id, "lr", "0.1")
    client.log_param(run_id, "lr", "0.1")  # the same value again is fine
    with pytest.raises(MlflowException) as changed:
        client.log_param(run_id, "lr", "0.2")
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "Changing param values is not allowed" in changed.value.message

    with pytest.raises(MlflowException) as exists:
        client.create_experiment("lab/errors")
    assert exists.value.error_code == "RESOURCE_ALREADY_EXISTS"

    too_many = [{"key": "m", "value": 1.0, "timestamp": 0, "step": i} for i in range(1001)]
    answer = httpx.post(
        f"{server.url}/api/2.0/mlflow/runs/log-batch",
        json={"run_id": run_id, "metrics": too_many},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "at most 1000 metrics" in answer.json()["message"]
    assert server.metric_keys(int(run_id)) == {}  # nothing half-written


def test_without_a_token_the_client_is_told_to_send_one(server: LabbookServer):
    answer = httpx.get(f"{server.url}/api/2.0/mlflow/experiments/get", params={"experiment_id": 1})
    assert answer.status_code == 401
    assert answer.json()["error_code"] == "UNAUTHENTICATED"
    assert "MLFLOW_TRACKING_TOKEN" in answer.json()["message"]


def test_an_unknown_endpoint_answers_json(server: LabbookServer):
    answer = httpx.get(f"{server.url}/api/2.0/mlflow/registered-models/search")
    assert (answer.status_code, answer.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND")


def refused(client: MlflowClient) -> str:
    with pytest.raises(MlflowException) as refusal:
        client.search_experiments()
    return str(refusal.value)


def test_a_wrong_token_is_told_it_is_not_valid_by_the_client(
    server: LabbookServer, client: MlflowClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "lb_wrong-token")
    message = refused(client)
    assert message.startswith("UNAUTHENTICATED: The token is not valid or was revoked.")
    assert "Send a Labbook API token" not in message
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "lb_wrong-token")
    message = refused(client)
    assert message.startswith("UNAUTHENTICATED: The token is not valid or was revoked.")
    assert "Check MLFLOW_TRACKING_PASSWORD" in message
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    send_one = "UNAUTHENTICATED: Send a Labbook API token: MLFLOW_TRACKING_TOKEN=<token>."
    assert refused(client) == send_one


def test_an_expired_token_is_told_when_it_expired_by_the_client(
    server: LabbookServer, client: MlflowClient, monkeypatch: pytest.MonkeyPatch
):
    expires_at = datetime.now(UTC) + timedelta(seconds=1)
    with server.client() as http:
        body = {"name": "short-lived", "expires_at": expires_at.isoformat()}
        token = http.post("/api/v1/tokens", json=body).raise_for_status().json()["token"]
    time.sleep(1.2)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    message = refused(client)
    assert message.startswith(f"UNAUTHENTICATED: The token {token[:10]}… expired on ")


def test_an_artifact_upload_with_a_wrong_token_is_told_it_is_not_valid(
    server: LabbookServer, client: MlflowClient, monkeypatch: pytest.MonkeyPatch, tmp_path
):
    run = client.create_run(client.create_experiment("lab/wrong-token-upload"))
    artifact = tmp_path / "notes.txt"
    artifact.write_text("hello")
    client.log_artifact(run.info.run_id, str(artifact))  # the artifact store is set up
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "lb_wrong-token")
    with pytest.raises(requests.HTTPError, match="401") as refusal:
        client.log_artifact(run.info.run_id, str(artifact))
    assert "The token is not valid or was revoked." in str(refusal.value)
