"""Per-token rate limits on the REST API and the MLflow API (``tracking.throttling``).

Rates are set per test through ``settings.LABBOOK``; the budgets live in the
configured cache (process memory, or Redis when REDIS_URL is set). Every
token starts with a full budget: the cache key holds the token's random
prefix, so no test inherits another's count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from labbook.env import env_rate
from tests.sdk.server import ROOT, LabbookServer, server_env
from tracking import services, throttling
from tracking.models import Run

METRICS = "/api/v1/runs/{}/metrics"


@pytest.fixture
def rates(settings):
    """Set ``API_THROTTLE_RATE`` / ``INGEST_THROTTLE_RATE`` for this test (None: no limit)."""

    def set_rates(*, api: str | None = None, ingest: str | None = None) -> None:
        settings.LABBOOK = {**settings.LABBOOK, "API_THROTTLE_RATE": api}
        settings.LABBOOK = {**settings.LABBOOK, "INGEST_THROTTLE_RATE": ingest}

    return set_rates


@pytest.fixture
def run(world) -> Run:
    return services.run_create(user=world.owner.user, project=world.project, name="base")


def post_points(client: APIClient, run: Run, step: int = 0):
    body = {"points": [{"key": "loss", "step": step, "value": 0.5}]}
    return client.post(METRICS.format(run.pk), body, format="json")


def assert_throttled(response) -> int:
    """The 429 answer's Retry-After, after checking its JSON error."""
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "throttled"
    assert "throttled" in response.json()["error"]["message"]
    return int(response["Retry-After"])


# --- REST API -------------------------------------------------------------------------------


def test_it_answers_429_with_retry_after_once_a_tokens_budget_is_spent(world, rates):
    rates(api="3/min")
    client = world.owner.client()
    assert [client.get("/api/v1/projects").status_code for _ in range(3)] == [200] * 3
    retry_after = assert_throttled(client.get("/api/v1/projects"))
    assert 1 <= retry_after <= 20, "one more request fits after 60 s / 3"


def test_other_tokens_and_browser_sessions_keep_their_own_budget(world, rates, client):
    rates(api="2/min")
    owner = world.owner.client()
    for _ in range(2):
        owner.get("/api/v1/projects")
    assert_throttled(owner.get("/api/v1/projects"))
    assert world.editor.client().get("/api/v1/projects").status_code == 200
    _, second = services.token_create(user=world.owner.user, name="second")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {second}")
    assert other.get("/api/v1/projects").status_code == 200
    client.force_login(world.owner.user)
    assert [client.get("/api/v1/projects").status_code for _ in range(5)] == [200] * 5


def test_ingest_and_api_requests_draw_on_separate_budgets(world, run, rates):
    rates(api="2/min", ingest="3/min")
    client = world.owner.client()
    for _ in range(2):
        client.get("/api/v1/projects")
    assert_throttled(client.get("/api/v1/projects"))
    assert [post_points(client, run, s).status_code for s in range(3)] == [200] * 3
    assert_throttled(post_points(client, run, 3))
    assert_throttled(client.patch(f"/api/v1/runs/{run.pk}", {"notes": "x"}, format="json"))
    assert run.metric_series.get().count == 3, "the refused batch wrote nothing"


