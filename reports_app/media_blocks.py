"""Report blocks of what runs log beside their numbers: images, tables, histograms, console lines.

Fenced like the other Labbook blocks (``reports_app.blocks`` lists their kinds;
docs/reports.md documents every option)::

    ```media
    runs: [12, 15]          # up to MAX_RUNS runs side by side
    key: samples
    step: latest            # or a step: 300
    max_images: 4           # per run
    caption: true
    ```

    ```table
    run: 12
    key: predictions
    step: latest
    max_rows: 20
    columns: [id, label]    # optional: a subset, in this order
    ```

    ```histogram
    runs: [12, 15]
    key: grad/w1            # a heatmap per run: bins over steps
    ```

    ```logs
    run: 12
    tail: 50                # or lines: [100, 180]; search: text (alone or with either)
    ```

Options are checked with the helpers of ``blocks`` and a wrong one is an error box
naming it. Every block may say ``live: false``: the items (images, the table), the
steps (histograms) or the line numbers (logs) it showed when the report was saved
are pinned in the revision's ``frozen`` data, and it shows exactly those.

Drawing costs a fixed number of queries per page whatever the number of blocks
(the newest steps of every block in one aggregate, the items in one query per
kind), and a page's blocks share budgets (``PAGE_*``): past one, a block is a
note box instead. An image is never inlined into the page: a member's page
loads it from ``/api/v1/media/<id>``; a public render (a share link, the offline
export) writes ``src="labbook-media:<id>"`` and its caller fills in a source:
the share link's own media URL, which serves only the images the report shows
(``Rendered.media``), or a ``data:`` URI (``inline_images``).
"""

from __future__ import annotations

import base64
import functools
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db.models import Count, Max, Min, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from reports_app import blocks
from reports_app.blocks import BlockError, RunSelector
from tracking import console, media
from tracking.models import ConsoleLine, MediaItem, MediaKind, Run

logger = logging.getLogger(__name__)

KINDS = blocks.MEDIA_KINDS
MAX_RUNS = 8  # media and histogram blocks: runs side by side
DEFAULT_MAX_IMAGES = 4
MAX_MAX_IMAGES = 16
DEFAULT_MAX_ROWS = 20
MAX_MAX_ROWS = 200
DEFAULT_TAIL = 50
MAX_LOG_LINES = 500  # a logs block's tail, or the span of its lines
MAX_SEARCH = console.MAX_SEARCH
SHOWN_LINE_CHARS = 2_000  # of one console line; longer ones end in "…"
HISTOGRAM_STEPS = 60  # columns of a heatmap: steps picked evenly
HISTOGRAM_BINS = 48  # rows of a heatmap: every step's bins spread over these
# What the media blocks of one page may cost together; past a budget a block is a note box.
PAGE_IMAGES = 200  # images one page loads
PAGE_TABLE_BYTES = 16_000_000  # table files read from storage to draw one page
TABLE_MAX_BYTES = 4_000_000  # one table file; a larger one is an error box
PAGE_LOG_LINES = 5_000  # console lines on one page
# The offline export inlines images as data: URIs up to this many bytes of image files in
# all; the images past it are a note naming the run, key and step instead.
EXPORT_IMAGE_BYTES = 20_000_000
SHARED_SRC = "labbook-media:"  # what a public render writes for an image's source
_SHARED_IMG = re.compile(r'<img class="report-media-img"[^>]*\bsrc="labbook-media:(\d+)"[^>]*>')


# --- Parsing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaBlock:
    runs: RunSelector
    key: str
    step: int | None = None  # None: each run's newest step of the key
    max_images: int = DEFAULT_MAX_IMAGES
    caption: bool = True
    live: bool = True
    kind: str = field(default="media", init=False)


@dataclass(frozen=True)
class TableBlock:
    runs: RunSelector  # one run
    key: str
    step: int | None = None
    max_rows: int = DEFAULT_MAX_ROWS
    columns: tuple[str, ...] = ()
    live: bool = True
    kind: str = field(default="table", init=False)


@dataclass(frozen=True)
class HistogramBlock:
    runs: RunSelector
    key: str
    title: str = ""
    live: bool = True
    kind: str = field(default="histogram", init=False)


@dataclass(frozen=True)
class LogsBlock:
    runs: RunSelector  # one run
    start: int | None = None  # lines: [start, end]
    end: int | None = None
    tail: int | None = None
    search: str = ""
    live: bool = True
    kind: str = field(default="logs", init=False)


MediaKindBlock = MediaBlock | TableBlock | HistogramBlock | LogsBlock
TYPES = (MediaBlock, TableBlock, HistogramBlock, LogsBlock)


