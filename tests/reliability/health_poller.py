"""Poll ``/healthz`` from a process of its own; print the latencies as JSON.

    python -m tests.reliability.health_poller URL SECONDS INTERVAL

``worst_input.load`` runs it beside the hostile clients. In their process the
poller would wait for *their* interpreter lock (parsing megabytes of answers)
and time the client as much as the server; here it times the server alone.
"""

from __future__ import annotations

import json
import sys
import time

import httpx

CEILING = 600.0  # seconds: an answer slower than this is a frozen server, counted as failed


def poll(url: str, seconds: float, interval: float) -> dict[str, object]:
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=CEILING, trust_env=False) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                ok = client.get("/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            failures += not ok
            time.sleep(interval)
    return {"latencies": latencies, "failures": failures}


if __name__ == "__main__":
    url, seconds, interval = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(poll(url, seconds, interval)))
