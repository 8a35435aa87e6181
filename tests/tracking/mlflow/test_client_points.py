"""Metric points through the real ``mlflow`` client and raw REST, against a live Labbook server.

Labbook keeps points as MLflow does: every point at the step it was sent with,
several points per step, an exact repeat (key, step, timestamp, value) dropped,
millisecond timestamps read back exactly. Each test reads back through MLflow's
own reads and, where it matters, Labbook's API.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

from tests.sdk.server import LabbookServer
from tests.support import services_free
from tests.tracking.mlflow.test_client import client_env

pytestmark = pytest.mark.subprocess

T0 = 1_764_150_000_000  # ms
MILLIS = [1, 999, 1001, 1_700_000_000_001, 1_764_150_000_123, 99_999_999_998_999]


@pytest.fixture(scope="module")
@services_free
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    with LabbookServer(tmp_path_factory.mktemp("mlflow-points") / "home") as running:
        yield running


@pytest.fixture
def client(server: LabbookServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    for name, value in client_env(server).items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(server.url)
    return MlflowClient()


@pytest.fixture
def run_id(client: MlflowClient, request: pytest.FixtureRequest) -> str:
    name = f"lab/{request.node.name[:60].replace('[', '-').replace(']', '')}"
    experiment = client.get_experiment_by_name(name) or client.get_experiment(
        client.create_experiment(name)
    )
    return client.create_run(experiment.experiment_id).info.run_id


def stored(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float, int]]:
    """(step, value, timestamp) of every point MLflow's get-history returns."""
    return [(m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, key)]


def in_order(points: list[tuple[int, float, int]]) -> list[tuple[int, float, int]]:
    """(step, value, timestamp) points in Labbook's order: step, then time, then as logged."""
    return sorted(points, key=lambda point: (point[0], point[2]))


class Rest:
    """MLflow's REST protocol spoken by hand, as any other client would."""

    def __init__(self, server: LabbookServer) -> None:
        self.http = httpx.Client(
            base_url=f"{server.url}/api/2.0/mlflow",
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30,
            trust_env=False,
        )

    def log(self, run_id: str, key: str, value: float, timestamp: int, **step: int) -> None:
        body = {"run_id": run_id, "key": key, "value": value, "timestamp": timestamp, **step}
        self.http.post("/runs/log-metric", json=body).raise_for_status()

    def history(self, run_id: str, key: str, **params: Any) -> list[tuple[int, float, int]]:
        params = {"run_id": run_id, "metric_key": key, **params}
        metrics = self.http.get("/metrics/get-history", params=params).raise_for_status().json()
        return [(m["step"], m["value"], m["timestamp"]) for m in metrics.get("metrics", [])]

    def latest(self, run_id: str) -> dict[str, tuple[int, float, int]]:
        run = self.http.get("/runs/get", params={"run_id": run_id}).raise_for_status().json()
        return {
            m["key"]: (m["step"], m["value"], m["timestamp"]) for m in run["run"]["data"]["metrics"]
        }


@pytest.fixture
def rest(server: LabbookServer) -> Iterator[Rest]:
    speaker = Rest(server)
    yield speaker
    speaker.http.close()


# --- Nothing moved, nothing replaced ---------------------------------------------------------


def test_a_step_0_point_after_later_steps_stays_at_step_0(client: MlflowClient, run_id: str):
    sent = [(step, step / 10, T0 + step) for step in (1, 2, 3, 4, 5)]
    sent += [(0, 9.0, T0 + 10), (6, 0.6, T0 + 11)]  # step 0 late, then a real step 6
    for step, value, stamp in sent:
        client.log_metric(run_id, "loss", value, timestamp=stamp, step=step)
    assert stored(client, run_id, "loss") == in_order(sent)


def test_the_same_order_through_raw_rest_keeps_all_seven(client, rest: Rest, run_id: str):
    sent = [(step, step / 10, T0 + step) for step in (1, 2, 3, 4, 5)]
    sent += [(0, 9.0, T0 + 10), (6, 0.6, T0 + 11)]
    for step, value, stamp in sent:
        rest.log(run_id, "loss", value, stamp, step=step)
    assert rest.history(run_id, "loss") == in_order(sent)
    assert rest.latest(run_id)["loss"] == (6, 0.6, T0 + 11)


def test_log_metric_without_a_step_keeps_every_point_at_step_0(client: MlflowClient):
    mlflow.set_experiment("lab/stepless-points")
    with mlflow.start_run() as run:
        for value in (3.0, 2.0, 1.0):
            mlflow.log_metric("loss", value)  # the client sends step 0 every time
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (0, 2.0), (0, 1.0)]
    stamps = [m.timestamp for m in history]
    assert stamps == sorted(stamps)
    latest = client.get_run(run.info.run_id).data.metrics
    assert latest == {"loss": 1.0}  # the latest timestamp at the highest step


def test_a_rest_request_without_a_step_is_step_0(rest: Rest, run_id: str):
    for offset, value in enumerate((3.0, 2.0, 1.0)):
        rest.log(run_id, "acc", value, T0 + offset)
    assert rest.history(run_id, "acc") == [(0, 3.0, T0), (0, 2.0, T0 + 1), (0, 1.0, T0 + 2)]