def parse(kind: str, text: str) -> MediaKindBlock:
    """The block of ``kind`` (one of ``KINDS``) described by ``text``; BlockError names what is
    wrong."""
    options = blocks._load(text)
    parsers: dict[str, Callable[[dict[str, Any]], MediaKindBlock]] = {
        "media": _media,
        "table": _table,
        "histogram": _histogram,
        "logs": _logs,
    }
    return parsers[kind](options)


def _media(options: dict[str, Any]) -> MediaBlock:
    allowed = {"runs", "key", "step", "max_images", "caption", "live"}
    blocks._check_keys(options, allowed, "media")
    return MediaBlock(
        runs=blocks.selector(options.get("runs"), most=MAX_RUNS, limit=MAX_RUNS),
        key=_key(options),
        step=_step(options),
        max_images=_whole(options, "max_images", DEFAULT_MAX_IMAGES, 1, MAX_MAX_IMAGES),
        caption=blocks._bool(options.get("caption", True), "caption"),
        live=blocks._bool(options.get("live", True), "live"),
    )


def _table(options: dict[str, Any]) -> TableBlock:
    allowed = {"run", "key", "step", "max_rows", "columns", "live"}
    blocks._check_keys(options, allowed, "table")
    return TableBlock(
        runs=_one_run(options),
        key=_key(options),
        step=_step(options),
        max_rows=_whole(options, "max_rows", DEFAULT_MAX_ROWS, 1, MAX_MAX_ROWS),
        columns=blocks._strings(options.get("columns"), "columns", most=media.TABLE_MAX_COLUMNS),
        live=blocks._bool(options.get("live", True), "live"),
    )


def _histogram(options: dict[str, Any]) -> HistogramBlock:
    blocks._check_keys(options, {"runs", "key", "title", "live"}, "histogram")
    return HistogramBlock(
        runs=blocks.selector(options.get("runs"), most=MAX_RUNS, limit=MAX_RUNS),
        key=_key(options),
        title=blocks._text(options.get("title", ""), "title", 200),
        live=blocks._bool(options.get("live", True), "live"),
    )


def _logs(options: dict[str, Any]) -> LogsBlock:
    blocks._check_keys(options, {"run", "lines", "tail", "search", "live"}, "logs")
    if "lines" in options and "tail" in options:
        raise BlockError("Give `lines` or `tail`, not both.")
    start = end = tail = None
    if "lines" in options:
        start, end = _span(options["lines"])
    else:
        tail = _whole(options, "tail", DEFAULT_TAIL, 1, MAX_LOG_LINES)
    return LogsBlock(
        runs=_one_run(options),
        start=start,
        end=end,
        tail=tail,
        search=blocks._text(options.get("search", ""), "search", MAX_SEARCH),
        live=blocks._bool(options.get("live", True), "live"),
    )


def _one_run(options: dict[str, Any]) -> RunSelector:
    value = options.get("run")
    if value is None:
        raise BlockError("Say which run: `run: 12`.")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise BlockError(f"`run` is one run id, a positive whole number, not `{_shown(value)}`.")
    return RunSelector(ids=(value,))


def _key(options: dict[str, Any]) -> str:
    key = blocks._text(options.get("key"), "key", 250)
    if not key:
        raise BlockError("`key` is required: the key the run logged under.")
    return key


def _step(options: dict[str, Any]) -> int | None:
    value = options.get("step", "latest")
    if value == "latest":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= media.MAX_STEP:
        raise BlockError(
            f"`step` must be `latest` or a whole number from 0, not `{_shown(value)}`."
        )
    return value


