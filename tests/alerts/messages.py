"""Ready-made transport messages: a failed run, a NaN metric, a test notification."""

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


def fired(*alerts: AlertInfo, notification_id: int = 101) -> Message:
    alerts = alerts or (alert_info(),)
    url = alerts[0].run.url if len(alerts) == 1 else f"{BASE}/acme/mnist/alerts"
    return Message(notification_id, "alert.fired", "acme/mnist", list(alerts), url)


def ping_message(notification_id: int = 102) -> Message:
    return Message(notification_id, "test", "acme/mnist", [], f"{BASE}/acme/mnist/alerts")
