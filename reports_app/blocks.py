"""Labbook blocks in report Markdown: fenced ``chart``, ``runs`` and ``compare`` blocks.

A block's body is YAML (read with PyYAML's safe loader) and is checked here
into a small dataclass; anything wrong raises :class:`BlockError` with a
message that names the option, which the renderer shows in an error box in
place of the block. Examples (docs/reports.md documents every option)::

    ```chart
    runs: {project: acme/mnist, tags: [sweep], status: finished, limit: 5}
    metrics: [train/loss, val/loss]
    x: step            # step | time | relative | a metric key (epoch): any x axis
    smoothing: 0.6     # 0 to 0.99
    log_y: true
    title: Loss of the sweep
    max_points: 400
    live: true         # false freezes the data when the report is saved
    group_by: config.lr  # optional: group, tags or config.<key>; each group's mean line
    band: std          # std (±1 standard deviation, the default) | minmax | none
    ```

    ```runs
    runs: {tags: [baseline]}
    columns: [config.lr, summary.val/loss]
    ```

    ```compare
    runs: [12, 15]
    ```

Run-level panels draw one value per run (a ``config.<key>`` or ``summary.<key>``) for up to
``MAX_PANEL_RUNS`` runs: the sweep's view::

    ```scatter
    runs: {project: acme/mnist, tags: [sweep], limit: 200}
    x: config.lr
    y: summary.val/acc
    color: config.batch_size   # optional
    log_x: true
    ```

    ```bar
    runs: {tags: [sweep]}
    value: summary.val/acc
    group_by: config.optimizer  # optional: group, tags or config.<key>; bars then show
    ```                         # each group's mean with ±1 standard deviation

    ```parallel
    runs: {tags: [sweep]}
    columns: [config.lr, config.batch_size, summary.val/acc]
    color: summary.val/acc
    ```

    ```importance
    runs: {tags: [sweep]}
    metric: summary.val/acc
    columns: [config.lr, config.dropout]  # optional: every config key that varies
    ```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from kernel.charts import BANDS, MAX_CHART_RUNS
from tracking.presentation import GROUPINGS

# --- Media blocks: parsed and drawn by reports_app.media_blocks --------------------------------
MEDIA_KINDS = ("media", "table", "histogram", "logs")
# --- end media blocks ---------------------------------------------------------------------------
KINDS = ("chart", "runs", "compare", "scatter", "bar", "parallel", "importance", *MEDIA_KINDS)
PANEL_KINDS = ("scatter", "bar", "parallel", "importance")
X_AXES = ("step", "time", "relative")
MAX_RUNS = 20  # runs and compare blocks: a table's rows or columns
MAX_PANEL_RUNS = MAX_CHART_RUNS  # charts and panels: a whole sweep fits
DEFAULT_PANEL_LIMIT = 100
MAX_BLOCKS = 50  # chart, runs and compare blocks in one report: each costs queries to draw
MAX_METRICS = 10
DEFAULT_LIMIT = 10
DEFAULT_MAX_POINTS = 400
MAX_MAX_POINTS = 5000
MAX_COLUMNS = 20
# Options are a few short lists; these bounds are far above any real block and far below a
# YAML alias bomb ("billion laughs") or a nesting deep enough to exhaust Python's stack.
MAX_VALUES = 1_000
MAX_DEPTH = 8
MAX_INT_BITS = 128  # hex and sexagesimal ints have no digit limit, and str() refuses huge ones
SHOWN_CHARS = 60  # of a bad value quoted back in an error message
# libyaml's parser when PyYAML has it: fast, and deep nesting is a YAMLError, not a RecursionError.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SELECTOR_KEYS = {"ids", "project", "tags", "status", "group", "name", "limit"}


class BlockError(Exception):
    """A block the renderer cannot draw; ``message`` is shown to the reader."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class RunSelector:
    """Explicit run ids, and/or the runs of a project matching every filter given."""

    ids: tuple[int, ...] = ()
    project: str | None = None
    tags: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    group: str | None = None
    name: str | None = None  # a glob: resnet-*
    limit: int = DEFAULT_LIMIT

    @property
    def is_query(self) -> bool:
        return bool(self.project or self.tags or self.status or self.group or self.name)


