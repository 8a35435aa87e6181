"""One SDK client of the `manage.py up` soak: runs back to back, writing down what it sent.

    python -m tests.reliability.soak_up_sdk_client \\
        URL TOKEN PROJECT CLIENT SECONDS OUT [STEPS PAUSE]

Each run logs STEPS steps of ``loss``, ``acc`` and ``spike`` with explicit
steps, then finishes. Every point carries a millisecond timestamp chosen here:
the SDK stamps points with ``time.time()`` inside ``tracking.sdk.run``, so
this script hands that module a clock answering the stamp it records (the SDK
itself is unmodified). Values are exact in binary, so sums compare exactly.

- One run in ten (index 9, 19, ...) finishes ``failed``: one ``run_failed``
  notification each.
- One run in ten (index 4, 14, ...) sends ``spike`` above the threshold rule's
  value for SPIKE_POINTS steps, flushes (the batch that reaches the server
  ends beyond the threshold, so the rule fires), then comes back (it
  resolves). Those runs always finish ``finished``: a failure would resolve
  the threshold alert quietly.

OUT gets one JSON line per run once it is finished::

    {"kind": "run", "client": "sdk0", "name": "sdk0-r4", "id": 17, "status": "finished",
     "spike": true, "failed_at": null, "ended_at": 1764150000.1,
     "points": {"loss": [[step, value, timestamp_ms], ...], ...}, "nostep": []}

and ``{"kind": "done"}`` when the client stopped at its deadline.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from tracking import sdk

KEYS = ("loss", "acc")
SPIKE_KEY = "spike"
THRESHOLD = 100.0  # the soak's metric_threshold rule: spike > 100 for 3 points
SPIKE_AT, SPIKE_POINTS = 40, 5
FAIL_EVERY = 10
STEPS, PAUSE = 200, 0.01


class Clock:
    """Stands in for the ``time`` module in ``tracking.sdk.run``: ``time()`` answers ``stamp``."""

    def __init__(self) -> None:
        self.stamp: float | None = None

    def time(self) -> float:
        return time.time() if self.stamp is None else self.stamp

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


CLOCK = Clock()
importlib.import_module("tracking.sdk.run").time = CLOCK


def now_ms() -> int:
    return int(time.time() * 1000)


def value(index: int, k: int, step: int) -> float:
    return index + k / 8 + step / 1024  # exact in binary


def spike_value(step: int, spiking: bool) -> float:
    return (1000.0 if spiking else 1.0) + step / 1024


def one_run(
    url: str, token: str, project: str, client: str, index: int, steps: int, pause: float
) -> dict[str, Any]:
    name = f"{client}-r{index}"
    failing = index % FAIL_EVERY == FAIL_EVERY - 1
    spike = index % FAIL_EVERY == 4 and steps > SPIKE_AT + SPIKE_POINTS
    run = sdk.init(project=project, name=name, url=url, token=token, tags=["soak"])
    sent: dict[str, list[list]] = {key: [] for key in (*KEYS, SPIKE_KEY)}
    for step in range(steps):
        stamp = now_ms()
        spiking = spike and SPIKE_AT <= step < SPIKE_AT + SPIKE_POINTS
        values = {key: value(index, k, step) for k, key in enumerate(KEYS)}
        values[SPIKE_KEY] = spike_value(step, spiking)
        CLOCK.stamp = stamp / 1000
        try:
            run.log(values, step=step)
        finally:
            CLOCK.stamp = None
        for key, logged in values.items():
            sent[key].append([step, logged, stamp])
        if spike and step == SPIKE_AT + SPIKE_POINTS - 1:
            run.flush()  # the batch that reaches the server ends beyond the threshold
        time.sleep(pause)
    failed_at = time.time() if failing else None
    if failing:
        run.finish(status="failed", exit_code=1, error="SoakError: planned failure")
    else:
        run.finish(status="finished", exit_code=0)
    return {
        "kind": "run",
        "client": client,
        "name": name,
        "id": run.id,
        "status": "failed" if failing else "finished",
        "spike": spike,
        "failed_at": failed_at,
        "ended_at": time.time(),
        "points": sent,
        "nostep": [],
        "errors": [],
    }


def main(
    url: str,
    token: str,
    project: str,
    client: str,
    seconds: str,
    out: str,
    steps: str = str(STEPS),
    pause: str = str(PAUSE),
) -> None:
    deadline = time.monotonic() + float(seconds)
    index = 0
    with Path(out).open("a", encoding="utf-8") as report:
        while time.monotonic() < deadline:
            record = one_run(url, token, project, client, index, int(steps), float(pause))
            report.write(json.dumps(record) + "\n")
            report.flush()
            index += 1
        report.write(json.dumps({"kind": "done", "client": client, "runs": index}) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
