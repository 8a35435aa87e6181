"""Page weight benchmark: the bytes chromium moves to open chart pages, first and again.

    python tests/benchmarks/page_weight.py
    python tests/benchmarks/page_weight.py --plain          # static files not collected
    python tests/benchmarks/page_weight.py --after-expiry   # and a repeat 61 s later

Starts a real server (uvicorn, tests.sdk.server.LabbookServer) on a throwaway
LABBOOK_HOME whose static files are collected as `up` collects them (hashed
names, Brotli and gzip copies, cached a year); ``--plain`` leaves them
uncollected instead, as Labbook served them before 2026-12-06 (plain names,
uncompressed, cached 60 s). Seeds 10 finished runs logging 4 metrics of 1,000
steps each through the HTTP API, logs in with Debian's chromium
(/usr/bin/chromium, or LABBOOK_CHROMIUM) and, in one browser context, opens:

1. the run page of one run (4 charts), with an empty cache;
2. the same run page again (a new navigation, as following a link back);
3. the compare page of the 10 runs (4 charts of 10 lines), another chart page;
4. with ``--after-expiry``, the run page once more 61 s later, past the plain
   names' 60 s cache.

Each load waits until every chart is drawn (a 1440x3000 viewport, all in view)
and the network is idle. Bytes are chromium's own count of what crossed the
wire (DevTools ``Network.loadingFinished`` ``encodedDataLength``: headers and
the body as sent, compressed or not), by kind; the live websocket is left out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.chart_pages import EVERY_CHART_DRAWN  # noqa: E402
from tests.browser.conftest import CHROMIUM_ARGS, create_user, log_in  # noqa: E402
from tests.browser.support import Transfer, Transfers  # noqa: E402
from tests.sdk.server import LabbookServer  # noqa: E402

TEAM = "weight"
PROJECT = f"{TEAM}/charts"
RUNS = 10
KEYS = ("train/loss", "val/loss", "val/acc", "lr")
STEPS = 1_000
CHROMIUM = os.environ.get("LABBOOK_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1440, "height": 3000}  # every chart in view: all of them load
WAIT_MS = 60_000
LAUNCH_MS = 120_000
PLOTLY = "/static/plotly/"
SHORT_CACHE_S = 60  # WhiteNoise's max-age for plain names


# --- Seeding -------------------------------------------------------------------------------


def seed(server: LabbookServer, token: str) -> list[int]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120, trust_env=False) as api:
        ids = []
        for run in range(RUNS):
            answer = api.post("/api/v1/runs", json={"project": PROJECT, "name": f"run-{run}"})
            run_id = answer.raise_for_status().json()["id"]
            points = [
                {"key": key, "step": step, "value": (k + 1) / (step + 1) + run / 100}
                for k, key in enumerate(KEYS)
                for step in range(STEPS)
            ]
            api.post(f"/api/v1/runs/{run_id}/metrics", json={"points": points}).raise_for_status()
            api.patch(f"/api/v1/runs/{run_id}", json={"status": "finished"}).raise_for_status()
            ids.append(run_id)
    return ids


# --- Measuring -----------------------------------------------------------------------------


@dataclass
class Weight:
    name: str
    transfers: list[Transfer]

    def bytes(self, *parts: str, kind: str | None = None) -> int:
        return sum(
            t.bytes or 0
            for t in self.transfers
            if (kind is None or t.kind == kind) and (not parts or any(p in t.url for p in parts))
        )


def weigh(page: Page, transfers: Transfers, name: str, url: str) -> Weight:
    transfers.clear()
    page.goto(url, timeout=WAIT_MS)
    page.wait_for_function(EVERY_CHART_DRAWN, timeout=WAIT_MS)
    page.wait_for_load_state("networkidle", timeout=WAIT_MS)
    return Weight(name, [t for t in transfers.seen.values() if not t.url.startswith("ws")])


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=LAUNCH_MS
        )
        try:
            yield browser
        finally:
            browser.close()


def measure(server: LabbookServer, after_expiry: bool) -> list[Weight]:
    reader = create_user(server, "reader", team=TEAM)
    ids = seed(server, reader.token)
    run_page = f"{server.url}/{PROJECT}/runs/{ids[0]}"
    compare = f"{server.url}/{PROJECT}/compare?runs={','.join(map(str, ids))}"
    with chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        log_in(page, server, reader.username, reader.password)
        transfers = Transfers(page)
        weights = [
            weigh(page, transfers, "run page, first load (empty cache)", run_page),
            weigh(page, transfers, "run page again", run_page),
            weigh(page, transfers, f"compare page, {RUNS} runs (another chart page)", compare),
        ]
        if after_expiry:
            print(f"waiting {SHORT_CACHE_S + 1} s, past the plain names' cache...")
            page.wait_for_timeout((SHORT_CACHE_S + 1) * 1000)
            weights.append(weigh(page, transfers, "run page, 61 s later", run_page))
        context.close()
    return weights


# --- Reporting -----------------------------------------------------------------------------


def kilobytes(count: int) -> str:
    return f"{count / 1000:,.1f} kB"


def report(weights: list[Weight]) -> None:
    print(
        f"\n{'load':48}{'requests':>9}{'cached':>8}{'304':>5}{'page':>11}{'static':>12}"
        f"{'of it plotly.js':>17}{'API':>11}{'total':>12}"
    )
    for weight in weights:
        cached = sum(t.from_cache for t in weight.transfers)
        revalidated = sum(t.status == 304 for t in weight.transfers)
        print(
            f"{weight.name:48}{len(weight.transfers):>9}{cached:>8}{revalidated:>5}"
            f"{kilobytes(weight.bytes(kind='Document')):>11}"
            f"{kilobytes(weight.bytes('/static/')):>12}"
            f"{kilobytes(weight.bytes(PLOTLY)):>17}"
            f"{kilobytes(weight.bytes('/api/')):>11}"
            f"{kilobytes(weight.bytes()):>12}"
        )
    first = weights[0].transfers
    names = sorted(t.url.split("/static/", 1)[1] for t in first if "/static/" in t.url)
    print(f"\nstatic files of the first load: {', '.join(names)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--plain", action="store_true", help="leave the static files uncollected (the old way)"
    )
    parser.add_argument(
        "--after-expiry", action="store_true", help="add a repeat 61 s later (past 60 s caches)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="labbook-weight-") as folder:
        home = Path(folder)
        if args.plain:
            (home / "static").mkdir()  # an empty STATIC_ROOT: pages name the plain files
        with LabbookServer(home) as server:
            print(f"seeding {RUNS} runs x {len(KEYS)} metrics x {STEPS:,} steps...")
            report(measure(server, args.after_expiry))
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
