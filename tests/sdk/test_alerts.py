"""run.alert reaches the server; a repeat with the same title inside wait_duration is suppressed.

The proxy sees every alert request and the server's answer, so suppression is
observable whether the SDK drops the repeat itself or the server answers
``{"suppressed": true}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.sdk.proxy import FaultProxy
from tests.sdk.server import LabbookServer

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(60)]

ALERTS = r"/api/v1/runs/\d+/alerts$"


def require_alerts_endpoint(server: LabbookServer, run_id: int) -> None:
    with server.client() as client:
        probe = client.post(f"/api/v1/runs/{run_id}/alerts", json={})
    if probe.status_code == 404:
        pytest.skip("the server has no POST /api/v1/runs/{id}/alerts yet")


def test_it_sends_an_alert_and_suppresses_a_quick_repeat(
    server: LabbookServer, proxy: FaultProxy, start_run: Callable[..., Any]
) -> None:
    run = start_run(url=proxy.url)
    require_alerts_endpoint(server, run.id)
    run.alert("Loss diverged", "loss is NaN at step 7", level="error", wait_duration=60)
    run.alert("Loss diverged", "still NaN at step 8", level="error", wait_duration=60)
    run.alert("Slow epoch", "epoch took 2 h", level="warn")
    run.finish()
    sent = proxy.forwarded(method="POST", path=ALERTS)
    first, other = sent[0], sent[-1]
    assert first.body["title"] == "Loss diverged" and first.body["level"] == "error"
    assert first.body["text"] == "loss is NaN at step 7"
    assert first.status in (200, 201) and first.response["suppressed"] is False
    assert other.body["title"] == "Slow epoch" and other.response["suppressed"] is False
    repeats = sent[1:-1]
    assert all(r.response["suppressed"] is True for r in repeats), repeats


def test_it_refuses_an_unknown_level(start_run: Callable[..., Any]) -> None:
    run = start_run()
    with pytest.raises(ValueError):
        run.alert("x", "y", level="critical")