def _whole(options: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    return int(blocks._number(options.get(name, default), name, low, high, integer=True))


def _span(value: Any) -> tuple[int, int]:
    """``lines: [start, end]``: line numbers as the run page shows them, both included."""
    ok = isinstance(value, list) and len(value) == 2
    ok = ok and all(isinstance(n, int) and not isinstance(n, bool) for n in value)
    if not ok or not 0 <= value[0] <= value[1] <= console.MAX_NUMBER:
        raise BlockError("`lines` must be `[start, end]`: two line numbers, start <= end.")
    if value[1] - value[0] + 1 > MAX_LOG_LINES:
        raise BlockError(f"`lines` spans at most {MAX_LOG_LINES} lines.")
    return value[0], value[1]


def _shown(value: Any) -> str:
    return blocks._shown(value)


# --- Drawing ----------------------------------------------------------------------------------


@dataclass
class Placed:
    """A parsed block of the page whose runs are resolved: what ``draw`` works on."""

    index: int
    block: MediaKindBlock
    runs: list[Run]
    public: bool = False


@dataclass
class Drawn:
    """The page's media blocks: HTML (or an error) per block index, histogram figures, the
    images shown (what a share link may serve) and the pins of ``live: false`` blocks."""

    html: dict[int, str] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    left_out: set[int] = field(default_factory=set)
    figures: dict[int, dict[str, Any]] = field(default_factory=dict)
    images: set[int] = field(default_factory=set)
    pins: dict[int, dict[str, Any]] = field(default_factory=dict)
    # A run's heatmap by (run, key, steps): blocks of the same histograms compute it once.
    heatmaps: dict[tuple, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Budget:
    """What the page's blocks may still show; read when a page is drawn."""

    images: int = field(default_factory=lambda: PAGE_IMAGES)
    table_bytes: int = field(default_factory=lambda: PAGE_TABLE_BYTES)
    log_lines: int = field(default_factory=lambda: PAGE_LOG_LINES)


def draw(placed: list[Placed], frozen: dict[str, Any]) -> Drawn:
    """Every media block of a page, in page order, within the page's budgets."""
    drawn, budget = Drawn(), _Budget()
    pinned = {p.index: _pins(p, frozen) for p in placed}
    newest = _newest_steps([p for p in placed if pinned[p.index] is None])
    images = _images([p for p in placed if isinstance(p.block, MediaBlock)], newest, pinned)
    tables = _table_items([p for p in placed if isinstance(p.block, TableBlock)], newest, pinned)
    histograms = _histogram_rows(
        [p for p in placed if isinstance(p.block, HistogramBlock)], newest, pinned
    )
    for p in placed:
        try:
            if isinstance(p.block, MediaBlock):
                _draw_media(p, images.get(p.index, {}), newest, drawn, budget)
            elif isinstance(p.block, TableBlock):
                _draw_table(p, tables.get(p.index), drawn, budget)
            elif isinstance(p.block, HistogramBlock):
                _draw_histogram(p, histograms.get(p.index, {}), drawn)
            else:
                _draw_logs(p, pinned[p.index], drawn, budget)
        except BlockError as error:
            drawn.errors[p.index] = error.message
            continue
        if not p.block.live and p.index not in drawn.left_out:
            drawn.pins.setdefault(p.index, {"pins": {}})
    return drawn


def _pins(p: Placed, frozen: dict[str, Any]) -> dict[int, list[int]] | None:
    """What a ``live: false`` block showed when its report was saved, by run; None: draw now."""
    saved = frozen.get(str(p.index)) if not p.block.live else None
    pins = saved.get("pins") if isinstance(saved, dict) else None
    if not isinstance(pins, dict):
        return None
    runs = {run.pk for run in p.runs}
    found: dict[int, list[int]] = {}
    for run, values in pins.items():
        if str(run).isdigit() and int(run) in runs and isinstance(values, list):
            found[int(run)] = [v for v in values if isinstance(v, int)][:MAX_LOG_LINES]
    return found


def _pin(drawn: Drawn, p: Placed, run: Run, values: list[int]) -> None:
    if not p.block.live:
        drawn.pins.setdefault(p.index, {"pins": {}})["pins"][str(run.pk)] = values


def _newest_steps(placed: list[Placed]) -> dict[tuple[int, str], tuple[str, int, int, int]]:
    """(kind, count, first step, newest step) of every (run, key) the blocks read: one query."""
    pairs = {(run.pk, p.block.key) for p in placed if hasattr(p.block, "key") for run in p.runs}
    if not pairs:
        return {}
    rows = (
        MediaItem.objects.filter(
            run_id__in={run for run, _ in pairs}, key__in={key for _, key in pairs}
        )
        .values("run_id", "key", "kind")
        .annotate(count=Count("id"), first=Min("step"), newest=Max("step"))
    )
    return {
        (row["run_id"], row["key"]): (row["kind"], row["count"], row["first"], row["newest"])
        for row in rows
        if (row["run_id"], row["key"]) in pairs
    }


def _check_kind(p: Placed, newest: dict, kind: str) -> None:
    """An error naming the key when no run logged it, or it holds another kind of media."""
    key = getattr(p.block, "key", "")
    found = [newest[(run.pk, key)][0] for run in p.runs if (run.pk, key) in newest]
    if not found:
        if p.block.live:
            raise BlockError(f"None of these runs logged media under `{key}`.")
        return
    if kind not in found:
        raise BlockError(f"`{key}` holds {found[0]}s, not {kind}s: use a {found[0]} block.")


def _wanted_step(p: Placed, run: Run, newest: dict) -> int | None:
    step = getattr(p.block, "step", None)
    if step is not None:
        return int(step)
    found = newest.get((run.pk, getattr(p.block, "key", "")))
    return found[3] if found else None


def _images(
    placed: list[Placed], newest: dict, pinned: dict[int, dict[int, list[int]] | None]
) -> dict[int, dict[int, list[MediaItem]]]:
    """Each media block's images by run: one query for every block of the page."""
    query, ids = Q(), set()
    for p in placed:
        pins = pinned[p.index]
        for run in p.runs:
            if pins is not None:
                ids.update(pins.get(run.pk, []))
            elif (step := _wanted_step(p, run, newest)) is not None:
                query |= Q(run_id=run.pk, key=p.block.key, step=step)  # type: ignore[union-attr]
    if ids:
        query |= Q(pk__in=ids)
    if not query:
        return {}
    rows = MediaItem.objects.filter(query, kind=MediaKind.IMAGE).order_by("step", "id")
    found = list(rows[: MAX_RUNS * MAX_MAX_IMAGES * blocks.MAX_BLOCKS])
    out: dict[int, dict[int, list[MediaItem]]] = {}
    for p in placed:
        block = p.block
        assert isinstance(block, MediaBlock)
        pins = pinned[p.index]
        for run in p.runs:
            if pins is not None:
                mine = [i for i in found if i.run_id == run.pk and i.pk in pins.get(run.pk, [])]
            else:
                step = _wanted_step(p, run, newest)
                mine = [
                    i for i in found if i.run_id == run.pk and i.key == block.key and i.step == step
                ]
            out.setdefault(p.index, {})[run.pk] = mine[: block.max_images]
    return out


def image_src(item_id: int, *, public: bool) -> str:
    """A member's page loads an image from the API; a public render leaves it to its caller."""
    if public:
        return f"{SHARED_SRC}{item_id}"
    return f"{_api_media_prefix()}{item_id}"


@functools.cache
def _api_media_prefix() -> str:
    """``/api/v1/media/``, from the URL conf once: a page may show 200 images."""
    return reverse("api-media-file", kwargs={"media_id": 1}).removesuffix("1")


def _run_label(run: Run, public: bool) -> dict[str, Any]:
    return {"name": run.name, "href": "" if public else run.get_absolute_url(), "run": run}


def _draw_media(
    p: Placed, by_run: dict[int, list[MediaItem]], newest: dict, drawn: Drawn, budget: _Budget
) -> None:
    block = p.block
    assert isinstance(block, MediaBlock)
    _check_kind(p, newest, MediaKind.IMAGE)
    count = sum(len(items) for items in by_run.values())
    if count > budget.images:
        _leave_out(drawn, p, f"this page already shows {PAGE_IMAGES} images, its budget")
        return
    budget.images -= count
    columns = []
    for run in p.runs:
        items = by_run.get(run.pk, [])
        drawn.images.update(item.pk for item in items)
        _pin(drawn, p, run, [item.pk for item in items])
        step = items[0].step if items else _wanted_step(p, run, newest)
        shown = [
            {
                "item": item,
                "src": image_src(item.pk, public=p.public),
                "width": item.meta.get("width"),
                "height": item.meta.get("height"),
                "alt": item.caption or f"{block.key} at step {item.step}",
            }
            for item in items
        ]
        columns.append({**_run_label(run, p.public), "step": step, "images": shown})
    context = {"block": block, "index": p.index, "columns": columns, "frozen": not block.live}
    drawn.html[p.index] = render_to_string("reports_app/blocks/media.html", context)


def _table_items(
    placed: list[Placed], newest: dict, pinned: dict[int, dict[int, list[int]] | None]
) -> dict[int, MediaItem]:
    """The table item each table block shows: one query for every block of the page."""
    query = Q()
    for p in placed:
        pins, run = pinned[p.index], p.runs[0]
        if pins is not None:
            query |= Q(pk__in=pins.get(run.pk, [])[:1], run_id=run.pk)
        elif (step := _wanted_step(p, run, newest)) is not None:
            query |= Q(run_id=run.pk, key=p.block.key, step=step)  # type: ignore[union-attr]
    if not query:
        return {}
    rows = list(MediaItem.objects.filter(query, kind=MediaKind.TABLE).order_by("step", "id"))
    out: dict[int, MediaItem] = {}
    for p in placed:
        pins, run = pinned[p.index], p.runs[0]
        key = p.block.key  # type: ignore[union-attr]
        step = _wanted_step(p, run, newest)
        for item in rows:
            if item.run_id != run.pk:
                continue
            hit = item.pk in pins.get(run.pk, []) if pins is not None else item.key == key
            if hit and (pins is not None or item.step == step):
                out[p.index] = item
                break
    return out


def _draw_table(p: Placed, item: MediaItem | None, drawn: Drawn, budget: _Budget) -> None:
    block = p.block
    assert isinstance(block, TableBlock)
    run = p.runs[0]
    if item is None:
        where = f"step {block.step}" if block.step is not None else "any step"
        raise BlockError(f"Run {run.name} logged no table under `{block.key}` at {where}.")
    if item.size > TABLE_MAX_BYTES:
        raise BlockError(
            f"This table's file is {item.size / 1e6:.1f} MB; a report shows tables of at most "
            f"{TABLE_MAX_BYTES / 1e6:g} MB (the run page shows it whole)."
        )
    if item.size > budget.table_bytes:
        _leave_out(drawn, p, f"this page already read {PAGE_TABLE_BYTES / 1e6:g} MB of tables")
        return
    budget.table_bytes -= item.size
    content = _read_table(item)
    names: list[str] = list(content.get("columns", []))
    wanted = list(block.columns) or names
    missing = [c for c in wanted if c not in names]
    if missing:
        shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
        raise BlockError(f"`columns` names `{_shown(missing[0])}`; this table has {shown}.")
    positions = [names.index(c) for c in wanted]
    rows = content.get("rows", [])
    _pin(drawn, p, run, [item.pk])
    context = {
        "block": block,
        "index": p.index,
        "run": _run_label(run, p.public),
        "item": item,
        "columns": wanted,
        "rows": [[row[i] for i in positions] for row in rows[: block.max_rows]],
        "total": len(rows),
        "frozen": not block.live,
    }
    drawn.html[p.index] = render_to_string("reports_app/blocks/table.html", context)


def _read_table(item: MediaItem) -> dict[str, Any]:
    """The table's columns and rows; a file the storage cannot give back is an error box."""
    try:
        with media.open_file(item).open("rb") as handle:
            content = orjson.loads(handle.read(TABLE_MAX_BYTES + 1))
    except Exception:  # disk or bucket, any failure: this block's error box, not a 500
        raise BlockError("This table's file could not be read from storage.") from None
    if not isinstance(content, dict):
        raise BlockError("This table's file could not be read from storage.")
    return content


def _histogram_rows(
    placed: list[Placed], newest: dict, pinned: dict[int, dict[int, list[int]] | None]
) -> dict[int, dict[int, list[tuple[int, dict[str, Any]]]]]:
    """Each histogram block's (step, bins) by run, at most ``HISTOGRAM_STEPS`` steps picked
    evenly: one query for the blocks' rows, and one list of steps per long (run, key)."""
    steps: dict[tuple[int, str], list[int]] = {}
    for p in placed:
        key = p.block.key  # type: ignore[union-attr]
        pins = pinned[p.index]
        for run in p.runs:
            if pins is not None:
                steps[(run.pk, key)] = sorted(pins.get(run.pk, []))[:HISTOGRAM_STEPS]
            elif (run.pk, key) in newest and (run.pk, key) not in steps:
                steps[(run.pk, key)] = _picked_steps(run.pk, key, newest[(run.pk, key)])
    query = Q()
    for (run_id, key), picked in steps.items():
        if picked:
            query |= Q(run_id=run_id, key=key, step__in=picked)
    found: dict[tuple[int, str], dict[int, dict[str, Any]]] = {}
    if query:
        rows = MediaItem.objects.filter(query, kind=MediaKind.HISTOGRAM).order_by("-id")
        for run_id, key, step, meta in rows.values_list("run_id", "key", "step", "meta"):
            found.setdefault((run_id, key), {})[step] = meta  # the first logged wins
    out: dict[int, dict[int, list[tuple[int, dict[str, Any]]]]] = {}
    for p in placed:
        key = p.block.key  # type: ignore[union-attr]
        for run in p.runs:
            bins = found.get((run.pk, key), {})
            out.setdefault(p.index, {})[run.pk] = sorted(bins.items())
    return out


def _picked_steps(run_id: int, key: str, stats: tuple[str, int, int, int]) -> list[int]:
    """At most ``HISTOGRAM_STEPS`` of the steps ``key`` has, evenly, the first and last kept."""
    kind, count, first, last = stats
    if kind != MediaKind.HISTOGRAM:
        return []
    if count == 1 or first == last:
        return [last]
    rows = MediaItem.objects.filter(run_id=run_id, key=key)  # the (run, key, step) index
    every = list(rows.values_list("step", flat=True).distinct().order_by("step"))
    if len(every) <= HISTOGRAM_STEPS:
        return every
    last_index = len(every) - 1
    picked = {round(i * last_index / (HISTOGRAM_STEPS - 1)) for i in range(HISTOGRAM_STEPS)}
    return [every[i] for i in sorted(picked)]


def _draw_histogram(
    p: Placed, by_run: dict[int, list[tuple[int, dict[str, Any]]]], drawn: Drawn
) -> None:
    block = p.block
    assert isinstance(block, HistogramBlock)
    drawn_runs = [(run, by_run.get(run.pk, [])) for run in p.runs]
    drawn_runs = [(run, rows) for run, rows in drawn_runs if rows]
    if not drawn_runs:
        if not block.live:
            raise BlockError("Nothing was pinned for this frozen block.")
        raise BlockError(f"None of these runs logged histograms under `{block.key}`.")
    for run, rows in drawn_runs:
        _pin(drawn, p, run, [step for step, _ in rows])
    drawn.figures[p.index] = heatmaps(block, drawn_runs, cache=drawn.heatmaps)
    label = block.title or f"Histograms of {block.key}"
    frozen = "" if block.live else "Frozen when the report was saved."
    note = format_html('<p class="chart-note">{}</p>', frozen) if frozen else ""
    drawn.html[p.index] = format_html(
        '<figure class="report-chart report-panel report-histogram" id="block-{}" data-block="{}"'
        ' data-panel="histogram"><div class="plot" data-figure="{}" role="img"'
        ' aria-label="Histogram: {}"></div>{}</figure>',
        p.index,
        p.index,
        p.index,
        label,
        note,
    )


def heatmaps(
    block: HistogramBlock,
    runs: list[tuple[Run, list[tuple[int, dict]]]],
    *,
    cache: dict[tuple, dict[str, Any]] | None = None,
) -> dict:
    """A heatmap per run, stacked, over one step axis: bins (y) by step (x), counts as colour.

    Each step's bins may differ; they are spread over ``HISTOGRAM_BINS`` common bins
    between the run's lowest and highest edge, each count shared by overlap.
    """
    traces, layout_axes = [], {}
    share = 1 / len(runs)
    cache = {} if cache is None else cache
    for number, (run, rows) in enumerate(runs, start=1):
        key = (run.pk, block.key, tuple(step for step, _ in rows))
        if key not in cache:
            cache[key] = _heatmap(rows)
        axis = "y" if number == 1 else f"y{number}"
        traces.append(
            {
                "type": "heatmap",
                "name": run.name,
                **cache[key],
                "xaxis": "x",
                "yaxis": axis,
                "colorscale": "Viridis",
                "showscale": False,
                "hovertemplate": f"{escape(run.name)}<br>step %{{x}}<br>%{{y:.4g}}: "
                "%{z:.4g}<extra></extra>",
            }
        )
        top = 1 - (number - 1) * share
        layout_axes["yaxis" if number == 1 else f"yaxis{number}"] = {
            "domain": [max(0.0, top - share + 0.06), top],
            "title": {"text": run.name, "font": {"size": 11}},
        }
    layout = {
        "template": "none",
        "height": 140 + 200 * len(runs),
        "margin": {"l": 72, "r": 16, "t": 40, "b": 48},
        "title": {"text": block.title or block.key},
        "xaxis": {
            "title": {"text": "step"},
            "anchor": "y" + (str(len(runs)) if len(runs) > 1 else ""),
        },
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "meta": {"runs": [], "note": ""},
        **layout_axes,
    }
    return {"data": traces, "layout": layout}


def _heatmap(rows: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """One run's steps (x), common bin centres (y) and counts (z, a row per bin)."""
    low = min(meta["edges"][0] for _, meta in rows)
    high = max(meta["edges"][-1] for _, meta in rows)
    width = (high - low) / HISTOGRAM_BINS or 1.0
    columns = [_rebin(meta, low, width) for _, meta in rows]
    return {
        "x": [step for step, _ in rows],
        "y": [round(low + (i + 0.5) * width, 6) for i in range(HISTOGRAM_BINS)],
        "z": [[column[b] for column in columns] for b in range(HISTOGRAM_BINS)],
    }


def _rebin(meta: dict[str, Any], low: float, width: float) -> list[float]:
    """A step's counts over the common bins, each shared by how much of it each overlaps."""
    out = [0.0] * HISTOGRAM_BINS
    edges, counts = meta.get("edges", []), meta.get("counts", [])
    for index, count in enumerate(counts[: len(edges) - 1]):
        a, b = edges[index], edges[index + 1]
        if b <= a:
            out[min(HISTOGRAM_BINS - 1, max(0, int((a - low) / width)))] += count
            continue
        first = max(0, int((a - low) / width))
        last = min(HISTOGRAM_BINS - 1, int((b - low) / width))
        for target in range(first, last + 1):
            lo, hi = low + target * width, low + (target + 1) * width
            overlap = min(b, hi) - max(a, lo)
            if overlap > 0:
                out[target] += count * overlap / (b - a)
    return [round(value, 3) for value in out]


def _draw_logs(p: Placed, pins: dict[int, list[int]] | None, drawn: Drawn, budget: _Budget) -> None:
    block = p.block
    assert isinstance(block, LogsBlock)
    run = p.runs[0]
    lines = _console_lines(block, run, pins)
    if len(lines) > budget.log_lines:
        _leave_out(drawn, p, f"this page already shows {PAGE_LOG_LINES:,} console lines")
        return
    budget.log_lines -= len(lines)
    _pin(drawn, p, run, [line.number for line in lines])
    context = {
        "block": block,
        "index": p.index,
        "run": _run_label(run, p.public),
        "lines": mark_safe("".join(map(_line_html, lines))),  # noqa: S308 - escaped below
        "count": len(lines),
        "frozen": not block.live,
    }
    drawn.html[p.index] = render_to_string("reports_app/blocks/logs.html", context)


def _console_lines(
    block: LogsBlock, run: Run, pins: dict[int, list[int]] | None
) -> list[ConsoleLine]:
    if pins is not None:
        numbers = pins.get(run.pk, [])
        return list(ConsoleLine.objects.filter(run=run, number__in=numbers).order_by("number"))
    if block.start is not None and block.end is not None:
        span = block.end - block.start + 1
        found = console.read(run, start=block.start, search=block.search, limit=span)
        return [line for line in found if line.number <= block.end]
    return console.read(run, tail=block.tail, search=block.search, limit=MAX_LOG_LINES)


def _line_html(line: ConsoleLine) -> str:
    """One numbered line, escaped; built here, not in the template: a page holds 5,000."""
    text: str = escape(_plain(line.text))
    if line.stream == "stderr":
        text = f'<span class="report-console-stderr">{text}</span>'
    return (
        f'<span class="report-console-line" data-line="{int(line.number)}">'
        f'<span class="report-console-number" aria-hidden="true">{int(line.number)}</span>'
        f"{text}</span>\n"
    )


def _plain(text: str) -> str:
    """A console line as a report shows it: colour codes stripped, and not endless."""
    plain = console.strip_ansi(text)
    return plain if len(plain) <= SHOWN_LINE_CHARS else plain[:SHOWN_LINE_CHARS] + "…"


def _leave_out(drawn: Drawn, p: Placed, why: str) -> None:
    drawn.left_out.add(p.index)
    drawn.html[p.index] = format_html(
        '<div class="block-note" role="note"><strong>{} block:</strong> Not drawn: {}.'
        " Split the report, or show fewer items in the blocks above.</div>",
        p.block.kind,
        why,
    )


# --- Public renders: where their images come from -------------------------------------------


def fill_sources(html: str, shown: Iterable[int], src: Callable[[int], str]) -> str:
    """A public render's images pointed at ``src(id)``; an id the render did not show is
    emptied (the render wrote every such source itself: Markdown cannot name this scheme)."""
    allowed = set(shown)

    def fill(match: re.Match[str]) -> str:
        item_id = int(match[1])
        url = src(item_id) if item_id in allowed else ""
        return match[0].replace(f'src="{SHARED_SRC}{item_id}"', f'src="{escape(url)}"')

    return _SHARED_IMG.sub(fill, html)


def inline_images(html: str, shown: Iterable[int], *, cap: int = EXPORT_IMAGE_BYTES) -> str:
    """A public render's images as ``data:`` URIs, for a file that opens offline.

    Up to ``cap`` bytes of image files in all, in page order; an image past it is
    a note instead, naming its run, key and step.
    """
    allowed = set(shown)
    ids = [int(m[1]) for m in _SHARED_IMG.finditer(html) if int(m[1]) in allowed]
    items = {item.pk: item for item in MediaItem.objects.filter(pk__in=ids).exclude(file="")}
    uris: dict[int, str] = {}
    left = cap
    for item_id in dict.fromkeys(ids):
        item = items.get(item_id)
        if item is None or item.size > left:
            continue
        try:
            with media.open_file(item).open("rb") as handle:
                data = handle.read(item.size + 1)
        except Exception:  # disk or bucket: the note stands in for this image
            logger.warning("Media item %s could not be read for an export.", item.pk)
            continue
        left -= len(data)
        uris[item_id] = f"data:{media.content_type(item)};base64,{base64.b64encode(data).decode()}"

    def inline(match: re.Match[str]) -> str:
        item_id = int(match[1])
        if item_id in uris:
            return match[0].replace(f'src="{SHARED_SRC}{item_id}"', f'src="{uris[item_id]}"')
        item = items.get(item_id)
        what = f"{item.key} at step {item.step}" if item else "this image"
        return str(
            format_html(
                '<span class="block-note media-left-out">Not in this file: {} (the export'
                " holds at most {} MB of images).</span>",
                what,
                f"{cap / 1e6:g}",
            )
        )

    return _SHARED_IMG.sub(inline, html)


# --- Live blocks: which run messages change what a block shows ---------------------------------


@dataclass(frozen=True)
class LiveBlock:
    """A live media, table, histogram or logs block as a page's script (a member's) or a
    share socket watches it: what it reads, so a ``run.media`` or ``run.console`` message
    refetches the block only when it could change what the block shows."""

    block: int
    kind: str
    runs: tuple[int, ...]
    key: str = ""  # "" for a logs block: it reads the console
    step: int | None = None  # a media or table block's fixed step; None: the newest
    start: int | None = None  # a logs block's lines: [start, end]
    end: int | None = None
    search: str = ""

    def as_dict(self) -> dict[str, Any]:
        """For the page's config (``report.js`` applies the same rules as ``touched_by_*``)."""
        return {
            "block": self.block,
            "kind": self.kind,
            "runs": list(self.runs),
            "key": self.key,
            "step": self.step,
            "start": self.start,
            "end": self.end,
            "search": self.search,
        }


def live_block(index: int, block: MediaKindBlock, runs: Iterable[Run]) -> LiveBlock | None:
    """What a block of the page watches; None for a frozen block (it never changes) or one
    without runs."""
    ids = tuple(run.pk for run in runs)
    if not block.live or not ids:
        return None
    if isinstance(block, LogsBlock):
        return LiveBlock(index, block.kind, ids, start=block.start, end=block.end,
                         search=block.search)  # fmt: skip
    step = getattr(block, "step", None)
    return LiveBlock(index, block.kind, ids, key=block.key, step=step)


def touched_by_media(watched: LiveBlock, run: Any, logged: Any) -> bool:
    """Whether a ``run.media`` message (``logged``: {key: {"kind", "steps"}}) may change the
    block: its run and key, and a step it shows (any step for the newest, or a histogram)."""
    if watched.kind == "logs" or run not in watched.runs or not isinstance(logged, dict):
        return False
    found = logged.get(watched.key)
    if not isinstance(found, dict):
        return False
    if watched.step is None or watched.kind == "histogram":
        return True
    steps = found.get("steps")
    return not isinstance(steps, list) or watched.step in steps


def touched_by_console(watched: LiveBlock, run: Any, lines: Any, truncated: bool = False) -> bool:
    """Whether new console lines of ``run`` may change a logs block: any line for a tail, a
    line within its ``lines`` span, and (with ``search``) one that holds the text. A
    truncated batch dropped lines nobody saw: it may have."""
    if watched.kind != "logs" or run not in watched.runs or not isinstance(lines, list):
        return False
    if truncated:
        return True
    needle = watched.search.casefold()
    for line in lines:
        if not isinstance(line, dict):
            continue
        number, text = line.get("number"), line.get("text")
        low, high = watched.start, watched.end
        outside = not isinstance(number, int) or not (low or 0) <= number <= (high or 0)
        if low is not None and high is not None and outside:
            continue
        if needle and (not isinstance(text, str) or needle not in text.casefold()):
            continue
        return True
    return False


def shown_images(placed: list[Placed], frozen: dict[str, Any]) -> set[int]:
    """The images the page's media blocks show, as ``draw`` picks them (step rule, pins,
    ``max_images``, the page's image budget) without drawing anything: what a share link's
    image request checks. ``placed`` holds the page's media blocks, in page order."""
    mine = [p for p in placed if isinstance(p.block, MediaBlock)]
    pinned = {p.index: _pins(p, frozen) for p in mine}
    newest = _newest_steps([p for p in mine if pinned[p.index] is None])
    images = _images(mine, newest, pinned)
    left, shown = PAGE_IMAGES, set[int]()
    for p in mine:
        try:
            _check_kind(p, newest, MediaKind.IMAGE)
        except BlockError:
            continue
        by_run = images.get(p.index, {})
        count = sum(len(items) for items in by_run.values())
        if count > left:
            continue
        left -= count
        shown.update(item.pk for items in by_run.values() for item in items)
    return shown


# --- end live blocks ---------------------------------------------------------------------------
