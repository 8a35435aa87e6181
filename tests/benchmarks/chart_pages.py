"""Chart page benchmark: how soon chromium has drawn the charts of a big compare and run page.

    python tests/benchmarks/chart_pages.py                  # SQLite (embedded default)
    python tests/benchmarks/chart_pages.py --repeats 10
    python tests/benchmarks/chart_pages.py --database-url postgres://postgres@127.0.0.1:5432/postgres

Starts a real server (uvicorn, tests.sdk.server.LabbookServer) on a throwaway
LABBOOK_HOME (and, with --database-url, a throwaway PostgreSQL database,
dropped at the end), seeds it through the HTTP API with 200 runs logging 4
metrics of 1,000 steps each and one run logging 50 metrics of 1,000 steps,
then opens two pages in Debian's chromium (/usr/bin/chromium, or
LABBOOK_CHROMIUM) with Playwright, logged in as a member of the project's team:

- the compare page of the 200 runs (4 charts of 200 lines each);
- the run page of the 50-metric run (50 charts).

Charts load lazily (each card fetches its lines from /api/v1/metrics/ when it
comes within 400 px of the viewport), so each page is timed three ways, from
navigation start (``performance.now()`` in the page) until the charts are
drawn — a card has ``data-traces`` and its plot holds Plotly's ``.main-svg``:

- first screen: a 1440x900 viewport, the charts in view without scrolling
  ("no chart in view" when the page shows none there);
- every chart, scrolled: the same viewport, each card scrolled into view in
  turn, as a reader would, the next only once the last is drawn;
- every chart, tall viewport: 1440 x the page's height, every card in view.

Every load is a fresh browser context (cold cache, no stored chart settings),
repeated --repeats times (default 5); the table shows median / max in ms, the
charts, runs and points drawn (the cards' ``data-points``) and the requests the
page made to the histories API while drawing every chart: one per chart, plus
a catch-up read (``step_min``) per chart already drawn when the live socket
connects (the runs are all running). Problems seen on the way (failed
requests, 4xx/5xx, page errors, the server log's lines) follow the table.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.ingest import throwaway_database  # noqa: E402
from tests.browser.conftest import CHROMIUM_ARGS, log_in  # noqa: E402
from tests.sdk.server import LabbookServer, manage  # noqa: E402

TEAM = "bench"
PROJECT = f"{TEAM}/charts"
USERNAME = "reader"
PASSWORD = "reader-correct-horse-battery"
RUNS = 200
SWEEP_KEYS = ("train/loss", "val/loss", "val/acc", "lr")
MANY_KEYS = tuple(f"metric/{k:02d}" for k in range(50))
STEPS = 1_000
BATCH = 10_000  # points per request, the API's limit
HISTORIES = "/api/v1/metrics/"
CHROMIUM = os.environ.get("LABBOOK_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1440, "height": 900}
WAIT_MS = 60_000  # a ceiling: only a chart that never draws waits this long
LAUNCH_MS = 120_000


# --- Seeding through the API ---------------------------------------------------------------


def call(client: httpx.Client, method: str, path: str, body: dict[str, Any]) -> Any:
    response = client.request(method, f"/api/v1/{path}", json=body)
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
    return response.json()


def value(key: str, run: int, step: int) -> float:
    """A plausible ``key`` at ``step`` of the ``run``-th run: decaying losses, a cosine lr."""
    if key == "lr":
        return 1e-3 * (1 + run / RUNS) * (1 + math.cos(math.pi * step / STEPS)) / 2
    decay = math.exp(-step / (120 + run))
    noise = 0.03 * math.sin(step * 0.37 + run) * math.cos(step * 0.011 * (key.count("/") + 1))
    level = 0.95 - 0.8 * decay if key == "val/acc" else 0.1 + 2 * decay
    return level + noise


def log_metrics(client: httpx.Client, run_id: int, keys: tuple[str, ...], run: int) -> None:
    points = [{"key": k, "step": s, "value": value(k, run, s)} for k in keys for s in range(STEPS)]
    for start in range(0, len(points), BATCH):
        call(client, "POST", f"runs/{run_id}/metrics", {"points": points[start : start + BATCH]})


def new_run(client: httpx.Client, name: str, config: dict[str, Any]) -> int:
    return call(client, "POST", "runs", {"project": PROJECT, "name": name, "config": config})["id"]


def seed(client: httpx.Client) -> tuple[list[int], int]:
    """The sweep's run ids and the id of the run with 50 metrics."""
    call(client, "POST", "projects", {"team": TEAM, "name": PROJECT.split("/")[1]})
    started, ids = time.perf_counter(), []
    for i in range(RUNS):
        ids.append(new_run(client, f"sweep-{i:03d}", {"lr": 1e-3 * (1 + i / RUNS), "seed": i}))
        log_metrics(client, ids[-1], SWEEP_KEYS, i)
        if (i + 1) % 20 == 0:
            print(f"  seeded {i + 1}/{RUNS} runs ({time.perf_counter() - started:.0f} s)")
    detailed = new_run(client, "fifty-metrics", {"seed": 0})
    log_metrics(client, detailed, MANY_KEYS, 0)
    print(f"  seeded the 50-metric run ({time.perf_counter() - started:.0f} s)")
    return ids, detailed


