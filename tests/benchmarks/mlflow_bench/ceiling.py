"""The mlflow client by itself, against a stub server that answers at once."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

from labbook import launcher
from tests.benchmarks import ingest as lb
from tests.benchmarks.mlflow_bench.client import metric_batch, use_token
from tests.benchmarks.mlflow_bench.common import STEPS, Plan, timed
from tests.benchmarks.mlflow_bench.processes import stop_tree
from tests.benchmarks.mlflow_bench.workloads import SEARCH, run_writers

STUB_SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

points = [{"key": "k3", "value": 0.5, "timestamp": 1, "step": s} for s in range(int(sys.argv[2]))]
HISTORY = json.dumps({"metrics": points}).encode()


def run(n):  # as mlflow server answers a run of the search workload
    run_id = f"{n:032x}"
    tags = {"mlflow.runName": f"s-{n}", "mlflow.user": "bench", "mlflow.source.type": "LOCAL"}
    return {
        "info": {"run_id": run_id, "run_uuid": run_id, "run_name": f"s-{n}",
                 "experiment_id": "1", "user_id": "bench", "status": "RUNNING",
                 "start_time": 1, "artifact_uri": f"mlflow-artifacts:/1/{run_id}/artifacts",
                 "lifecycle_stage": "active"},
        "data": {"metrics": [{"key": "acc", "value": 1 - n / 1000, "timestamp": 1, "step": 0}],
                 "params": [{"key": "seed", "value": str(n)}],
                 "tags": [{"key": k, "value": v} for k, v in tags.items()]},
        "inputs": {},
    }


SEARCH = json.dumps({"runs": [run(n) for n in range(int(sys.argv[3]))]}).encode()


class Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 65536

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"{}"
        if "get-history" in self.path:
            body = HISTORY
        elif "runs/search" in self.path:
            body = SEARCH
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Answer).serve_forever()
"""


@contextlib.contextmanager
def stub_server(history_points: int, search_runs: int) -> Iterator[str]:
    """A server that answers every MLflow call at once: what the client alone costs."""
    port = lb.free_port()
    command = [sys.executable, "-c", STUB_SERVER, str(port), str(history_points), str(search_runs)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        uri = f"http://127.0.0.1:{port}"
        status, body = launcher.wait_healthy(
            f"{uri}/health", timeout=30, give_up=lambda: process.poll() is not None
        )
        if status != 200:
            raise RuntimeError(f"the stub server did not start: {body}")
        yield uri
    finally:
        stop_tree(process, whole_group=True)


def client_alone(plan: Plan) -> dict[str, float]:
    """Workloads 1-5 against the stub, in the table's units: the best any server can show."""
    from mlflow import MlflowClient

    use_token(None)
    batches = [metric_batch(b * STEPS, 0) for b in range(plan.ingest_batches)]
    found = plan.search_runs // 2  # what the search workload's filter matches
    with stub_server(plan.small_points, found) as uri:
        client = MlflowClient(tracking_uri=uri)
        ingest, _ = timed(lambda: [client.log_batch("0", metrics=m) for m in batches])
        chatty, _ = timed(
            lambda: [client.log_metric("0", "c", 1.0, step=s) for s in range(plan.chatty_calls)]
        )
        writers = dict.fromkeys(range(plan.writers), "0")
        concurrent = run_writers(uri, None, writers, plan.writer_points // 1_000)
        history = median_seconds(lambda: client.get_metric_history("0", "k3"), plan.history_reads)
        search = median_seconds(lambda: client.search_runs(["1"], **SEARCH), plan.search_reads)
    return {
        "ingest": plan.ingest_batches * 1_000 / ingest,
        "chatty": plan.chatty_calls / chatty,
        "concurrent": concurrent,
        "history": history * 1000,
        "search": search * 1000,
    }


def median_seconds(action: Callable[[], Any], times: int) -> float:
    return statistics.median(timed(action)[0] for _ in range(times))


def print_ceiling(ceiling: dict[str, float], plan: Plan) -> None:
    print(
        "\nceiling: the same mlflow client code against a stub server that answers every call"
        " at once, as a ratio to MLflow's figure: no server can show a better ratio through"
        " this client on this machine. The client alone spends"
        f" {1_000_000 / ceiling['ingest']:.1f} ms on a 1,000-point log_batch,"
        f" {1000 / ceiling['chatty']:.2f} ms on a log_metric call,"
        f" {ceiling['history']:.0f} ms reading {plan.small_points:,} points and"
        f" {ceiling['search']:.1f} ms on a search answering {plan.search_runs // 2} runs;"
        f" {plan.writers} writer processes reach {ceiling['concurrent']:,.0f} points/s."
    )
