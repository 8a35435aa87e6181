"""The worst inputs we know from 4 clients while /healthz is polled, on the embedded default.

    python tests/benchmarks/worst_input.py --seconds 120

Starts uvicorn on a throwaway LABBOOK_HOME as ``up`` runs it, seeds it (1M
points in 20 runs, 60-character names, the largest report the limits allow,
pathological Markdown at the size limits) and sends the requests of
``tests/reliability/worst_input.py`` from ``--clients`` threads. Prints the
/healthz latencies and, per kind of request, how many were answered with which
status and the slowest. ``tests/security/test_worst_input_load.py`` is the
30-second form that CI runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="load phase (default 120)")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lb-worst-"))
    os.environ.update(DJANGO_SETTINGS_MODULE="labbook.settings", LABBOOK_HOME=str(work / "me"))
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from tests.reliability import worst_input
    from tests.sdk.server import LabbookServer

    worst_input.CLIENTS = args.clients
    with LabbookServer(work / "home") as server:
        seeded = worst_input.seed(server)
        print(f"load: {args.clients} clients for {args.seconds:.0f} s", flush=True)
        outcome = worst_input.load(server, seeded, seconds=args.seconds)
    print(outcome.summary())
    return 1 if outcome.server_errors() or outcome.health_failures else 0


if __name__ == "__main__":
    sys.exit(main())
