"""Expected runs: the slots a cron expression makes, in its time zone, and the scan's verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts import expected
from kernel.errors import ApplicationError

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
