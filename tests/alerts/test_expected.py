"""Expected runs: the slots a cron expression makes, in its time zone, and the scan's verdicts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone

from alerts import expected, scan
from alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    Notification,
    NotificationStatus,
    Silence,
)
from kernel.errors import ApplicationError
from tests.alerts.conftest import make_rule
from tests.alerts.receiver import Receiver
from tests.sdk.server import SQLITE_FILE, LabbookServer
from tests.support import wait_until
from tests.workers import celery_beat, celery_worker
from tracking import services as tracking_services
from tracking.models import Run

NIGHTLY = {"cron": "0 2 * * *", "timezone": "UTC", "grace_seconds": 900}


def at(text: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


class TestSlots:
    def test_the_due_slot_is_the_latest_whose_grace_ran_out(self):
        slot = expected.due_slot(NIGHTLY, at("2026-12-06 02:20"))
        assert slot is not None
        assert slot.at == at("2026-12-06 02:00")
        assert slot.closes == at("2026-12-06 02:15")
        assert slot.opens == at("2026-12-05 14:00")  # half a period before
        before_grace = expected.due_slot(NIGHTLY, at("2026-12-06 02:10"))
        assert before_grace is not None and before_grace.at == at("2026-12-05 02:00")

    def test_a_run_counts_from_half_a_period_early_to_the_end_of_the_grace(self):
        slot = expected.due_slot(NIGHTLY, at("2026-12-06 03:00"))
        assert slot is not None
        assert slot.takes(at("2026-12-06 01:59"))  # a minute early
        assert slot.takes(at("2026-12-06 02:15"))
        assert not slot.takes(at("2026-12-06 02:16"))  # late: resolves, never counts
        assert not slot.takes(at("2026-12-05 04:00"))  # yesterday's late run

    def test_the_time_zone_is_the_expressions_wall_clock_across_daylight_saving(self):
        paris = {**NIGHTLY, "timezone": "Europe/Paris", "grace_seconds": 0}
        # 29 March 2026: Paris skips 02:00-03:00; cron's 02:00 happens at 03:00 local
        slot = expected.due_slot(paris, at("2026-03-29 12:00", "Europe/Paris"))
        assert slot is not None
        assert slot.at.astimezone(UTC) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
        winter = expected.due_slot(paris, at("2026-01-10 12:00", "Europe/Paris"))
        assert winter is not None
        assert winter.at.astimezone(UTC) == datetime(2026, 1, 10, 1, 0, tzinfo=UTC)

    def test_weekday_schedules(self):
        weekdays = {**NIGHTLY, "cron": "30 6 * * MON-FRI"}
        saturday = at("2026-12-05 12:00")
        slot = expected.due_slot(weekdays, saturday)
        assert slot is not None and slot.at == at("2026-12-04 06:30")  # Friday
        assert slot.opens == slot.at - timedelta(hours=12)  # Thursday to Friday: a day


class TestParams:
    @pytest.mark.parametrize(
        "bad", ["", "every night", "61 2 * * *", "0 2 * *", "0 0 30 2 *", 5, None, "x" * 101]
    )
    def test_a_bad_cron_expression_is_refused_naming_the_field(self, bad):
        with pytest.raises(ApplicationError) as error:
            expected.clean_cron(bad)
        assert error.value.field == "params.cron"

    def test_cron_whitespace_is_normalized(self):
        assert expected.clean_cron("  0  2 *  * * ") == "0 2 * * *"

    @pytest.mark.parametrize("bad", ["Mars/Olympus", "", "utc+2", 3, "../etc/passwd"])
    def test_a_bad_time_zone_is_refused(self, bad):
        with pytest.raises(ApplicationError) as error:
            expected.clean_timezone(bad)
        assert error.value.field == "params.timezone"

    def test_good_time_zones(self):
        assert expected.clean_timezone("Europe/Paris") == "Europe/Paris"
        assert expected.clean_timezone("UTC") == "UTC"


# --- The scan ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
class TestScan:
    NOW = at("2026-12-06 02:20")  # the 02:00 slot's 15 minutes of grace are over

    def rule(self, world, hook, **fields):
        rule = make_rule(world, hook, "run_expected", NIGHTLY, **fields)
        AlertRule.objects.filter(pk=rule.pk).update(created_at=at("2026-11-01 00:00"))
        return AlertRule.objects.get(pk=rule.pk)

    def started(self, world, when: datetime, name: str = "nightly", **fields) -> Run:
        run = tracking_services.run_create(
            user=world.owner.user, project=world.project, name=name, **fields
        )
        Run.objects.filter(pk=run.pk).update(created_at=when)
        return run

    def test_a_missed_run_fires_once_and_resolves_when_a_late_one_starts(self, world, hook):
        rule = self.rule(world, hook)
        self.started(world, at("2026-12-05 02:01"))  # yesterday's: counts for yesterday only
        result = scan.scan(now=self.NOW)
        assert result.missed == 1
        assert scan.scan(now=self.NOW).missed == 0  # judged once
        alert = Alert.objects.get()
        assert (alert.run, alert.rule, alert.state) == (None, rule, AlertState.FIRING)
        assert alert.summary == "No run of run_expected started by 2026-12-06 02:00 UTC"
        assert alert.values["expected_by"] == "2026-12-06T02:15:00+00:00"
        late = self.started(world, at("2026-12-06 04:00"))
        assert scan.scan(now=at("2026-12-06 04:01")).arrived == 1
        alert.refresh_from_db()
        assert alert.state == AlertState.RESOLVED
        assert alert.values["resolved_with"]["run"] == late.pk
        assert scan.scan(now=at("2026-12-06 04:02")).missed == 0  # the late run is not re-judged
        assert [n.event for n in Notification.objects.order_by("pk")] == ["fired", "resolved"]

    def test_a_run_in_its_window_keeps_it_quiet(self, world, hook):
        self.rule(world, hook)
        self.started(world, at("2026-12-06 01:58"))  # a little early
        assert scan.scan(now=self.NOW).missed == 0
        assert not Alert.objects.exists()

    def test_the_rules_filters_choose_the_runs_that_count(self, world, hook):
        self.rule(world, hook, tags=["nightly"])
        self.started(world, at("2026-12-06 02:05"), name="adhoc")  # no tag
        assert scan.scan(now=self.NOW).missed == 1
        self.started(world, at("2026-12-06 03:00"), tags=["nightly"])
        assert scan.scan(now=at("2026-12-06 03:01")).arrived == 1

    def test_a_new_rule_does_not_judge_a_window_it_did_not_see_whole(self, world, hook):
        rule = self.rule(world, hook)
        AlertRule.objects.filter(pk=rule.pk).update(created_at=at("2026-12-05 20:00"))
        assert scan.scan(now=self.NOW).missed == 0  # the window opened at 14:00, before it
        assert scan.scan(now=at("2026-12-07 02:20")).missed == 1  # the next one it saw whole

    def test_a_week_of_misses_is_one_incident(self, world, hook):
        self.rule(world, hook)
        for day in range(6, 13):
            scan.scan(now=at(f"2026-12-{day:02d} 02:20"))
        assert Alert.objects.count() == 1

    def test_another_projects_silence_does_not_mute_it(self, world, hook):
        self.rule(world, hook)
        elsewhere = tracking_services.project_create(
            user=world.outsider.user, team_slug="rival", slug="elsewhere"
        )
        Silence.objects.create(project=elsewhere, until=timezone.now() + timedelta(days=30))
        scan.scan(now=self.NOW)
        assert Notification.objects.get().status == NotificationStatus.PENDING

    def test_bad_params_are_refused_through_the_api(self, world, hook):
        with pytest.raises(ApplicationError) as error:
            make_rule(world, hook, "run_expected", {**NIGHTLY, "cron": "at two"})
        assert error.value.field == "params.cron"
        with pytest.raises(ApplicationError) as error:
            make_rule(world, hook, "run_expected", {**NIGHTLY, "grace_seconds": -1})
        assert error.value.field == "params.grace_seconds"
        rule = make_rule(world, hook, "run_expected", {"cron": "0 2 * * *"})
        assert rule.params == {"cron": "0 2 * * *", "timezone": "UTC", "grace_seconds": 3600}


@pytest.mark.django_db(transaction=True)
class TestForm:
    RULES = "/acme/mnist/alerts/rules/"

    def test_the_rule_form_offers_and_saves_schedules_and_hangs(self, client, world):
        client.force_login(world.owner.user)
        page = client.get(f"{self.RULES}new").content.decode()
        assert 'name="run_expected.cron" value="0 2 * * *"' in page
        assert 'name="run_no_progress.after_seconds" value="900"' in page
        form = {"group_wait": "0", "notify_on_resolve": "1", "enabled": "1"}
        saved = client.post(
            f"{self.RULES}new",
            {
                **form,
                "name": "nightly",
                "trigger": "run_expected",
                "run_expected.cron": "30 1 * * MON-FRI",
                "run_expected.timezone": "Europe/Paris",
                "run_expected.grace_seconds": "1800",
                "tags": "nightly",
            },
        )
        assert saved.status_code == 302
        rule = AlertRule.objects.get(name="nightly")
        assert rule.params == {
            "cron": "30 1 * * MON-FRI",
            "timezone": "Europe/Paris",
            "grace_seconds": 1800,
        }
        refused = client.post(
            f"{self.RULES}new",
            {**form, "name": "bad", "trigger": "run_expected", "run_expected.cron": "nightly",
             "run_expected.timezone": "Mars/Base", "run_expected.grace_seconds": "60"},
        )  # fmt: skip
        assert refused.status_code == 400
        assert 'id="p-run_expected-cron-error"' in refused.content.decode()
        hung = client.post(
            f"{self.RULES}new",
            {**form, "name": "hung", "trigger": "run_no_progress",
             "run_no_progress.after_seconds": "1200", "run_no_progress.key": ""},
        )  # fmt: skip
        assert hung.status_code == 302
        assert AlertRule.objects.get(name="hung").params == {"after_seconds": 1200, "key": ""}
        listed = client.get(self.RULES).content.decode()
        assert "Fires when no run starts by the times of the schedule 30 1 * * MON-FRI" in listed


# --- Through a real server, beat, worker and receiver -----------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LabbookServer]:
    env = {"ALERTS_ALLOW_PRIVATE_WEBHOOKS": "1", "ALERTS_SCAN_SECONDS": "1"}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    with LabbookServer(tmp_path / "home", env=env) as running:
        yield running


@pytest.mark.subprocess
def test_a_nightly_run_that_never_came_pages_and_its_late_start_resolves(server):
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
        server.create_run("lab/nightly")  # makes the project; untagged, so it does not count
        rule = client.post(
            "/api/v1/alert-rules",
            json={
                "project": "lab/nightly",
                "name": "nightly",
                "trigger": "run_expected",
                "tags": ["nightly"],
                "params": {"cron": "0 0 * * *", "timezone": "UTC", "grace_seconds": 0},
                "destinations": [hook.json()["id"]],
                "group_wait": 0,
            },
        ).raise_for_status()
        # The rule was made two days ago, as the server's database will say: last midnight's
        # window (from noon the day before) was all under it, and no tagged run came.
        two_days_ago = (timezone.now() - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S.%f")
        with sqlite3.connect(server.home / SQLITE_FILE, timeout=30) as db:
            db.execute(
                "UPDATE alerts_alertrule SET created_at = ? WHERE id = ?",
                (two_days_ago, rule.json()["id"]),
            )

        def bodies() -> list[dict]:
            return [json.loads(request.body) for request in receiver.requests]

        assert wait_until(lambda: bodies(), timeout=90), worker.output()
        (fired,) = bodies()
        assert (fired["event"], fired["run"]) == ("alert.fired", None)
        day = fired["alert"]["values"]["scheduled_at"][:10]  # today's, or yesterday's at 00:00
        assert fired["alert"]["values"]["scheduled_at"] == f"{day}T00:00:00+00:00"
        assert fired["alert"]["summary"] == f"No run of nightly started by {day} 00:00 UTC"
        assert fired["alert"]["values"]["cron"] == "0 0 * * *"

        late = client.post(
            "/api/v1/runs", json={"project": "lab/nightly", "name": "late", "tags": ["nightly"]}
        ).raise_for_status()
        assert wait_until(lambda: len(bodies()) >= 2, timeout=90), worker.output()
        resolved = bodies()[1]
        assert resolved["event"] == "alert.resolved"
        assert resolved["alert"]["values"]["resolved_with"]["run"] == late.json()["id"]
