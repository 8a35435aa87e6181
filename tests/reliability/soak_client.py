"""One SDK client of the soak test: runs back to back until the deadline, then a report.

    python -m tests.reliability.soak_client URL TOKEN PROJECT CLIENT SECONDS REPORT

Each run logs STEPS steps of every key (values that differ per run, key and
step), then finishes; every FAIL_EVERY-th run finishes ``failed``. The JSON
report lists, per run name, the status it ended with and the count and sum of
the values sent for each key: what the server must hold afterwards.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tracking import sdk

KEYS = ("loss", "acc", "lr")
STEPS = 300
PAUSE = 0.005  # seconds between steps: a training loop, not a firehose
FAIL_EVERY = 10  # one run in ten fails


def value(run: int, k: int, step: int) -> float:
    return run + k / 8 + step / 1024  # exact in binary: sums compare exactly


def one_run(url: str, token: str, project: str, name: str, index: int) -> dict[str, Any]:
    status = "failed" if index % FAIL_EVERY == FAIL_EVERY - 1 else "finished"
    run = sdk.init(project=project, name=name, url=url, token=token)
    for step in range(STEPS):
        run.log({key: value(index, k, step) for k, key in enumerate(KEYS)}, step=step)
        time.sleep(PAUSE)
    run.finish(status=status)
    sums = {key: sum(value(index, k, s) for s in range(STEPS)) for k, key in enumerate(KEYS)}
    return {"status": status, "counts": dict.fromkeys(KEYS, STEPS), "sums": sums}


def main(url: str, token: str, project: str, client: str, seconds: str, report: str) -> None:
    deadline = time.monotonic() + float(seconds)
    runs: dict[str, Any] = {}
    index = 0
    while time.monotonic() < deadline:
        name = f"c{client}-r{index}"
        runs[name] = one_run(url, token, project, name, index)
        index += 1
    Path(report).write_text(json.dumps(runs))


if __name__ == "__main__":
    main(*sys.argv[1:])