def create_reader(server: LabbookServer) -> str:
    """A member of TEAM with PASSWORD (createtoken makes the team); answers its API token."""
    token = manage(server.home, "createtoken", USERNAME, "--team", TEAM, env=server.env)
    code = (
        "from django.contrib.auth import get_user_model\n"
        f"user = get_user_model().objects.get(username={USERNAME!r})\n"
        f"user.set_password({PASSWORD!r})\n"
        "user.save(update_fields=['password'])\n"
    )
    manage(server.home, "shell", "--no-imports", "-c", code, env=server.env)
    return token.strip()


def api_client(server: LabbookServer, token: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=120, trust_env=False)


# --- In the page ---------------------------------------------------------------------------

HELPERS = """
  const cards = [...document.querySelectorAll("article.chart-card")];
  const drawn = (card) =>
    card.hasAttribute("data-traces") &&
    card.querySelector("div.plot[data-plot] .main-svg") !== null;
  const inView = (card) => {
    const box = card.getBoundingClientRect();
    return box.height > 0 && box.bottom > 0 && box.top < window.innerHeight;
  };
"""

# Function strings, never expressions: the page's Content-Security-Policy forbids eval.
FIRST_SCREEN_DRAWN = f"""() => {{{HELPERS}
  return cards.filter(inView).every(drawn) && performance.now(); // none in view: at once
}}"""

EVERY_CHART_DRAWN = f"""() => {{{HELPERS}
  return cards.length > 0 && cards.every(drawn) && performance.now();
}}"""

SCROLL_THROUGH = f"""async (timeout) => {{{HELPERS}
  const drawnSoon = (card) => new Promise((resolve, reject) => {{
    const deadline = performance.now() + timeout;
    const check = () => {{
      if (drawn(card)) resolve();
      else if (performance.now() > deadline) reject(new Error("never drawn: " + card.dataset.key));
      else requestAnimationFrame(check);
    }};
    check();
  }});
  for (const card of cards) {{
    card.scrollIntoView({{ block: "nearest", behavior: "instant" }});
    await drawnSoon(card);
  }}
  return performance.now();
}}"""

WHAT_IS_DRAWN = f"""() => {{{HELPERS}
  const config = JSON.parse(document.getElementById("charts-config").textContent);
  return {{
    charts: cards.length,
    inView: cards.filter(inView).length,
    runs: config.runs.length,
    points: cards.filter(drawn).reduce((sum, card) => sum + Number(card.dataset.points), 0),
    height: document.documentElement.scrollHeight,
    chartsTop: Math.min(...cards.map((card) => card.getBoundingClientRect().top + window.scrollY)),
    undrawn: cards.filter((card) => !drawn(card)).map(
      (card) => card.dataset.key + ": " + JSON.stringify(card.innerText.slice(0, 80))),
  }};
}}"""


