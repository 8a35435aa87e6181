"""Soak of `manage.py up` itself, under a mixed load with faults injected on a schedule.

    python tests/benchmarks/soak_up.py --minutes 30                 # embedded default
    python tests/benchmarks/soak_up.py --minutes 30 --services      # PostgreSQL + Redis

Starts ``manage.py up`` on a throwaway LABBOOK_HOME (``--services``: also a
throwaway PostgreSQL database lb_soak_* and a private redis-server), drives it
with SDK and mlflow clients, alerts firing and resolving to a loopback
webhook receiver, beat ticking every second, and injects faults every cycle:
empty, truncated and garbage queue files (embedded only), SIGKILL of the
Celery worker, of beat and of the web server. Then checks that every point is
stored exactly once with its step, value and timestamp, every failed run is
notified exactly once and in order, and /healthz answered throughout except
web restarts of under 5 s. Prints progress while it runs, then the figures
and every violation; exits 1 when there is one. The work directory is kept
when something failed (``--keep``: always). See tests/reliability/soak_up.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> int:
    from tests.reliability.soak_up import ALL_FAULTS, SoakConfig, run_soak, server_of

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="load phase (default 30)")
    parser.add_argument(
        "--services", action="store_true", help="PostgreSQL + Redis instead of the embedded default"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres",
        help="--services: PostgreSQL server where the throwaway lb_soak_* database is created"
        " (default: $DATABASE_URL, else postgres://postgres@127.0.0.1:5432)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", ""),
        help="--services without redis-server on PATH: use DB 14 of this Redis",
    )
    parser.add_argument("--sdk-clients", type=int, default=4)
    parser.add_argument("--mlflow-clients", type=int, default=2)
    parser.add_argument(
        "--faults",
        default=",".join(ALL_FAULTS),
        help=f"comma-separated subset of {','.join(ALL_FAULTS)}, or 'none' (default: all)",
    )
    parser.add_argument(
        "--cycle", type=float, default=180.0, help="seconds per cycle of faults (default 180)"
    )
    parser.add_argument("--settle", type=float, default=300.0, help="settle ceiling in seconds")
    parser.add_argument(
        "--nostep-any-step",
        action="store_true",
        help="accept mlflow log_metric calls without a step at any step (each value and"
        " timestamp once), instead of at step 0 as MLflow stores them",
    )
    parser.add_argument("--workdir", type=Path, help="default: a fresh /tmp/lb-soak-*")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    faults = () if args.faults == "none" else tuple(f for f in args.faults.split(",") if f)
    unknown = set(faults) - set(ALL_FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")

    config = SoakConfig(
        seconds=args.minutes * 60,
        services=args.services,
        database_server=server_of(args.database_url),
        redis_url=args.redis_url,
        sdk_clients=args.sdk_clients,
        mlflow_clients=args.mlflow_clients,
        faults=faults,
        cycle_seconds=args.cycle,
        nostep_at_step_zero=not args.nostep_any_step,
        settle_timeout=args.settle,
        workdir=args.workdir,
        keep=args.keep,
        progress=lambda line: print(line, flush=True),
        progress_every=30.0 if args.minutes > 5 else 10.0,
    )
    result = run_soak(config)
    print(result.report(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
