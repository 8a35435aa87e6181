"""What the console tee costs a training loop's print(), against a real server on loopback.

    python tests/benchmarks/sdk_console.py                 # 100,000 prints each way
    python tests/benchmarks/sdk_console.py --prints 20000

Each run prints N lines (``print(f"step {i} loss {x}")``, two writes a call) to
/dev/null, once with the tee off (``console=False``) and once on; every call is
timed with ``time.perf_counter_ns``. The median is what a print costs the loop;
the mean also carries the sender thread encoding and sending the lines
meanwhile (it competes for the interpreter lock). The run with the tee on is
then read back: every line must be on the server, once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.sdk_media import running_server  # noqa: E402
from tests.benchmarks.sdk_overhead import Figure, percentile, print_table  # noqa: E402
from tests.sdk.server import LabbookServer  # noqa: E402 - needs REPO on sys.path
from tracking import sdk  # noqa: E402


def time_prints(server: LabbookServer, prints: int, *, console: bool) -> tuple[list[int], int]:
    durations = [0] * prints
    clock = time.perf_counter_ns
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        run = sdk.init(
            project="lab/console-bench",
            name=f"console-{'on' if console else 'off'}",
            url=server.url,
            token=server.token,
            system_metrics=False,
            console=console,
        )
        for index in range(prints):
            started = clock()
            print(f"step {index} loss {0.123456}")
            durations[index] = clock() - started
        run.finish()
    assert run.id is not None
    return durations, run.id


def figures_for(durations: list[int], label: str) -> list[Figure]:
    ordered = sorted(durations)
    us = 1e-3
    mean = sum(durations) / len(durations)
    return [
        Figure(f"print(), tee {label}, median", f"{ordered[len(ordered) // 2] * us:.1f} µs"),
        Figure(f"print(), tee {label}, p99", f"{percentile(ordered, 0.99) * us:.1f} µs"),
        Figure(f"print(), tee {label}, mean", f"{mean * us:.1f} µs"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prints", type=int, default=100_000, help="timed prints [100,000]")
    prints = parser.parse_args().prints
    os.environ.pop("LABBOOK_CONSOLE", None)
    with running_server() as server:
        off, _ = time_prints(server, prints, console=False)
        on, run_id = time_prints(server, prints, console=True)
        total = server.get(f"/api/v1/runs/{run_id}/console", tail=1)["total"]
    if total < prints:
        raise SystemExit(f"the server holds {total} console lines, expected at least {prints}")
    print(f"\nPython {sys.version.split()[0]} on {os.cpu_count()} CPUs, SQLite server")
    print_table(figures_for(off, "off") + figures_for(on, "on"))


if __name__ == "__main__":
    main()