# --- Measuring -----------------------------------------------------------------------------


@dataclass
class Traffic:
    """What a page asked the server: reads of the histories API, and what went wrong."""

    histories: int = 0
    catch_ups: int = 0  # reads with step_min: what the live socket missed, once it connects
    problems: list[str] = field(default_factory=list)


@dataclass
class Load:
    ms: float
    drawn: dict[str, Any]  # WHAT_IS_DRAWN once the charts waited for are drawn
    traffic: Traffic


def watch(page: Page) -> Traffic:
    traffic = Traffic()

    def request(request: Any) -> None:
        if HISTORIES in request.url:
            traffic.histories += 1
            traffic.catch_ups += "step_min=" in request.url

    def response(response: Any) -> None:
        if response.status >= 400:
            traffic.problems.append(f"{response.status} {response.request.method} {response.url}")

    page.on("request", request)
    page.on("response", response)
    page.on("requestfailed", lambda r: traffic.problems.append(f"failed {r.url}: {r.failure}"))
    page.on("pageerror", lambda error: traffic.problems.append(f"page error: {error}"))
    page.on(
        "console", lambda m: m.type == "error" and traffic.problems.append(f"console: {m.text}")
    )
    return traffic


def first_screen(page: Page) -> float:
    return page.wait_for_function(FIRST_SCREEN_DRAWN, timeout=WAIT_MS).json_value()


def every_chart(page: Page) -> float:
    return page.wait_for_function(EVERY_CHART_DRAWN, timeout=WAIT_MS).json_value()


def scrolled_through(page: Page) -> float:
    return page.evaluate(SCROLL_THROUGH, WAIT_MS)


Wait = Callable[[Page], float]


def load(browser: Browser, state: Any, url: str, viewport: dict[str, int], wait: Wait) -> Load:
    """``url`` in a fresh context, timed by ``wait``; fails naming the charts never drawn."""
    context = browser.new_context(viewport=viewport, storage_state=state)
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        traffic = watch(page)
        page.goto(url, timeout=WAIT_MS)
        try:
            ms = wait(page)
        except PlaywrightError as error:
            undrawn = page.evaluate(WHAT_IS_DRAWN)["undrawn"]
            raise RuntimeError(
                f"{url}: {error}\nnot drawn: {undrawn}\n{traffic.problems}"
            ) from None
        return Load(ms, page.evaluate(WHAT_IS_DRAWN), traffic)
    finally:
        context.close()


def repeat(times: int, measure: Callable[[], Load]) -> list[Load]:
    return [measure() for _ in range(times)]


@dataclass
class Result:
    name: str
    first: list[Load]
    scrolled: list[Load]
    tall: list[Load]


def measure_page(browser: Browser, state: Any, name: str, url: str, repeats: int) -> Result:
    def timed(viewport: dict[str, int], wait: Wait) -> list[Load]:
        return repeat(repeats, lambda: load(browser, state, url, viewport, wait))

    first = timed(VIEWPORT, first_screen)
    scrolled = timed(VIEWPORT, scrolled_through)
    tall = {"width": VIEWPORT["width"], "height": max(load.drawn["height"] for load in first)}
    return Result(name, first, scrolled, timed(tall, every_chart))