class Clock:
    """The throttle's clock, moved by hand: on a busy machine three requests may take longer
    than a 2/s budget's second, so real time would let the third one through."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


def test_a_token_is_admitted_again_once_retry_after_has_passed(world, rates, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(throttling, "time", clock)
    rates(api="2/s")
    client = world.owner.client()
    for _ in range(2):
        client.get("/api/v1/projects")
    retry_after = assert_throttled(client.get("/api/v1/projects"))
    assert retry_after == 1
    clock.now += retry_after
    assert client.get("/api/v1/projects").status_code == 200


def test_a_rate_of_none_means_no_limit(world, run, rates):
    rates(api=None, ingest=None)
    client = world.owner.client()
    assert {client.get("/api/v1/projects").status_code for _ in range(30)} == {200}
    assert {post_points(client, run, s).status_code for s in range(30)} == {200}


def test_the_scope_is_checked_before_the_budget(world, rates):
    rates(api="1/min")
    _, raw = services.token_create(user=world.owner.user, name="ro", scope="read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.post("/api/v1/runs", {"project": "acme/x"}, format="json").status_code == 403
    assert client.get("/api/v1/projects").status_code == 200, "a refused write spent nothing"


# --- MLflow API -----------------------------------------------------------------------------


def mlflow(token: str, path: str, body: dict[str, Any]):
    return APIClient().post(
        f"/api/2.0/mlflow/{path}",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_the_mlflow_api_is_throttled_per_token_too(world, run, rates):
    rates(api="2/min", ingest="2/min")
    token = world.owner.token
    metric = {"key": "loss", "value": 1.0, "timestamp": 0, "step": 0}
    for _ in range(2):
        answer = mlflow(token, "runs/log-batch", {"run_id": str(run.pk), "metrics": [metric]})
        assert answer.status_code == 200
    refused = mlflow(token, "runs/log-batch", {"run_id": str(run.pk), "metrics": [metric]})
    assert refused.status_code == 429
    assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert 1 <= int(refused["Retry-After"]) <= 30
    search = {"experiment_ids": [str(run.project_id)]}
    assert mlflow(token, "runs/search", search).status_code == 200, "the API budget is apart"
    assert world.owner.client().get("/api/v1/projects").status_code == 200
    assert world.owner.client().get("/api/v1/projects").status_code == 429, "shared with REST"


# --- The algorithm ----------------------------------------------------------------------------


def test_a_budget_allows_a_burst_then_the_sustained_rate(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(throttling, "time", clock)
    key = f"test:{uuid.uuid4().hex}"
    allowed = [throttling.take(key, requests=5, seconds=2.5) is None for _ in range(7)]
    assert allowed == [True] * 5 + [False] * 2
    clock.now += 0.6  # one request's worth (2.5 s / 5 = 0.5 s) has come back, not two
    allowed = [throttling.take(key, requests=5, seconds=2.5) is None for _ in range(2)]
    assert allowed == [True, False]


def test_it_counts_exactly_under_concurrent_requests_in_one_process():
    key = f"test:{uuid.uuid4().hex}"
    start = threading.Barrier(40)
    results: list[bool] = []

    def request() -> None:
        start.wait()
        results.append(throttling.take(key, requests=25, seconds=3600) is None)

    threads = [threading.Thread(target=request) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 25


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("600/min", "600/min"), ("10/s", "10/s"), (" 5 / hour ", "5/hour"), ("0", None), ("", None)],
)
def test_rates_are_read_from_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv("API_THROTTLE_RATE", raw)
    assert env_rate("API_THROTTLE_RATE", "1/s") == expected
    if expected:
        assert throttling.parse_rate(expected)[0] == int(expected.split("/")[0])


@pytest.mark.parametrize("raw", ["600", "fast", "10/week", "-1/s", "1.5/s"])
def test_a_bad_rate_stops_start_up_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("INGEST_THROTTLE_RATE", raw)
    with pytest.raises(ImproperlyConfigured, match="INGEST_THROTTLE_RATE"):
        env_rate("INGEST_THROTTLE_RATE", "1/s")


# --- Several web processes -------------------------------------------------------------------


@pytest.mark.subprocess
def test_web_processes_sharing_redis_share_each_tokens_budget(tmp_path):
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("needs REDIS_URL: on the embedded default one web process holds the budgets")
    env = {"REDIS_URL": redis_url, "API_THROTTLE_RATE": "4/min"}
    with LabbookServer(tmp_path / "home", env=env) as first:
        second = LabbookServer(tmp_path / "home", env=env)  # same database, another process
        with second:
            headers = {"Authorization": f"Bearer {first.token}"}
            answers = [
                httpx.get(f"{server.url}/api/v1/projects", headers=headers, trust_env=False)
                for server in (first, second, first, second, second)
            ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    assert answers[-1].headers["Retry-After"]


MLFLOW_SCRIPT = """
import time
import mlflow
started = time.monotonic()
mlflow.set_experiment("lab/throttled")
with mlflow.start_run() as run:
    for step in range(8):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
print(run.info.run_id, time.monotonic() - started)
"""


@pytest.mark.subprocess
def test_the_mlflow_client_waits_out_a_429_and_logs_everything(tmp_path):
    with LabbookServer(tmp_path / "home", env={"INGEST_THROTTLE_RATE": "2/s"}) as server:
        env = {**server_env(server.home), "MLFLOW_TRACKING_URI": server.url}
        env.update(MLFLOW_TRACKING_TOKEN=server.token, MLFLOW_DISABLE_TELEMETRY="true")
        done = subprocess.run(
            [sys.executable, "-c", MLFLOW_SCRIPT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        run_id, seconds = done.stdout.strip().splitlines()[-1].split()
        # 11 writes (experiment, run, 8 metrics, end) at 2 a second after a burst of 2.
        assert float(seconds) > 3.5, "the client was never throttled"
        assert server.history(int(run_id), "loss")[0] == list(range(8))
        assert server.run(int(run_id))["status"] == "finished"
