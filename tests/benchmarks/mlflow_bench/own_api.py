"""Labbook-only figures, through its own API, its websocket and its report renderer."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.benchmarks import ingest as lb
from tests.benchmarks.mlflow_bench.common import KEYS, REPO, Plan, say
from tests.benchmarks.mlflow_bench.servers import Target


def own_ingest(target: Target, plan: Plan, rep: int) -> float:
    """10,000-point batches over 10 keys; the clock runs during the requests only."""
    with target.api.client() as http:
        run_id = lb.create_run(http, f"own-{rep}")
        latencies = lb.post_batches(http, run_id, KEYS, 10_000, plan.own_batches)
    return plan.own_batches * 10_000 / sum(latencies)


def downsampled(target: Target, plan: Plan) -> float:
    path = f"/api/v1/runs/{target.runs['big']}/metrics/big?max_points=1000"
    check = lb.expect(at_most=1002)
    return lb.median_read(target.api, path, plan.downsampled_reads, check) * 1000


def live_delays(target: Target, plan: Plan) -> list[float]:
    """Seconds from posting one point to its ``run.points`` message on a subscribed socket."""
    from websockets.sync.client import connect

    url = target.uri.replace("http://", "ws://") + "/ws/live/"
    headers = {"Cookie": target.cookie}
    with (
        target.api.client() as http,
        connect(url, origin=target.uri, additional_headers=headers, proxy=None) as socket,
    ):
        run_id = lb.create_run(http, "live")
        arrivals = read_in_background(socket)
        socket.send(json.dumps({"subscribe": {"runs": [run_id]}}))
        wait_for(arrivals, lambda message: message.get("type") == "subscribed")
        return [live_delay(http, run_id, step, arrivals) for step in range(plan.live_samples)]


def read_in_background(socket: Any) -> queue.Queue:
    """Each message with the moment it arrived, so a slow main loop does not add to delays."""
    from websockets.exceptions import ConnectionClosed

    arrivals: queue.Queue = queue.Queue()

    def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            for message in socket:
                arrivals.put((time.perf_counter(), json.loads(message)))

    threading.Thread(target=read, daemon=True, name="websocket-reader").start()
    return arrivals


def wait_for(arrivals: queue.Queue, wanted: Callable[[dict], bool], timeout: float = 10) -> float:
    deadline = time.monotonic() + timeout
    while True:
        try:
            arrived, message = arrivals.get(timeout=max(deadline - time.monotonic(), 0.001))
        except queue.Empty:
            raise RuntimeError(f"no such websocket message within {timeout:.0f} s") from None
        if wanted(message):
            return arrived


def live_delay(http: Any, run_id: int, step: int, arrivals: queue.Queue) -> float:
    body = orjson.dumps({"points": [{"key": "live", "step": step, "value": step / 8}]})

    def carries_step(message: dict) -> bool:
        series = message.get("series", {}).get("live", {})
        return message.get("type") == "run.points" and step in series.get("steps", [])

    started = time.perf_counter()
    http.post(f"/api/v1/runs/{run_id}/metrics", content=body).raise_for_status()
    return wait_for(arrivals, carries_step) - started


REPORT_RENDER = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.benchmarks import report_render
report_render.POINTS = int(sys.argv[2])
sys.argv = ["report_render.py", *sys.argv[3:]]
report_render.main()
"""


def report_render(root: Path, plan: Plan, database_url: str | None) -> float:
    """report_render.py as it runs (own throwaway home, in-process render); its median, ms."""
    tmp = root / "report-render"
    tmp.mkdir(exist_ok=True)  # report_render's mkdtemp lands here, and goes with ``root``
    drop = ("DATABASE_URL", "REDIS_URL", "LABBOOK_HOME")
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env["TMPDIR"] = str(tmp)
    extra = ["--database-url", database_url] if database_url else []
    done = subprocess.run(
        [sys.executable, "-c", REPORT_RENDER, str(REPO), str(plan.report_points), *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    found = re.search(r"server time\s+median (\d+) ms, p95 (\d+) ms", done.stdout)
    if done.returncode or not found:
        raise RuntimeError(f"report_render.py failed ({done.returncode}):\n{done.stdout}")
    say(f"  report render: median {found[1]} ms, p95 {found[2]} ms")
    return float(found[1])
