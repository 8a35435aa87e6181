"""``run_no_progress``: a run that still reports but logs no metric is caught, and resolves.

A hung training loop keeps its SDK's threads alive: heartbeats and ``system/*``
readings go on, so ``run_stalled`` sees a healthy run. These tests age the
points the server stored (``received_at``), as minutes passing would, and
check what the scan makes of it; the last one does it to a real SDK process
whose loop is stuck while its heartbeats keep coming, through a real server,
worker, beat and receiver.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from alerts import scan
from alerts.models import Alert, AlertState, Notification
from kernel.errors import ApplicationError
from tests.alerts.conftest import make_rule
from tests.alerts.receiver import Receiver
from tests.conftest import World
from tests.sdk.server import ROOT, SQLITE_FILE, LabbookServer
from tests.support import wait_until
from tests.workers import celery_beat, celery_worker
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import MetricSeries, Run


def _run(world: World, name: str = "r", **fields) -> Run:
    run = tracking_services.run_create(
        user=world.owner.user, project=world.project, name=name, **fields
    )
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=1))
    return Run.objects.get(pk=run.pk)


def _log(run: Run, key: str, *steps: int) -> None:
    metrics_ingest(run=run, points=[Point(key, s, float(s), 1.0 + s) for s in steps])


def _age(run: Run, seconds: int, *, keys: tuple[str, ...] = ()) -> None:
    """Make the run's stored points ``seconds`` old, as if no point had come since."""
    series = MetricSeries.objects.filter(run=run)
    if keys:
        series = series.filter(key__in=keys)
    series.update(received_at=timezone.now() - timedelta(seconds=seconds))


def _states() -> list[tuple[str, str]]:
    return [(a.state, a.summary) for a in Alert.objects.order_by("pk")]


@pytest.mark.django_db(transaction=True)
class TestScan:
    def test_a_run_that_reports_but_logs_nothing_fires_once_and_resolves_on_a_new_point(
        self, world, hook
    ):
        make_rule(world, hook, "run_no_progress", {"after_seconds": 600})
        make_rule(world, hook, "run_stalled", {"after_seconds": 300})
        hung = _run(world, "hung")
        moving = _run(world, "moving")
        for run in (hung, moving):
            _log(run, "loss", 0, 1, 2)
            tracking_services.run_heartbeat(run=run)
        _age(hung, 700)
        result = scan.scan()
        assert (result.hung, result.stalled) == (1, 0)  # heartbeats keep the stall rule quiet
        assert scan.scan().hung == 0  # the same incident
        assert _states() == [
            ("firing", "hung has logged no metric for 11 min, though its process still reports")
        ]
        values = Alert.objects.get().values
        assert values["metric"] == "metric" and values["quiet_seconds"] >= 700

        tracking_services.run_heartbeat(run=hung)  # a heartbeat is not progress
        assert scan.scan().progressing == 0
        _log(hung, "loss", 3)
        assert scan.scan().progressing == 1
        assert Alert.objects.get().state == AlertState.RESOLVED
        assert [n.event for n in Notification.objects.order_by("pk")] == ["fired", "resolved"]

    def test_machine_readings_are_not_progress(self, world, hook):
        make_rule(world, hook, "run_no_progress", {"after_seconds": 600})
        run = _run(world)
        _log(run, "loss", 0)
        _age(run, 700)
        _log(run, "system/cpu.percent", 0, 1)  # the SDK's sampling thread goes on
        assert scan.scan().hung == 1

    def test_a_run_that_never_logged_a_metric_hangs_from_its_start(self, world, hook):
        make_rule(world, hook, "run_no_progress", {"after_seconds": 600})
        _run(world, "stuck-loading")  # started an hour ago, nothing logged
        young = tracking_services.run_create(
            user=world.owner.user, project=world.project, name="young"
        )
        assert scan.scan().hung == 1
        assert Alert.objects.get().run.name == "stuck-loading"
        assert not Alert.objects.filter(run=young).exists()

    def test_a_key_rule_watches_only_its_key(self, world, hook):
        make_rule(world, hook, "run_no_progress", {"after_seconds": 600, "key": "val/loss"})
        run = _run(world)
        _log(run, "val/loss", 0)
        _log(run, "train/loss", 0)
        _age(run, 700, keys=("val/loss",))  # train/loss is fresh: the eval loop is stuck
        assert scan.scan().hung == 1
        assert "has logged no val/loss for 11 min" in Alert.objects.get().summary
        _log(run, "train/loss", 1)
        assert scan.scan().progressing == 0
        _log(run, "val/loss", 1)
        assert scan.scan().progressing == 1

    def test_an_ended_run_resolves_and_a_failed_one_inhibits(self, world, hook):
        make_rule(world, hook, "run_no_progress", {"after_seconds": 600})
        make_rule(world, hook, "run_failed")
        finished, failed = _run(world, "finished"), _run(world, "failed")
        for run in (finished, failed):
            _log(run, "loss", 0)
            _age(run, 700)
        assert scan.scan().hung == 2
        tracking_services.run_update(run=finished, data={"status": "finished"})
        tracking_services.run_update(run=failed, data={"status": "failed"})
        scan.scan()
        by_run = {(a.run.name, a.rule.trigger): a.state for a in Alert.objects.all()}
        assert by_run == {
            ("finished", "run_no_progress"): "resolved",
            ("failed", "run_no_progress"): "resolved",  # inhibited by the failure
            ("failed", "run_failed"): "firing",
        }

    def test_rules_on_one_key_each_keep_their_own_deadline(self, world, hook):
        make_rule(world, hook, "run_no_progress", {"after_seconds": 600}, name="ten")
        make_rule(world, hook, "run_no_progress", {"after_seconds": 1800}, name="thirty")
        run = _run(world)
        _log(run, "loss", 0)
        _age(run, 900)
        assert scan.scan().hung == 1
        assert Alert.objects.get().rule.name == "ten"
        _age(run, 2000)
        assert scan.scan().hung == 1
        assert sorted(Alert.objects.values_list("rule__name", flat=True)) == ["ten", "thirty"]

    def test_the_rule_filters_apply(self, world, hook):
        make_rule(world, hook, "run_no_progress", {"after_seconds": 600}, tags=["nightly"])
        tagged = _run(world, "tagged", tags=["nightly"])
        other = _run(world, "other")
        for run in (tagged, other):
            _age(run, 700)
        assert scan.scan().hung == 1
        assert Alert.objects.get().run == tagged

    def test_params_are_checked(self, world, hook):
        with pytest.raises(ApplicationError) as bad:
            make_rule(world, hook, "run_no_progress", {"after_seconds": 10})
        assert bad.value.field == "params.after_seconds"
        with pytest.raises(ApplicationError) as bad:
            make_rule(world, hook, "run_no_progress", {"key": "bad key\n"})
        assert bad.value.field == "params.key"
        rule = make_rule(world, hook, "run_no_progress", {})
        assert rule.params == {"after_seconds": 900, "key": ""}


