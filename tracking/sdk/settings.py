"""SDK settings, read from the environment when a run starts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SYSTEM_METRICS_INTERVAL = 15.0  # seconds between two system/* samples


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def _switch(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    return default if not raw else raw not in ("0", "false", "no", "off")


def _interval(name: str, default: float, minimum: float) -> float:
    value = _number(name, default)
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum:g} seconds, got {value:g}")
    return value


@dataclass(frozen=True)
class Settings:
    url: str
    token: str
    spool_dir: Path
    flush_seconds: float = 1.0
    retry_seconds: float = 60.0
    heartbeat_seconds: float = 30.0
    finish_timeout: float = 30.0
    request_timeout: float = 30.0
    queue_size: int = 50_000
    quiet: bool = False
    system_metrics: bool = True
    system_metrics_interval: float = SYSTEM_METRICS_INTERVAL
    console: bool = True  # tee stdout/stderr to the run (tracking/sdk/console.py)

    @classmethod
    def from_env(cls, *, url: str | None = None, token: str | None = None) -> Settings:
        url = (url or os.environ.get("LABBOOK_URL") or "http://127.0.0.1:8000").rstrip("/")
        token = token or os.environ.get("LABBOOK_TOKEN") or ""
        if not token:
            raise ValueError(
                "No API token: pass token=... or set LABBOOK_TOKEN"
                " (create one with `python manage.py createtoken USER` or in Settings)."
            )
        return cls(
            url=url,
            token=token,
            spool_dir=spool_dir_default(),
            flush_seconds=_number("LABBOOK_FLUSH_SECONDS", 1.0),
            retry_seconds=_number("LABBOOK_RETRY_SECONDS", 60.0),
            heartbeat_seconds=_number("LABBOOK_HEARTBEAT_SECONDS", 30.0),
            finish_timeout=_number("LABBOOK_FINISH_TIMEOUT", 30.0),
            queue_size=int(_number("LABBOOK_QUEUE_SIZE", 50_000)) or 1,
            quiet=os.environ.get("LABBOOK_QUIET", "") not in ("", "0", "false"),
            system_metrics=_switch("LABBOOK_SYSTEM_METRICS", True),
            system_metrics_interval=_interval(
                "LABBOOK_SYSTEM_METRICS_INTERVAL", SYSTEM_METRICS_INTERVAL, minimum=1.0
            ),
            console=_switch("LABBOOK_CONSOLE", True),
        )


def spool_dir_default() -> Path:
    raw = os.environ.get("LABBOOK_SPOOL_DIR") or "~/.labbook/spool"
    return Path(raw).expanduser()
