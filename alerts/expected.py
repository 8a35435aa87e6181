"""Expected runs: "a run tagged nightly starts every day by 02:00" — and an alert when none does.

A ``run_expected`` rule holds a cron expression (when runs are due to start),
a time zone (the expression's wall clock, daylight saving included: cronsim
skips a 02:30 that does not exist and runs a repeated 01:30 once) and a grace
period. A run of the rule's project that passes its filters (tags, group)
counts for a scheduled time if it started at most half a period before it and
at most ``grace_seconds`` after it: a job started a minute early counts, and a
late run of today never stands in for tomorrow's.

The scan (``alerts.scan``) asks, once the grace of the latest scheduled time
has run out, whether a run came in its window; if none did, the rule's one
alert fires. It resolves when a matching run starts, however late. Slots from
before the rule existed are never judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

from kernel.errors import invalid

CRON_MAX_CHARS = 100
GRACE_MAX_SECONDS = 7 * 86400


def clean_cron(value: Any, field: str = "params.cron") -> str:
    """A five-field cron expression cronsim accepts ("0 2 * * *", "*/30 9-17 * * MON-FRI")."""
    if not isinstance(value, str) or not value.strip() or len(value) > CRON_MAX_CHARS:
        raise invalid(field, f'A cron expression such as "0 2 * * *" (at most {CRON_MAX_CHARS}).')
    expression = " ".join(value.split())
    try:
        next(CronSim(expression, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))))
    except (CronSimError, StopIteration) as error:
        raise invalid(field, f"Not a cron expression cron understands: {error}.") from None
    return expression


def clean_timezone(value: Any, field: str = "params.timezone") -> str:
    """An IANA time zone name ("UTC", "Europe/Paris")."""
    if not isinstance(value, str) or value not in _zone_names():
        raise invalid(field, 'An IANA time zone name such as "UTC" or "Europe/Paris".')
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(field, f"No time zone data for {value!r} on this server.") from None
    return value


_zones: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _zones
    if _zones is None:
        _zones = frozenset(available_timezones())
    return _zones


@dataclass(frozen=True)
class Slot:
    """One scheduled time and the window of start times that count for it."""

    at: datetime  # the scheduled time, aware
    opens: datetime  # half a period before it
    closes: datetime  # ``at`` plus the grace

    def takes(self, started: datetime) -> bool:
        return self.opens < started <= self.closes


def due_slot(params: dict[str, Any], now: datetime) -> Slot | None:
    """The latest slot whose grace has run out by ``now``, or None if the cron never fires."""
    zone = ZoneInfo(params["timezone"])
    grace = timedelta(seconds=params["grace_seconds"])
    earlier = CronSim(params["cron"], (now - grace).astimezone(zone), reverse=True)
    try:
        at = next(earlier)
        before = next(earlier)
    except StopIteration:  # an expression such as "0 0 30 2 *" (30 February) never fires
        return None
    return Slot(at=at, opens=at - (at - before) / 2, closes=at + grace)
