"""Receivers misbehaving, with a real worker and beat: every notification ends sent or failed.

One receiver goes through a storm (500, 502, 503, a 429 with Retry-After, a
hang past the client's timeout) and then recovers: it gets the message on the
attempt after, every attempt with the same Idempotency-Key and body. Another
answers 500 whatever happens: after ``ALERTS_MAX_ATTEMPTS`` its notification
is ``failed`` with the status and the reason kept. None vanishes, none is
left pending. (The mail server down and then up is in tests/alerts/test_faults.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from tests.alerts.receiver import Receiver, Reply
from tests.alerts.test_faults import FAST_RECOVERY
from tests.sdk.server import LabbookServer
from tests.support import wait_until
from tests.workers import celery_beat, celery_worker

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(240)]

ATTEMPTS = 6
STORM = (
    Reply(500, body="internal error"),
    Reply(502, body="bad gateway"),
    Reply(503, body="unavailable"),
    Reply(429, headers={"Retry-After": "1"}, body="slow down"),
    Reply(delay=60),  # longer than the client's timeout: a hang
)  # then 200 "ok"
SETTLE_TIMEOUT = 120


def test_a_storm_then_recovery_is_delivered_once_and_a_dead_receiver_is_recorded_failed(
    tmp_path: Path,
):
    env = {**FAST_RECOVERY, "ALERTS_RETRY_BASE_SECONDS": "0", "ALERTS_MAX_ATTEMPTS": str(ATTEMPTS)}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL  # CI's second pass
    with (
        LabbookServer(tmp_path / "home", env=env) as server,
        Receiver() as flaky,
        Receiver() as dead,
        server.client() as client,
    ):
        flaky.script(*STORM)
        dead.script(*[Reply(500, body="still broken")] * (ATTEMPTS + 5))
        hooks = {}
        for name, receiver in (("flaky", flaky), ("dead", dead)):
            config = {"url": receiver.url("/hook"), "secret": "s" * 32}
            body = {"team": "lab", "kind": "webhook", "name": name, "config": config}
            hooks[name] = client.post("/api/v1/destinations", json=body).raise_for_status().json()
        run_id = server.create_run("lab/faults")
        destinations = [hook["id"] for hook in hooks.values()]
        rule = {"project": "lab/faults", "name": "failures", "trigger": "run_failed",
                "destinations": destinations, "group_wait": 0}  # fmt: skip
        client.post("/api/v1/alert-rules", json=rule).raise_for_status()

        def logged() -> dict[str, dict]:
            found = client.get("/api/v1/notifications").raise_for_status().json()
            return {n["destination_name"]: n for n in found}

        def settled() -> bool:
            now = logged()
            return len(now) == 2 and all(n["status"] in ("sent", "failed") for n in now.values())

        with celery_worker(server) as worker, celery_beat(server):
            client.patch(f"/api/v1/runs/{run_id}", json={"status": "failed"}).raise_for_status()
            assert wait_until(settled, timeout=SETTLE_TIMEOUT, interval=0.5), worker.output()
        final = logged()

    assert (final["flaky"]["status"], final["flaky"]["attempts"]) == ("sent", len(STORM) + 1)
    assert len(flaky.requests) == len(STORM) + 1
    assert len({r.headers["idempotency-key"] for r in flaky.requests}) == 1
    assert len({r.body for r in flaky.requests}) == 1
    assert (final["dead"]["status"], final["dead"]["attempts"]) == ("failed", ATTEMPTS)
    assert final["dead"]["response_code"] == 500
    assert "500" in final["dead"]["last_error"]
    assert len(dead.requests) == ATTEMPTS  # and not one more