def logged_in_state(browser: Browser, server: LabbookServer) -> Any:
    """The cookies of a session of the reader, for every fresh context to start from."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        log_in(context.new_page(), server, USERNAME, PASSWORD)
        return context.storage_state()
    finally:
        context.close()


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=LAUNCH_MS
        )
        try:
            yield browser
        finally:
            browser.close()


# --- Reporting -----------------------------------------------------------------------------

COLUMNS = (
    f"{'page':34}{'charts':>7}{'runs':>6}{'points':>10}{'requests':>10}"
    f"  {'first screen ms (median/max)':30}{'every chart, scrolled ms':26}"
    "every chart, tall viewport ms"
)


def timing(loads: list[Load]) -> str:
    times = [load.ms for load in loads]
    return f"{statistics.median(times):,.0f} / {max(times):,.0f}"


def first_screen_timing(loads: list[Load]) -> str:
    """Nothing to wait for when the first screen shows no chart: says so instead."""
    return timing(loads) if loads[-1].drawn["inView"] else "no chart in view"


def spread(values: list[int]) -> str:
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"


def row(result: Result) -> str:
    drawn = result.tall[-1].drawn
    requests = spread([load.traffic.histories for load in (*result.scrolled, *result.tall)])
    return (
        f"{result.name:34}{drawn['charts']:>7}{drawn['runs']:>6}{drawn['points']:>10,}"
        f"{requests:>10}  {first_screen_timing(result.first):30}{timing(result.scrolled):26}"
        f"{timing(result.tall)}"
    )


def notes(result: Result) -> str:
    first, tall = result.first[-1].drawn, result.tall[-1].drawn
    modes = {"first screen": result.first, "scrolled": result.scrolled, "tall": result.tall}
    reads = {mode: [load.traffic.histories for load in loads] for mode, loads in modes.items()}
    catch_ups = {mode: [load.traffic.catch_ups for load in loads] for mode, loads in modes.items()}
    return (
        f"{result.name}:\n"
        f"  first screen: {first['inView']} of {first['charts']} charts in view "
        f"(the first card starts {first['chartsTop']:.0f} px down); tall viewport "
        f"{VIEWPORT['width']}x{first['height']}: {tall['inView']} of {tall['charts']} in view\n"
        f"  histories reads, each load: {reads}\n"
        f"    of which catch-up reads (step_min=, when the live socket connects): {catch_ups}"
    )


def problems(results: list[Result]) -> list[str]:
    """Each problem any load saw, with how many loads saw it."""
    seen = Counter(
        f"{result.name}: {problem}"
        for result in results
        for load in (*result.first, *result.scrolled, *result.tall)
        for problem in set(load.traffic.problems)
    )
    return [f"{count} x {problem}" for problem, count in seen.items()]


def report(results: list[Result]) -> None:
    print(f"\n{COLUMNS}")
    for result in results:
        print(row(result))
    print()
    for result in results:
        print(notes(result))
    found = problems(results)
    print("\nproblems in the browser:", *(found or ["none"]), sep="\n  ")


def print_server_log(server: LabbookServer) -> None:
    """Its first lines: the log goes with the throwaway home."""
    lines = [line for line in server.output().splitlines() if line.strip()]
    print(f"server log (LOG_LEVEL=WARNING): {len(lines)} lines", *lines[:200], sep="\n  ")


# --- Main ----------------------------------------------------------------------------------


def benchmark(server: LabbookServer, repeats: int) -> None:
    with api_client(server, create_reader(server)) as client:
        print(
            f"seeding {RUNS} runs x {len(SWEEP_KEYS)} metrics and 1 run x {len(MANY_KEYS)} "
            f"metrics, {STEPS:,} steps each..."
        )
        sweep, detailed = seed(client)
    pages = {
        f"compare, {RUNS} runs x {len(SWEEP_KEYS)} metrics": (
            f"{server.url}/{PROJECT}/compare?runs={','.join(map(str, sweep))}"
        ),
        f"run page, {len(MANY_KEYS)} charts": f"{server.url}/{PROJECT}/runs/{detailed}",
    }
    try:
        with chromium() as browser:
            state = logged_in_state(browser, server)
            results = []
            for name, url in pages.items():
                print(f"measuring {name} ({repeats} loads each way)...")
                results.append(measure_page(browser, state, name, url, repeats))
        report(results)
    finally:
        print_server_log(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="loads of each page, each way")
    parser.add_argument("--database-url", help="PostgreSQL server to create a throwaway db on")
    args = parser.parse_args()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="labbook-charts-")))
        env: dict[str, str] = {}
        if args.database_url:
            env["DATABASE_URL"] = stack.enter_context(throwaway_database(args.database_url))
        server = stack.enter_context(LabbookServer(home, env=env))
        benchmark(server, args.repeats)
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