@dataclass(frozen=True)
class ChartBlock:
    runs: RunSelector
    metrics: tuple[str, ...]
    x: str = "step"
    smoothing: float = 0.0
    log_y: bool = False
    title: str = ""
    max_points: int = DEFAULT_MAX_POINTS
    live: bool = True
    group_by: str = ""  # "": a line per run; else a mean line per group (bands.js)
    band: str = "std"
    kind: str = field(default="chart", init=False)


@dataclass(frozen=True)
class RunsBlock:
    runs: RunSelector
    columns: tuple[str, ...] = ()
    kind: str = field(default="runs", init=False)


@dataclass(frozen=True)
class CompareBlock:
    runs: RunSelector
    kind: str = field(default="compare", init=False)


@dataclass(frozen=True)
class ScatterBlock:
    runs: RunSelector
    x: str
    y: str
    color: str = ""
    log_x: bool = False
    log_y: bool = False
    title: str = ""
    live: bool = True
    kind: str = field(default="scatter", init=False)


@dataclass(frozen=True)
class BarBlock:
    runs: RunSelector
    value: str
    group_by: str = ""
    log_y: bool = False
    title: str = ""
    live: bool = True
    kind: str = field(default="bar", init=False)


@dataclass(frozen=True)
class ParallelBlock:
    runs: RunSelector
    columns: tuple[str, ...]
    color: str = ""
    title: str = ""
    live: bool = True
    kind: str = field(default="parallel", init=False)


@dataclass(frozen=True)
class ImportanceBlock:
    runs: RunSelector
    metric: str
    columns: tuple[str, ...] = ()  # config keys; none: every config key that varies
    title: str = ""
    live: bool = True
    kind: str = field(default="importance", init=False)


Panel = ScatterBlock | BarBlock | ParallelBlock | ImportanceBlock
Block = ChartBlock | RunsBlock | CompareBlock | Panel


def parse(kind: str, text: str) -> Block:
    """The block of ``kind`` described by ``text``; BlockError names what is wrong."""
    options = _load(text)
    parsers: dict[str, Callable[[dict[str, Any]], Block]] = {
        "chart": _chart,
        "runs": _runs,
        "compare": _compare,
        "scatter": _scatter,
        "bar": _bar,
        "parallel": _parallel,
        "importance": _importance,
    }
    return parsers[kind](options)


def _load(text: str) -> dict[str, Any]:
    try:
        options = yaml.load(text, Loader=SAFE_LOADER) if text.strip() else {}  # noqa: S506
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise BlockError(f"The block is not valid YAML{where}.") from None
    except RecursionError:  # PyYAML's pure-Python parser recurses once per nesting level
        raise BlockError(f"The block nests more than {MAX_DEPTH} levels deep.") from None
    except ValueError:  # a value PyYAML matched but cannot build: 2024-13-45, 5,000 digits
        raise BlockError("The block holds a date out of range or a number too long.") from None
    _check_size(options)
    if not isinstance(options, dict):
        raise BlockError("Write the block as `option: value` lines.")
    return options


def _check_size(options: Any) -> None:
    """Refuse bombs and deep nesting before anything walks the options or quotes them back.

    Iterative, and counting every visit: aliases make a YAML document a graph whose
    paths multiply, so the count stops a bomb after ``MAX_VALUES`` steps.
    """
    stack, visited = [(options, 1)], 0
    while stack:
        value, depth = stack.pop()
        visited += 1
        if visited > MAX_VALUES:
            raise BlockError(f"The block holds more than {MAX_VALUES} values.")
        if depth > MAX_DEPTH:
            raise BlockError(f"The block nests more than {MAX_DEPTH} levels deep.")
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise BlockError("The block holds a number too large for any option.")
        if isinstance(value, dict):  # keys too: a key is quoted back when it is unknown
            stack.extend((child, depth + 1) for pair in value.items() for child in pair)
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value)


