"""What logging images costs a training loop, against a real server on loopback.

    python tests/benchmarks/sdk_media.py                  # 1,000 calls, 500 images
    python tests/benchmarks/sdk_media.py --calls 300 --images 200

(a) per-call overhead of ``run.log()`` with one metric, alone and with a
    256x256x3 uint8 array attached as ``sdk.Image`` (building the Image, which
    copies the array, is inside the clock: the training code pays for it);
    median and p95. The sender encodes the PNGs meanwhile, in the same process.
(b) upload throughput: one run logs N such images as fast as it can and
    finishes; wall time from the first ``log()`` to the end of ``finish()``,
    then the server's count and sizes are checked, so the rate is of images
    stored (PNG bytes as the server holds them), not images queued.

The server is uvicorn as ``manage.py up`` runs it, on a fresh SQLite home,
without request rate limits (they would measure the throttle instead).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.sdk_overhead import Figure, percentile, print_table  # noqa: E402
from tests.sdk.server import LabbookServer  # noqa: E402 - needs REPO on sys.path
from tracking import sdk  # noqa: E402

SIZE = (256, 256, 3)
UNLIMITED = {"INGEST_THROTTLE_RATE": "0", "API_THROTTLE_RATE": "0"}


@contextmanager
def running_server() -> Iterator[LabbookServer]:
    with tempfile.TemporaryDirectory(prefix="labbook-media-bench-") as home:
        os.environ["LABBOOK_SPOOL_DIR"] = str(Path(home) / "spool")
        server = LabbookServer(Path(home) / "home", env=UNLIMITED)
        try:
            server.start()
            yield server
        finally:
            server.stop()


def picture(seed: int) -> np.ndarray:
    """A photo-like 256x256 RGB image: smooth gradients plus a little noise (PNG ~ 100-150 kB)."""
    rows, cols = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
    noise = np.random.default_rng(seed).integers(0, 24, SIZE)
    base = np.stack([rows, cols, (rows + cols + seed) // 2], axis=-1)
    return ((base + noise) % 256).astype(np.uint8)


def time_calls(run: sdk.Run, calls: int, *, image: bool, first_step: int) -> list[int]:
    arrays = [picture(seed) for seed in range(8)]
    durations = [0] * calls
    clock = time.perf_counter_ns
    for index in range(calls):
        array = arrays[index % len(arrays)]
        started = clock()
        if image:
            run.log({"loss": 1.0, "sample": sdk.Image(array)}, step=first_step + index)
        else:
            run.log({"loss": 1.0}, step=first_step + index)
        durations[index] = clock() - started
    return sorted(durations)


def bench_overhead(server: LabbookServer, calls: int) -> list[Figure]:
    run = sdk.init(
        project="lab/media-bench",
        name="overhead",
        url=server.url,
        token=server.token,
        system_metrics=False,
    )
    plain = time_calls(run, calls, image=False, first_step=0)
    with_image = time_calls(run, calls, image=True, first_step=calls)
    run.finish()
    stored = server.get(f"/api/v1/runs/{run.id}/media")["media"]
    if [entry["count"] for entry in stored] != [calls]:
        raise SystemExit(f"the server holds {stored}, expected {calls} images")
    us = 1e-3
    return [
        Figure(f"log() 1 metric, median ({calls:,} calls)", f"{plain[calls // 2] * us:.1f} µs"),
        Figure("log() 1 metric, p95", f"{percentile(plain, 0.95) * us:.1f} µs"),
        Figure(
            "log() 1 metric + 256x256x3 Image, median",
            f"{with_image[calls // 2] * us:.1f} µs",
            "< 1 ms",
        ),
        Figure(
            "log() 1 metric + 256x256x3 Image, p95", f"{percentile(with_image, 0.95) * us:.1f} µs"
        ),
    ]


def bench_throughput(server: LabbookServer, images: int) -> list[Figure]:
    arrays = [picture(seed) for seed in range(images)]  # all differ: none is a duplicate
    started = time.perf_counter()
    run = sdk.init(
        project="lab/media-bench",
        name="throughput",
        url=server.url,
        token=server.token,
        system_metrics=False,
    )
    for step, array in enumerate(arrays):
        run.log({"sample": sdk.Image(array)}, step=step)
    logged = time.perf_counter() - started
    run.finish()
    wall = time.perf_counter() - started
    stored = server.get(f"/api/v1/runs/{run.id}/media/sample", limit=1000)["items"]
    if len(stored) != images:
        raise SystemExit(f"the server holds {len(stored)} images, expected {images}")
    megabytes = sum(item["size"] for item in stored) / 2**20
    return [
        Figure(f"upload: {images} images 256x256x3, wall", f"{wall:.2f} s"),
        Figure("upload: of which the log() loop", f"{logged:.2f} s"),
        Figure("upload: images stored per second", f"{images / wall:,.0f} images/s"),
        Figure(
            "upload: PNG stored per second",
            f"{megabytes / wall:.1f} MB/s ({megabytes / images * 1024:.0f} kB a PNG)",
        ),
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000, help="timed log() calls [1,000]")
    parser.add_argument("--images", type=int, default=500, help="images uploaded [500, max 1000]")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with running_server() as server:
        figures = bench_overhead(server, args.calls)
        figures += bench_throughput(server, min(args.images, 1000))
    print(f"\nPython {sys.version.split()[0]} on {os.cpu_count()} CPUs, SQLite server")
    print_table(figures)


if __name__ == "__main__":
    main()
