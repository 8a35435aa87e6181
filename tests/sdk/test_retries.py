"""The SDK behind a fault proxy: 5xx, 429 and lost connections are retried, nothing is doubled."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.sdk.proxy import FaultProxy, Record
from tests.sdk.server import LabbookServer

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(60)]

METRICS = r"/api/v1/runs/\d+/metrics$"
RUN = r"/api/v1/runs/\d+$"


def log_losses(run: Any, steps: range) -> None:
    for step in steps:
        run.log({"loss": 1 / (step + 1)})


def assert_losses(server: LabbookServer, run_id: int, steps: range) -> None:
    assert server.history(run_id, "loss") == (list(steps), [1 / (s + 1) for s in steps])


def assert_resent(proxy: FaultProxy, failed: list[Record]) -> None:
    """Every failed batch reached the server later, under the same batch_id."""
    assert failed and all(record.batch_id for record in failed), failed
    stored = {r.batch_id for r in proxy.forwarded(path=METRICS) if r.status == 200}
    assert {r.batch_id for r in failed} <= stored


def test_it_retries_server_errors_and_throttling(
    server: LabbookServer, proxy: FaultProxy, start_run: Callable[..., Any]
) -> None:
    run = start_run(url=proxy.url)
    proxy.fail("status", 3, status=500, method="POST", path=METRICS)
    proxy.fail("status", 1, status=503, method="POST", path=METRICS)
    proxy.fail("status", 2, status=429, retry_after="1", method="POST", path=METRICS)
    log_losses(run, range(300))
    run.finish()
    assert_losses(server, run.id, range(300))
    failed = proxy.failed(path=METRICS)
    assert [r.status for r in failed] == [500, 500, 500, 503, 429, 429]
    assert_resent(proxy, failed)
    assert server.run(run.id)["status"] == "finished"


def test_it_waits_as_long_as_retry_after_says(
    proxy: FaultProxy, start_run: Callable[..., Any]
) -> None:
    run = start_run(url=proxy.url)
    proxy.fail("status", 1, status=429, retry_after="1", method="POST", path=METRICS)
    log_losses(run, range(10))
    run.finish()
    posts = proxy.counters.where(method="POST", path=METRICS)
    assert posts[0].status == 429 and posts[1].status == 200
    assert posts[1].at - posts[0].at >= 0.9, "retried before Retry-After elapsed"


def test_it_resends_a_batch_whose_answer_was_lost_without_doubling_it(
    server: LabbookServer, proxy: FaultProxy, start_run: Callable[..., Any]
) -> None:
    run = start_run(url=proxy.url)
    proxy.fail("drop_response", 1, method="POST", path=METRICS)
    proxy.fail("close", 1, method="POST", path=METRICS)
    log_losses(run, range(200))
    run.finish()
    assert_losses(server, run.id, range(200))
    dropped, closed = proxy.failed(path=METRICS)
    assert (dropped.outcome, closed.outcome) == ("dropped response", "closed")
    assert dropped.status == 200, "the server applied the batch whose answer was dropped"
    assert_resent(proxy, [dropped, closed])
    replays = [r for r in proxy.forwarded(path=METRICS) if r.batch_id == dropped.batch_id]
    assert replays and replays[0].response["replayed"] is True


def test_it_keeps_logging_while_a_request_hangs(
    server: LabbookServer, proxy: FaultProxy, start_run: Callable[..., Any]
) -> None:
    run = start_run(url=proxy.url)
    proxy.fail("delay", 1, seconds=2, method="POST", path=METRICS)
    run.log({"loss": 1.0})
    time.sleep(0.5)  # the first batch is now stuck in the proxy
    slowest = 0.0
    for step in range(1, 2000):
        started = time.perf_counter()
        run.log({"loss": 1 / (step + 1)})
        slowest = max(slowest, time.perf_counter() - started)
    run.finish()
    assert slowest < 0.5, f"log() blocked for {slowest:.2f} s behind a slow request"
    assert_losses(server, run.id, range(2000))


def test_it_retries_creating_the_run_and_finishing_it(
    server: LabbookServer, proxy: FaultProxy, start_run: Callable[..., Any], project: str
) -> None:
    proxy.fail("status", 1, status=503, method="POST", path=r"/api/v1/runs$")
    run = start_run(url=proxy.url)
    log_losses(run, range(5))
    proxy.fail("status", 2, status=502, method="PATCH", path=RUN)
    run.finish()
    assert [r["id"] for r in server.runs(project)] == [run.id]
    assert server.run(run.id)["status"] == "finished"
    assert_losses(server, run.id, range(5))


def test_it_creates_one_run_when_the_answer_to_creating_it_is_lost(
    server: LabbookServer, proxy: FaultProxy, start_run: Callable[..., Any], project: str
) -> None:
    proxy.fail("drop_response", 1, method="POST", path=r"/api/v1/runs$")
    run = start_run(url=proxy.url)
    run.finish()
    assert [r["id"] for r in server.runs(project)] == [run.id], "a retried create made a second run"
