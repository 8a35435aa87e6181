"""What every notification transport shares: the message it sends and how it fails.

One module per transport (``email``, ``slack``, ``webhook``), each a small
``Transport`` subclass. ``send()`` either returns a ``Delivery`` or raises
``TransportError`` saying whether a retry could help (timeouts, connection
errors, 429 with its Retry-After, 5xx) or not (other 4xx, bad config), and
whether the destination itself is broken (Slack's 404 / ``invalid_token``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    url: str  # the alert's page, absolute
    run: RunInfo
    # Signed one-click links, absolute: "acknowledge", "silence_1h", "silence_1d" (each opens
    # a confirmation page), and "run". Empty for a test message.
    links: dict[str, str] = field(default_factory=dict)
    # A metric alert's small chart around the firing point: a signed, expiring PNG URL.
    chart_url: str = ""


@dataclass(frozen=True)
class Message:
    """One notification: an event about one or more alerts of one rule (grouped)."""

    notification_id: int
    event: str  # "alert.fired" | "alert.resolved" | "alert.repeat" | "test"
    project: str
    alerts: list[AlertInfo]
    url: str  # where to look: the run page for one alert, the project's alerts for several

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


class Transport:
    kind: str

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