# --- A real hung process ------------------------------------------------------------------

HUNG_SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from tracking import sdk

    run = sdk.init(project="lab/hang", name="deadlocked")
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.flush()
    print(run.id, flush=True)
    for line in sys.stdin:  # the training loop is stuck; the SDK's threads are not
        if line.strip() == "resume":
            run.log({"loss": 0.1}, step=5)
            run.flush()
            print("resumed", flush=True)
    """
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LabbookServer]:
    env = {"ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1", "ALERTS_SCAN_SECONDS": "1"}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    with LabbookServer(tmp_path / "home", env=env) as running:
        yield running


def _age_on_server(server: LabbookServer, run_id: int, seconds: int) -> None:
    """``run_id`` started ``seconds`` ago and logged its last training point then, as the
    server's database (its SQLite file) will say after that long."""
    when = (timezone.now() - timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(server.home / SQLITE_FILE, timeout=30) as db:
        db.execute("UPDATE tracking_run SET created_at = ? WHERE id = ?", (when, run_id))
        db.execute(
            "UPDATE tracking_metricseries SET received_at = ?"
            " WHERE run_id = ? AND key NOT LIKE 'system/%'",
            (when, run_id),
        )


@pytest.mark.subprocess
def test_a_deadlocked_sdk_loop_with_live_heartbeats_is_caught_and_resolves(server, tmp_path):
    env = {
        **os.environ,
        "LABBOOK_URL": server.url,
        "LABBOOK_TOKEN": server.token,
        "LABBOOK_HEARTBEAT_SECONDS": "0.5",
        "LABBOOK_SYSTEM_METRICS_INTERVAL": "1",
        "LABBOOK_CONSOLE": "0",
        "PYTHONPATH": str(ROOT),
    }
    with (
        Receiver() as receiver,
        celery_worker(server) as worker,
        celery_beat(server),
        server.client() as client,
    ):
        hook = client.post(
            "/api/v1/destinations",
            json={
                "team": "lab",
                "kind": "webhook",
                "name": "hook",
                "config": {"url": receiver.url("/hook"), "secret": "s" * 32},
            },
        ).raise_for_status()
        maker = server.create_run("lab/hang")  # makes the project; ends, not to stall
        client.patch(f"/api/v1/runs/{maker}", json={"status": "finished"}).raise_for_status()
        for trigger, params in (
            ("run_no_progress", {"after_seconds": 60}),
            ("run_stalled", {"after_seconds": 60}),
        ):
            client.post(
                "/api/v1/alert-rules",
                json={
                    "project": "lab/hang",
                    "name": trigger,
                    "trigger": trigger,
                    "params": params,
                    "destinations": [hook.json()["id"]],
                    "group_wait": 0,
                },
            ).raise_for_status()
        process = subprocess.Popen(
            [sys.executable, "-c", HUNG_SCRIPT],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdin is not None and process.stdout is not None
            run_id = int(process.stdout.readline())
            _age_on_server(server, run_id, 120)  # two minutes without a point

            def events() -> list[tuple[str, str]]:
                bodies = [json.loads(r.body) for r in receiver.requests]
                return [(b["event"], b["alert"]["trigger"]) for b in bodies]

            fired = wait_until(lambda: events(), timeout=90)
            assert fired, f"nothing arrived; the worker's log:\n{worker.output()}"
            assert events() == [("alert.fired", "run_no_progress")]
            summary = json.loads(receiver.requests[0].body)["alert"]["summary"]
            assert "though its process still reports" in summary
            assert server.run(run_id)["status"] == "running"

            process.stdin.write("resume\n")
            process.stdin.flush()
            assert process.stdout.readline().strip() == "resumed"
            resolved = wait_until(lambda: len(events()) >= 2, timeout=90)
            assert resolved, f"no resolve; the worker's log:\n{worker.output()}"
            assert events() == [
                ("alert.fired", "run_no_progress"),
                ("alert.resolved", "run_no_progress"),
            ]  # and never a stall: the heartbeats went on
        finally:
            process.kill()
            process.wait(timeout=30)
