"""Ready-made transport messages: a failed run, a NaN metric, a run that did not come, a test
notification."""

from __future__ import annotations

from alerts.transports.base import AlertInfo, Message, RunInfo

BASE = "http://labbook.example"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 42, in <module>\n'
    "RuntimeError: CUDA out of memory"
)

CONSOLE = "epoch 3/10: loss 0.4213\nallocating 12.0 GiB on cuda:0"


def run_info(run_id: int = 7, *, name: str = "resnet-3", status: str = "failed") -> RunInfo:
    return RunInfo(
        id=run_id,
        name=name,
        status=status,
        url=f"{BASE}/runs/{run_id}",
        project="acme/mnist",
        tags=["sweep"],
        error="RuntimeError: CUDA out of memory" if status == "failed" else "",
        traceback_tail=TRACEBACK if status == "failed" else "",
        console_tail=CONSOLE if status == "failed" else "",
        metrics={"val/loss": 0.4213, "epoch": 3},
    )


def alert_info(alert_id: int = 11, *, run: RunInfo | None = None, **changes: object) -> AlertInfo:
    run = run or run_info()
    fields: dict[str, object] = {
        "id": alert_id,
        "rule": "runs that fail",
        "trigger": "run_failed",
        "state": "firing",
        "summary": f"{run.name} failed",
        "values": {"status": run.status, "exit_code": 1},
        "fired_at": "2025-06-01T03:00:00+00:00",
        "resolved_at": None,
        "url": f"{BASE}/alerts/{alert_id}",
        "run": run,
    }
    fields.update(changes)
    return AlertInfo(**fields)  # type: ignore[arg-type]


def missed_run_alert(alert_id: int = 21, **changes: object) -> AlertInfo:
    """A run_expected alert: no run of nightly started by its deadline, so no run at all."""
    links = {
        name: f"{BASE}/alerts/{alert_id}/{name}?sig=x"
        for name in ("acknowledge", "silence_1h", "silence_1d")
    }
    fields: dict[str, object] = {
        "id": alert_id,
        "rule": "nightly",
        "trigger": "run_expected",
        "state": "firing",
        "summary": "No run of nightly started by 2026-12-06 02:00 UTC",
        "values": {
            "scheduled_at": "2026-12-06T02:00:00+00:00",
            "window_opened_at": "2026-12-05T14:00:00+00:00",
            "expected_by": "2026-12-06T02:30:00+00:00",
            "cron": "0 2 * * *",
            "timezone": "UTC",
        },
        "fired_at": "2026-12-06T02:30:15+00:00",
        "resolved_at": None,
        "url": f"{BASE}/alerts/{alert_id}/",
        "run": None,
        "project": "acme/mnist",
        "links": {**links, "alert": f"{BASE}/alerts/{alert_id}/"},
    }
    fields.update(changes)
    return AlertInfo(**fields)  # type: ignore[arg-type]


def fired(*alerts: AlertInfo, notification_id: int = 101) -> Message:
    alerts = alerts or (alert_info(),)
    first = alerts[0]
    one = first.run.url if first.run is not None else first.url
    url = one if len(alerts) == 1 else f"{BASE}/acme/mnist/alerts"
    return Message(notification_id, "alert.fired", "acme/mnist", list(alerts), url)


def ping_message(notification_id: int = 102) -> Message:
    return Message(notification_id, "test", "acme/mnist", [], f"{BASE}/acme/mnist/alerts")