def test_an_exact_repeat_is_dropped_and_anything_else_is_kept(
    client: MlflowClient, rest: Rest, run_id: str
):
    client.log_metric(run_id, "val", 0.5, timestamp=T0, step=3)
    client.log_metric(run_id, "val", 0.5, timestamp=T0, step=3)  # a retry: dropped
    rest.log(run_id, "val", 0.5, T0, step=3)  # the same again by hand: dropped
    client.log_metric(run_id, "val", 0.7, timestamp=T0, step=3)  # another value: kept
    rest.log(run_id, "val", 0.5, T0 + 1, step=3)  # another time: kept
    assert stored(client, run_id, "val") == [(3, 0.5, T0), (3, 0.7, T0), (3, 0.5, T0 + 1)]
    nan = float("nan")
    client.log_metric(run_id, "odd", nan, timestamp=T0, step=1)
    client.log_metric(run_id, "odd", nan, timestamp=T0, step=1)  # NaN repeats NaN: dropped
    assert len(stored(client, run_id, "odd")) == 1


def test_asynchronous_logging_of_20_runs_stores_every_point_exactly_once(
    server: LabbookServer, client: MlflowClient
):
    experiment = client.create_experiment("lab/async-points")
    rng = random.Random(20)
    sent: dict[str, list[tuple[int, float, int]]] = {}
    for index in range(20):
        run_id = client.create_run(experiment, run_name=f"async-{index}").info.run_id
        steps = list(range(40))
        rng.shuffle(steps)  # out of order, step 0 anywhere
        sent[run_id] = [(step, rng.random(), T0 + 1000 * index + n) for n, step in enumerate(steps)]
        sent[run_id] += [(0, rng.random(), T0 + 1000 * index + 100 + n) for n in range(5)]
    pending = []
    for n in range(45):  # interleaved across runs, as a sweep driver would log them
        for run_id, points in sent.items():
            step, value, stamp = points[n]
            pending.append(
                client.log_metric(
                    run_id, "loss", value, timestamp=stamp, step=step, synchronous=False
                )
            )
    for operation in pending:
        operation.wait()
    mlflow.flush_async_logging()
    for run_id, points in sent.items():
        assert stored(client, run_id, "loss") == in_order(points), run_id
        assert server.metric_keys(int(run_id)) == {"loss": 45}


# --- Millisecond timestamps ------------------------------------------------------------------


def test_millisecond_timestamps_read_back_exactly_everywhere(
    server: LabbookServer, client: MlflowClient, rest: Rest, run_id: str
):
    for index, stamp in enumerate(MILLIS):
        client.log_metric(run_id, "t", float(index), timestamp=stamp, step=index)
        client.log_metric(run_id, f"k{index}", 1.5, timestamp=stamp, step=0)
    assert [m[2] for m in stored(client, run_id, "t")] == MILLIS
    assert [m[2] for m in rest.history(run_id, "t")] == MILLIS
    latest = rest.latest(run_id)
    assert [latest[f"k{index}"][2] for index in range(len(MILLIS))] == MILLIS
    assert latest["t"] == (len(MILLIS) - 1, float(len(MILLIS) - 1), MILLIS[-1])
    experiment_id = client.get_run(run_id).info.experiment_id
    body = {"experiment_ids": [experiment_id], "filter": f"attributes.run_id = '{run_id}'"}
    found = rest.http.post("/runs/search", json=body).raise_for_status().json()["runs"]
    searched = {m["key"]: m["timestamp"] for m in found[0]["data"]["metrics"]}
    assert [searched[f"k{index}"] for index in range(len(MILLIS))] == MILLIS
    native = server.get(f"/api/v1/runs/{run_id}/metrics/t")["timestamps"]
    assert native == [stamp / 1000 for stamp in MILLIS]
    summaries = {m["key"]: m for m in server.get(f"/api/v1/runs/{run_id}/metrics")["metrics"]}
    assert [summaries[f"k{i}"]["last_timestamp"] for i in range(len(MILLIS))] == [
        stamp / 1000 for stamp in MILLIS
    ]


# --- Paging ----------------------------------------------------------------------------------


def test_get_history_pages_through_a_step_holding_more_points_than_a_page(
    client: MlflowClient, rest: Rest, run_id: str
):
    from mlflow.entities import Metric

    sent = [Metric("many", float(n), T0 + n // 3, 0) for n in range(30)]  # 3 per millisecond
    sent += [Metric("many", float(n), T0 + n, n) for n in range(1, 6)]
    client.log_batch(run_id, metrics=sent)
    seen, params = [], {"max_results": 4}
    while True:
        page = (
            rest.http.get(
                "/metrics/get-history", params={"run_id": run_id, "metric_key": "many", **params}
            )
            .raise_for_status()
            .json()
        )
        assert len(page["metrics"]) <= 4
        seen += [(m["step"], m["value"], m["timestamp"]) for m in page["metrics"]]
        if "next_page_token" not in page:
            break
        params["page_token"] = page["next_page_token"]
    expected = in_order([(m.step, m.value, m.timestamp) for m in sent])
    assert seen == expected
    assert stored(client, run_id, "many") == expected
