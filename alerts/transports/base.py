"""What every notification transport shares: the message it sends and how it fails.

One module per transport (``email``, ``slack``, ``webhook``), each a small
``Transport`` subclass. ``send()`` either returns a ``Delivery`` or raises
``TransportError`` saying whether a retry could help (timeouts, connection
errors, 429 with its Retry-After, 5xx) or not (other 4xx, bad config), and
whether the destination itself is broken (Slack's 404 / ``invalid_token``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tracking.models import FAILED_STATUSES


@dataclass(frozen=True)
class RunInfo:
    id: int
    name: str
    status: str
    url: str  # the run page, absolute (BASE_URL)
    project: str  # "team/project"
    tags: list[str] = field(default_factory=list)
    error: str = ""
    traceback_tail: str = ""
    console_tail: str = ""  # a failed run's last console lines, colour codes removed
    metrics: dict[str, Any] = field(default_factory=dict)  # key -> latest value (JSON-safe)

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass(frozen=True)
class AlertInfo:
    id: int
    rule: str  # the rule's name
    trigger: str  # run_failed, metric_threshold, ...
    state: str  # firing | resolved
    summary: str  # one line, e.g. "val/loss is NaN at step 1179"
    values: dict[str, Any]
    fired_at: str  # ISO 8601
    resolved_at: str | None
    url: str  # where to look, absolute: the run page's alerts, or the alert page without a run
    run: RunInfo | None  # None: an alert about a run that did not come (run_expected)
    project: str = ""  # "team/project"
    # Signed one-click links, absolute: "acknowledge", "silence_1h", "silence_1d" (each opens
    # a confirmation page), "alert" (its page) and "run" (when it has one). Empty for a test
    # message.
    links: dict[str, str] = field(default_factory=dict)
    # A metric alert's small chart around the firing point: a signed, expiring PNG URL.
    chart_url: str = ""

    @property
    def chart_alt(self) -> str:
        """Words for the chart's image: the metric and the step the alert fired at."""
        key, step = self.values.get("key"), self.values.get("step")
        return f"Chart of {key} around step {step}, where the alert fired"


@dataclass(frozen=True)
class Message:
    """One notification: an event about one or more alerts of one rule (grouped)."""

    notification_id: int
    event: str  # "alert.fired" | "alert.resolved" | "alert.repeat" | "test"
    project: str
    alerts: list[AlertInfo]
    url: str  # where to look: the run page for one alert, the project's alerts for several
    # The PNG charts (alerts.snapshot) of its first MAX_CHARTS metric alerts, by alert id: only
    # for a transport that embeds them (``Transport.embeds_charts``), drawn before sending so
    # that transports never read the database. Not in any JSON payload.
    charts: dict[int, bytes] = field(default_factory=dict, repr=False)

    @property
    def title(self) -> str:
        """A one-line subject: "[acme/mnist] FIRING run_failed: resnet-3 failed"."""
        state = {"alert.resolved": "RESOLVED", "test": "TEST"}.get(self.event, "FIRING")
        if not self.alerts:
            return f"[{self.project}] {state}: test notification from Labbook"
        first = self.alerts[0]
        more = f" (+{len(self.alerts) - 1} more)" if len(self.alerts) > 1 else ""
        return f"[{self.project}] {state} {first.rule}: {first.summary}{more}"


@dataclass(frozen=True)
class Delivery:
    status_code: int | None
    latency_ms: int


class TransportError(Exception):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
        broken: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after
        self.broken = broken


# How the API and pages show a secret part of a config; sent back as shown, it keeps
# the stored value (``Transport.with_secrets_kept``).
SECRET_MASK = "********"  # noqa: S105 - a placeholder, not a secret


# The most charts one message shows (inline images of an email, image blocks in Slack): a
# grouped message about a sweep stays light, and Slack's 50 blocks are never reached.
MAX_CHARTS = 5


class Transport:
    kind: str
    embeds_charts = False  # whether ``send`` wants the charts' bytes in ``Message.charts``

    def clean_config(self, config: Any) -> dict[str, Any]:
        """The config to store, or ApplicationError naming the bad field (at save time)."""
        raise NotImplementedError

    def public_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config as anyone who may see the destination sees it: secrets masked."""
        return dict(config)

    def with_secrets_kept(self, new: Any, stored: dict[str, Any]) -> Any:
        """``new`` (a config sent to update), with what it left masked or out taken from
        ``stored``: a client can send back the config it was shown."""
        return new

    def send(self, message: Message, config: dict[str, Any]) -> Delivery:
        raise NotImplementedError


def readable(value: Any) -> str:
    """A value of an alert for people, never a Python repr: numbers to 6 significant digits,
    NaN and infinities by name, an object as "key: value, ..." in key order (PostgreSQL's
    JSON keeps no order of its own), a list comma-separated."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {readable(value[key])}" for key in sorted(value)) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(readable(item) for item in value) or "—"
    return str(value)


def missed_run_facts(alert: AlertInfo) -> list[tuple[str, str]]:
    """What a message shows about an alert without a run (``run_expected``: the run did not
    come) where it would show the run: the project, the schedule and when the run was due."""
    values = alert.values
    facts = [("Project", alert.project)]
    if values.get("cron"):
        facts.append(("Schedule", f"{values['cron']} ({values.get('timezone') or 'UTC'})"))
    if values.get("expected_by"):
        facts.append(("Expected by", local_time(values["expected_by"], values.get("timezone"))))
    return facts


def local_time(moment: Any, zone: Any) -> str:
    """An ISO time as the schedule's people read it, in its zone: "2026-12-06 02:30 CET"."""
    try:
        local = datetime.fromisoformat(str(moment)).astimezone(ZoneInfo(str(zone or "UTC")))
    except (ValueError, KeyError):  # not an ISO time, or an unknown zone: as it was stored
        return readable(moment)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def alert_page_url(alert: AlertInfo) -> str:
    """Where a message sends people to open an alert that has no run page: the alert's own."""
    return alert.links.get("alert") or alert.url
