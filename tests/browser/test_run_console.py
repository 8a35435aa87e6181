"""The run page's Console card and its System charts in a real browser.

A run writes 1,200 console lines (some coloured, some on stderr, one with a cursor move and
a progress bar redrawn in place) and logs training and ``system/*`` metrics through the HTTP
API, as the SDK would. The page shows the console's tail with its colours as classes, reads
earlier lines and searches on request, offers the text as a download, and appends lines
written while it is open, staying at the bottom unless the reader scrolled up. The machine's
charts stand in their own section after the training ones, and the Summary lists their
values apart.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

PROJECT = "consoleteam/train"
LINES = 1_200
TAIL = 500  # workspace.run_pages.CONSOLE_TAIL
NEEDLE = "needle-marker"
SCREENSHOTS = Path(tempfile.gettempdir()) / "labbook-console-screens"  # looked at, never kept
GREEN, BOLD_RED, RESET = "\x1b[32m", "\x1b[1;31m", "\x1b[0m"
TRAINING = ["loss", "train/loss", "val/acc"]
SYSTEM = ["system/cpu_percent", "system/memory_percent", "system/gpu.0.utilization"]


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("consolia", team="consoleteam")


def text_of(number: int) -> tuple[str, str]:
    """Line ``number``'s stream and text: every 10th green, every 7th a bold red warning on
    stderr, one to search for, one with a cursor move and a redrawn progress bar."""
    if number == 777:
        return "stdout", f"found the {NEEDLE} here"
    if number == 1_001:
        return "stdout", "\x1b[2K\x1b[1Gprogress  10%\rprogress 100% \x1b[38;5;46mdone\x1b[0m"
    if number % 7 == 0:
        return "stderr", f"{BOLD_RED}warning{RESET}: line {number} is on stderr"
    if number % 10 == 0:
        return "stdout", f"{GREEN}epoch {number // 10}{RESET} loss=0.{number:04d}"
    return "stdout", f"step {number}\tplain text"


def lines(numbers: range) -> list[dict[str, Any]]:
    return [
        {"number": n, "stream": text_of(n)[0], "text": text_of(n)[1], "timestamp": 1.7e9 + n}
        for n in numbers
    ]


def write(live: LabbookServer, token: str, run_id: int, numbers: range) -> None:
    api(live, token, "POST", f"runs/{run_id}/console", lines=lines(numbers))


def log_metrics(live: LabbookServer, token: str, run_id: int) -> None:
    points = [
        {"key": key, "step": step, "value": (index + 1) * 10 + step % 7}
        for index, key in enumerate(TRAINING + SYSTEM)
        for step in range(0, 50)
    ]
    api(live, token, "POST", f"runs/{run_id}/metrics", points=points)


@pytest.fixture(scope="module")
def run_id(live: LabbookServer, owner: Any) -> int:
    run = api(live, owner.token, "POST", "runs", project=PROJECT, name="console-run")["id"]
    write(live, owner.token, run, range(LINES))
    log_metrics(live, owner.token, run)
    return int(run)


def box(page: Any) -> Any:
    return page.locator("[data-console-box]")


def shown(page: Any) -> Any:
    return page.locator("[data-console-lines] .console-line")


def at_bottom(page: Any) -> bool:
    return bool(box(page).evaluate("b => b.scrollHeight - b.scrollTop - b.clientHeight <= 8"))


def wait_at_bottom(page: Any) -> None:
    page.wait_for_function(
        "() => { const b = document.querySelector('[data-console-box]');"
        " return b.scrollHeight - b.scrollTop - b.clientHeight <= 8; }"
    )


def open_run(page: Any, live: LabbookServer, owner: Any, run: int) -> None:
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run}")
    expect(page.locator("[data-live-state]")).to_have_text("Live")


def shoot(page: Any, name: str, width: int, target: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": 900})
    page.locator(target).scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    page.locator(target).screenshot(path=str(SCREENSHOTS / f"{name}-{width}-card.png"))


def test_the_tail_shows_colours_and_stderr_and_reads_earlier_lines(watched, live, owner, run_id):
    page = watched
    open_run(page, live, owner, run_id)
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("[data-console-count]")).to_have_text("1,200 lines")
    expect(shown(page)).to_have_count(TAIL)
    expect(shown(page).first).to_have_attribute("data-number", str(LINES - TAIL))
    expect(shown(page).last).to_have_attribute("data-number", str(LINES - 1))
    expect(shown(page).last.locator(".console-n")).to_have_text(str(LINES))  # from 1, as the file
    wait_at_bottom(page)

    # Colours are spans with classes; the codes themselves are gone.
    epoch = page.locator('.console-line[data-number="1180"] .console-text')
    expect(epoch).to_have_text("epoch 118 loss=0.1180")
    expect(epoch.locator("span")).to_have_class("ansi-fg-2")
    warning = page.locator('.console-line[data-number="1197"]')
    expect(warning).to_have_class("console-line console-stderr")
    expect(warning.locator(".console-text span")).to_have_class("ansi-fg-1 ansi-bold")
    expect(warning.locator(".console-text")).to_have_text("warning: line 1197 is on stderr")
    weight = warning.locator(".console-text span").evaluate("s => getComputedStyle(s).fontWeight")
    assert weight == "700"
    assert shown(page).locator("[style]").count() == 0
    # A cursor move is dropped; a progress bar redrawn in place shows its last state; a
    # 256-colour code is drawn as the nearest of the 16.
    progress = page.locator('.console-line[data-number="1001"] .console-text')
    expect(progress).to_have_text("progress 100% done")
    expect(progress.locator("span")).to_have_class("ansi-fg-10")
    texts = "".join(shown(page).locator(".console-text").all_text_contents())
    assert "\x1b" not in texts and "[0m" not in texts

    # "Load earlier lines" twice reaches line 0, the view staying where it was.
    earlier = page.locator("[data-console-earlier]")
    expect(earlier).to_be_visible()
    box(page).evaluate("b => { b.scrollTop = 0; }")
    earlier.click()
    expect(shown(page)).to_have_count(2 * TAIL)
    expect(shown(page).first).to_have_attribute("data-number", str(LINES - 2 * TAIL))
    assert box(page).evaluate("b => b.scrollTop") > 0  # the lines read were put above
    earlier.click()
    expect(shown(page)).to_have_count(LINES)
    expect(shown(page).first).to_have_attribute("data-number", "0")
    expect(earlier).to_be_hidden()


def test_search_finds_a_line_and_the_download_is_plain_text(watched, live, owner, run_id):
    page = watched
    open_run(page, live, owner, run_id)
    expect(shown(page)).to_have_count(TAIL)

    search = page.locator("[data-console-search]")
    search.fill(NEEDLE.upper())  # any case
    expect(shown(page)).to_have_count(1)
    match = shown(page).first
    expect(match).to_have_attribute("data-number", "777")
    expect(match.locator(".console-n")).to_have_text("778")
    expect(match.locator("mark")).to_have_text(NEEDLE)
    expect(page.locator("[data-console-found]")).to_have_text(f"1 line holding “{NEEDLE.upper()}”")
    shoot(page, "console-search", 390, "#console")
    expect(page.locator("[data-console-earlier]")).to_be_hidden()

    search.fill("no such text anywhere")
    expect(page.locator(".console-empty")).to_have_text("No line holds “no such text anywhere”.")
    expect(shown(page)).to_have_count(0)

    # Many matches come a page at a time.
    search.fill("stderr")
    expect(shown(page)).to_have_count(170)  # every 7th of 1,200 but 777 and 1001
    expect(page.locator("[data-console-later]")).to_be_hidden()

    page.locator("[data-console-back]").click()
    expect(shown(page)).to_have_count(TAIL)
    expect(search).to_have_value("")
    expect(page.locator("[data-console-back]")).to_be_hidden()
    wait_at_bottom(page)

    href = page.locator("[data-console-download]").get_attribute("href")
    response = page.request.get(f"{live.url}{href}")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text()
    assert "\x1b" not in text
    rows = text.split("\n")[:-1]  # a line's own carriage returns stay, as written
    assert len(rows) == LINES
    assert rows[1180] == "epoch 118 loss=0.1180"
    assert rows[777] == f"found the {NEEDLE} here"


def test_new_lines_appear_live_and_the_box_follows_the_tail(watched, live, owner):
    page = watched
    run = api(live, owner.token, "POST", "runs", project=PROJECT, name="live-console")["id"]
    open_run(page, live, owner, run)
    expect(page.locator("#console")).to_be_hidden()  # no line yet

    write(live, owner.token, run, range(0, 600))
    expect(page.locator("#console")).to_be_visible()
    expect(shown(page).last).to_have_attribute("data-number", "599")
    wait_at_bottom(page)

    write(live, owner.token, run, range(600, 601))
    expect(shown(page).last).to_have_attribute("data-number", "600")
    wait_at_bottom(page)
    expect(page.locator("[data-console-count]")).to_have_text("601 lines")

    # Scrolled up, the reader stays where they are; a button says what arrived below.
    box(page).evaluate("b => { b.scrollTop = 0; }")
    page.wait_for_function("() => !window.Labbook.console.follow")
    write(live, owner.token, run, range(601, 603))
    jump = page.locator("[data-console-jump]")
    expect(jump).to_have_text("2 new lines ↓")
    expect(shown(page).last).to_have_attribute("data-number", "602")
    assert box(page).evaluate("b => b.scrollTop") == 0
    shoot(page, "console-jump", 1280, "#console")
    jump.click()
    expect(jump).to_be_hidden()
    wait_at_bottom(page)
    write(live, owner.token, run, range(603, 604))
    expect(shown(page).last).to_have_attribute("data-number", "603")
    wait_at_bottom(page)
    assert at_bottom(page)


def test_system_charts_stand_apart_and_the_page_fits_narrow_screens(watched, live, owner, run_id):
    page = watched
    open_run(page, live, owner, run_id)
    sections = page.locator(".chart-section")
    expect(sections.last).to_have_attribute("data-section", "system")
    system = page.locator('.chart-section[data-section="system"] .chart-card')
    expect(system).to_have_count(len(SYSTEM))
    keys = {card.get_attribute("data-key") for card in system.all()}
    assert keys == set(SYSTEM)
    elsewhere = '.chart-section:not([data-section="system"]) [data-key^="system/"]'
    assert page.locator(elsewhere).count() == 0

    summary = page.locator('section[aria-labelledby="summary-title"]')
    expect(summary.locator("#summary-title .muted")).to_have_text(str(len(TRAINING)))
    main_keys = summary.locator(":scope > table th").all_text_contents()
    assert main_keys == sorted(TRAINING)
    folded = summary.locator("[data-summary-system]")
    expect(folded.locator("summary")).to_have_text(f"System metrics ({len(SYSTEM)})")
    expect(folded.locator("th").first).to_be_hidden()  # folded until opened
    folded.locator("summary").click()
    labels = [key.removeprefix("system/") for key in sorted(SYSTEM)]
    assert folded.locator("th").all_text_contents() == labels
    assert folded.locator("td").first.get_attribute("data-summary-key") == "system/cpu_percent"

    expect(shown(page)).to_have_count(TAIL)
    for width in (1280, 390):
        shoot(page, "console", width, "#console")
        shoot(page, "system", width, '.chart-section[data-section="system"]')
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways page


ANSI_CASES = [
    # (text as written, [(text, classes)] drawn)
    ("\x1b[31mred\x1b[0m plain", [("red", "ansi-fg-1"), (" plain", "")]),
    (
        "\x1b[1;92;44mbold\x1b[22m thin\x1b[39;49m",
        [("bold", "ansi-fg-10 ansi-bg-4 ansi-bold"), (" thin", "ansi-fg-10 ansi-bg-4")],
    ),
    ("\x1b[38;2;250;10;10mtrue\x1b[m", [("true", "ansi-fg-9")]),
    ("\x1b[48;5;236mgrey", [("grey", "ansi-bg-0")]),
    ("\x1b[7minv", [("inv", "ansi-fg-inverse ansi-bg-inverse")]),
    (
        "\x1b]8;;https://x.test\x1b\\link\x1b]8;;\x1b\\ \x1b[2Ktext\x07",
        [("link", ""), (" ", ""), ("text", "")],
    ),
    ("<b>not html</b> & \x1b[4mu", [("<b>not html</b> & ", ""), ("u", "ansi-underline")]),
]


def test_ansi_codes_become_classes_and_text(watched, live, owner, run_id):
    page = watched
    open_run(page, live, owner, run_id)
    for text, drawn in ANSI_CASES:
        runs = page.evaluate("t => window.Labbook.ansiRuns(t).map(r => [r.text, r.classes])", text)
        assert [tuple(r) for r in runs] == drawn, text


def test_lines_past_the_cap_are_told(watched, live, owner, run_id):
    """The note as the API's totals would make it once a run wrote past its 20 MiB (the
    server's cap is its setting; the page reads it from its config)."""
    page = watched
    open_run(page, live, owner, run_id)
    expect(shown(page)).to_have_count(TAIL)
    note = page.locator("[data-console-dropped]")
    expect(note).to_be_hidden()
    page.evaluate(
        "() => window.Labbook.console.totals({total: 1200, bytes: 20971000, dropped: 4321})"
    )
    expect(note).to_have_text(
        "4,321 lines past the 20 MiB cap were not kept; the console holds the first 20.0 MiB."
    )
    page.locator("#console").screenshot(path=str(SCREENSHOTS / "console-dropped-1280.png"))