def _shown(value: Any) -> str:
    """A bad value as an error message quotes it: short, whatever the author wrote."""
    text = str(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _check_keys(options: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(str(key) for key in options if key not in allowed)
    if unknown:
        choices = ", ".join(sorted(allowed))
        raise BlockError(f"Unknown {what} option `{_shown(unknown[0])}`; use {choices}.")


def _chart(options: dict[str, Any]) -> ChartBlock:
    allowed = {"runs", "metrics", "x", "smoothing", "log_y", "title", "max_points", "live"}
    _check_keys(options, {*allowed, "group_by", "band"}, "chart")
    x = _text(options.get("x", "step"), "x", 250) or "step"  # or a metric key: any x axis
    group_by = _group_by(options)
    band = options.get("band", "std")
    if band not in BANDS:
        raise BlockError(f"`band` must be one of {', '.join(BANDS)}.")
    if "band" in options and not group_by:
        raise BlockError("`band` draws around a group's mean: add `group_by`.")
    return ChartBlock(
        runs=selector(options.get("runs"), most=MAX_PANEL_RUNS),
        group_by=group_by,
        band=band,
        metrics=_strings(options.get("metrics"), "metrics", required=True, most=MAX_METRICS),
        x=x,
        smoothing=_number(options.get("smoothing", 0), "smoothing", 0, 0.99),
        log_y=_bool(options.get("log_y", False), "log_y"),
        title=_text(options.get("title", ""), "title", 200),
        max_points=int(
            _number(
                options.get("max_points", DEFAULT_MAX_POINTS),
                "max_points",
                2,
                MAX_MAX_POINTS,
                integer=True,
            )
        ),
        live=_bool(options.get("live", True), "live"),
    )


def _runs(options: dict[str, Any]) -> RunsBlock:
    _check_keys(options, {"runs", "columns"}, "runs")
    columns = _columns(options.get("columns"), "columns")
    return RunsBlock(runs=selector(options.get("runs")), columns=columns)


def _columns(value: Any, name: str, *, required: bool = False) -> tuple[str, ...]:
    columns = _strings(value, name, required=required, most=MAX_COLUMNS)
    for column in columns:
        _check_column(column, name)
    return columns


def _check_column(column: str, name: str, *, sources: tuple[str, ...] = ("config", "summary")):
    source, _, key = column.partition(".")
    if source not in sources or not key:
        shapes = " or ".join(f"`{source}.<key>`" for source in sources)
        raise BlockError(f"`{name}` names `{_shown(column)}`; write {shapes}.")


def _column(options: dict[str, Any], name: str, *, required: bool = False) -> str:
    """One ``config.<key>`` or ``summary.<key>`` option; "" when optional and absent."""
    value = options.get(name)
    if value is None:
        if required:
            raise BlockError(f"`{name}` is required: a `config.<key>` or `summary.<key>`.")
        return ""
    column = _text(value, name, 250)
    _check_column(column, name)
    return column


def _panel_common(options: dict[str, Any]) -> dict[str, Any]:
    """The options every panel shares: its runs (up to ``MAX_PANEL_RUNS``), title, live."""
    return {
        "runs": selector(options.get("runs"), most=MAX_PANEL_RUNS, limit=DEFAULT_PANEL_LIMIT),
        "title": _text(options.get("title", ""), "title", 200),
        "live": _bool(options.get("live", True), "live"),
    }


def _scatter(options: dict[str, Any]) -> ScatterBlock:
    allowed = {"runs", "x", "y", "color", "log_x", "log_y", "title", "live"}
    _check_keys(options, allowed, "scatter")
    return ScatterBlock(
        x=_column(options, "x", required=True),
        y=_column(options, "y", required=True),
        color=_column(options, "color"),
        log_x=_bool(options.get("log_x", False), "log_x"),
        log_y=_bool(options.get("log_y", False), "log_y"),
        **_panel_common(options),
    )


def _bar(options: dict[str, Any]) -> BarBlock:
    _check_keys(options, {"runs", "value", "group_by", "log_y", "title", "live"}, "bar")
    return BarBlock(
        value=_column(options, "value", required=True),
        group_by=_group_by(options),
        log_y=_bool(options.get("log_y", False), "log_y"),
        **_panel_common(options),
    )


def _group_by(options: dict[str, Any]) -> str:
    """``group``, ``tags`` or ``config.<key>``; "" when absent."""
    group_by = _text(options.get("group_by", ""), "group_by", 250)
    if group_by and group_by not in GROUPINGS:
        _check_column(group_by, "group_by", sources=("config",))
    return group_by


def _parallel(options: dict[str, Any]) -> ParallelBlock:
    _check_keys(options, {"runs", "columns", "color", "title", "live"}, "parallel")
    columns = _columns(options.get("columns"), "columns", required=True)
    if len(columns) < 2:
        raise BlockError("`columns` needs at least two axes.")
    return ParallelBlock(columns=columns, color=_column(options, "color"), **_panel_common(options))


def _importance(options: dict[str, Any]) -> ImportanceBlock:
    _check_keys(options, {"runs", "metric", "columns", "title", "live"}, "importance")
    columns = _strings(options.get("columns"), "columns", most=MAX_COLUMNS)
    for column in columns:
        _check_column(column, "columns", sources=("config",))
    return ImportanceBlock(
        metric=_column(options, "metric", required=True), columns=columns, **_panel_common(options)
    )


def _compare(options: dict[str, Any]) -> CompareBlock:
    _check_keys(options, {"runs"}, "compare")
    return CompareBlock(runs=selector(options.get("runs")))


def selector(value: Any, *, most: int = MAX_RUNS, limit: int = DEFAULT_LIMIT) -> RunSelector:
    """``runs:`` as a list of ids, one id, or a mapping of filters (``ids`` allowed inside);
    at most ``most`` runs, ``limit`` of a query unless it says."""
    if value is None:
        raise BlockError("Say which runs: `runs: [12, 15]` or `runs: {project: team/project}`.")
    if isinstance(value, int | list) and not isinstance(value, bool):
        return RunSelector(ids=_ids(value, most))
    if not isinstance(value, dict):
        raise BlockError("`runs` must be a list of run ids or a mapping of filters.")
    _check_keys(value, SELECTOR_KEYS, "runs")
    found = RunSelector(
        ids=_ids(value.get("ids", []), most),
        project=_text(value.get("project"), "runs.project", 201) or None,
        tags=_strings(value.get("tags"), "runs.tags", most=20),
        status=_strings(value.get("status"), "runs.status", most=5),
        group=_text(value.get("group"), "runs.group", 200) or None,
        name=_text(value.get("name"), "runs.name", 200) or None,
        limit=int(_number(value.get("limit", limit), "runs.limit", 1, most, integer=True)),
    )
    if not found.ids and not found.is_query:
        raise BlockError("`runs` needs ids or at least one filter (project, tags, ...).")
    return found


def _ids(value: Any, most: int) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    if len(values) > most:
        raise BlockError(f"At most {most} runs in this block.")
    ids: list[int] = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 2**63:
            raise BlockError(f"Run ids are positive whole numbers, not `{_shown(item)}`.")
        if item not in ids:
            ids.append(item)
    return tuple(ids)


def _strings(value: Any, name: str, *, required: bool = False, most: int) -> tuple[str, ...]:
    if value is None or value == []:
        if required:
            raise BlockError(f"`{name}` is required: name at least one.")
        return ()
    values = value if isinstance(value, list) else [value]
    if len(values) > most:
        raise BlockError(f"At most {most} entries in `{name}`.")
    out: list[str] = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise BlockError(f"`{name}` holds names, not `{_shown(item)}`.")
        out.append(_text(str(item), name, 250))
    return tuple(dict.fromkeys(out))


def _text(value: Any, name: str, most: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise BlockError(f"`{name}` must be text.")
    text = str(value).strip()
    if len(text) > most:
        raise BlockError(f"`{name}` has at most {most} characters.")
    if "\x00" in text:  # YAML's "\0" escape: PostgreSQL cannot compare text holding one
        raise BlockError(f"`{name}` may not contain NUL characters.")
    return text


def _number(value: Any, name: str, low: float, high: float, *, integer: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and integer and not float(value).is_integer():
        ok = False
    if not ok or not low <= value <= high:
        kind = "a whole number" if integer else "a number"
        raise BlockError(f"`{name}` must be {kind} from {low:g} to {high:g}.")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BlockError(f"`{name}` must be true or false.")
    return value
