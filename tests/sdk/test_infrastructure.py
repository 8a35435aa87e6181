"""The SDK tests' own machinery, checked with plain HTTP: the server fixture and the proxy."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from tests.sdk.proxy import FaultProxy
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.subprocess


def client(url: str, token: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False)


def post_points(http: httpx.Client, run_id: int, steps: range, batch_id: str) -> httpx.Response:
    points = [{"key": "loss", "step": step, "value": step / 10} for step in steps]
    return http.post(
        f"/api/v1/runs/{run_id}/metrics", json={"batch_id": batch_id, "points": points}
    )


def test_it_serves_healthz_and_reads_back_points(server: LabbookServer, project: str) -> None:
    assert httpx.get(f"{server.url}/healthz", trust_env=False).json()["status"] == "ok"
    run_id = server.create_run(project)
    with client(server.url, server.token) as http:
        post_points(http, run_id, range(5), "b-1").raise_for_status()
        nan = {"key": "loss", "step": 5, "value": "NaN"}
        http.post(f"/api/v1/runs/{run_id}/metrics", json={"points": [nan]}).raise_for_status()
    steps, values = server.history(run_id, "loss")
    assert steps == [0, 1, 2, 3, 4, 5]
    assert values[:5] == [0.0, 0.1, 0.2, 0.3, 0.4] and math.isnan(values[5])
    assert server.metric_keys(run_id) == {"loss": 6}
    assert server.run(run_id)["status"] == "running"
    assert [run["id"] for run in server.runs(project)] == [run_id]


def test_it_stops_and_starts_on_the_same_port_with_the_same_data(
    own_server: LabbookServer, project: str
) -> None:
    run_id = own_server.create_run(project)
    own_server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{own_server.url}/healthz", trust_env=False)
    own_server.start()
    assert own_server.run(run_id)["id"] == run_id


def test_it_forwards_and_counts(server: LabbookServer, proxy: FaultProxy, project: str) -> None:
    run_id = server.create_run(project)
    with client(proxy.url, server.token) as http:
        answer = post_points(http, run_id, range(3), "b-1").raise_for_status().json()
    assert answer == {"accepted": 3, "duplicates": 0, "replayed": False}
    [record] = proxy.forwarded(method="POST", path=r"/metrics$")
    assert record.batch_id == "b-1" and record.status == 200 and record.response == answer
    assert proxy.failed() == []


def test_it_answers_injected_statuses_only_on_matching_paths(
    server: LabbookServer, proxy: FaultProxy, project: str
) -> None:
    run_id = server.create_run(project)
    proxy.fail("status", 2, status=500, method="POST", path=r"/metrics$")
    proxy.fail("status", 1, status=429, retry_after="1", path=r"/metrics$")
    with client(proxy.url, server.token) as http:
        assert http.get(f"/api/v1/runs/{run_id}").status_code == 200  # not matched
        statuses = [post_points(http, run_id, range(3), "b-1") for _ in range(4)]
    assert [r.status_code for r in statuses] == [500, 500, 429, 200]
    assert statuses[2].headers["Retry-After"] == "1"
    assert [r.outcome for r in proxy.failed()] == ["status 500", "status 500", "status 429"]
    assert len(proxy.forwarded(path=r"/metrics$")) == 1
    assert server.metric_keys(run_id) == {"loss": 3}


def test_it_closes_before_or_after_forwarding(
    server: LabbookServer, proxy: FaultProxy, project: str
) -> None:
    run_id = server.create_run(project)
    proxy.fail("close", 1)
    proxy.fail("drop_response", 1)
    with client(proxy.url, server.token) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            post_points(http, run_id, range(2), "b-1")
        assert server.metric_keys(run_id) == {}
        with pytest.raises(httpx.RemoteProtocolError):
            post_points(http, run_id, range(2), "b-2")
        assert server.metric_keys(run_id) == {"loss": 2}
        replay = post_points(http, run_id, range(2), "b-2").json()
    assert replay["replayed"] is True
    assert [r.outcome for r in proxy.failed()] == ["closed", "dropped response"]


def test_it_delays(server: LabbookServer, proxy: FaultProxy) -> None:
    proxy.fail("delay", 1, seconds=0.5)
    started = time.monotonic()
    assert httpx.get(f"{proxy.url}/healthz", trust_env=False).status_code == 200
    assert time.monotonic() - started >= 0.5
    assert [r.outcome for r in proxy.counters.records] == ["delayed"]
