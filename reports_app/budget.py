"""The budget of one rendered report page: how many chart points and bytes it may carry.

A chart block may ask for ``max_points`` (up to 5,000) per line for up to 20
runs x 10 metrics: one chart could ask for a million points (26.5 MB of JSON,
about 7 s to render) and a report holds up to 50 charts. So the charts of a
page share one budget of points (what the database reads and the browser
draws) and one of bytes (what every view sends), written here once.

The budget is shared fairly ("water-filling"): every line gets the same
allowance, ``min(what its chart asked for, what it has stored, the level)``,
with the level as high as both budgets allow. Lines that need little leave
the rest to the others. When even ``MIN_LINE_POINTS`` per line would not fit,
the charts from the first that does not fit on are left out (a note box
says so) rather than every chart drawn uselessly thin. Frozen charts
(``live: false``) were stored with their points: they cost what they hold.

The plan is made from stored point counts before anything is read, so the
history reads themselves are bounded (``tracking.history.histories`` reads
rollup cells for about ``allowance`` points per line). ``BYTES_PER_POINT``
and ``LINE_BYTES`` estimate the JSON; ``render`` measures the figures it
built and leaves out any chart past ``PAGE_FIGURE_BYTES`` all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kernel.charts import MIN_LINE_POINTS

PAGE_POINTS = 100_000  # all chart lines of one page; about 2.6 MB of JSON when x is the step
PAGE_FIGURE_BYTES = 4_000_000  # the figures' JSON, measured after building
# A downsampled line keeps its first and last point on top of its allowance.
ENDS = 2
# JSON bytes of a line's style, name and meta, and of one point by kind of x. Measured
# (tests/benchmarks/report_render.py --largest): 214 a line with short names (a run's and
# a metric's name may add 450), 25.8 a point by step, 48.9 by time in whole seconds (
# 7 more characters with microseconds), 34.8 by relative minutes.
LINE_BYTES = 400
BYTES_PER_POINT = {"step": 26, "time": 62, "relative": 36}


@dataclass(frozen=True)
class Lines:
    """A chart to draw: its lines' stored point counts and what its block asked for."""

    asked: int
    counts: tuple[int, ...]
    x: str = "step"

    def wants(self) -> list[int]:
        return [min(count, self.asked) for count in self.counts]


@dataclass(frozen=True)
class Fixed:
    """A chart whose points are already chosen (frozen when its report was saved)."""

    points: int
    size: int  # bytes of its figure's JSON


Chart = Lines | Fixed


@dataclass(frozen=True)
class Plan:
    """Per chart (in page order): its allowance of points per line, or None: left out."""

    allowances: list[int | None]


@dataclass(frozen=True)
class _Line:
    want: int  # points it would show unthinned
    weight: int  # bytes per point (1 when counting points)
    overhead: int  # what it costs whatever its allowance


def plan(charts: Sequence[Chart]) -> Plan:
    """Allowances for ``charts`` within both budgets (see the module docstring)."""
    kept = _fitting_prefix(charts)
    points, size = _fixed_cost(charts[:kept])
    drawn = [c for c in charts[:kept] if isinstance(c, Lines)]
    level = min(
        _level(_point_lines(drawn), PAGE_POINTS - points),
        _level(_byte_lines(drawn), PAGE_FIGURE_BYTES - size),
    )
    return Plan([_allowance(c, level) if i < kept else None for i, c in enumerate(charts)])


def _allowance(chart: Chart, level: int) -> int:
    return chart.points if isinstance(chart, Fixed) else min(chart.asked, level)


def thinned(chart: Lines, allowance: int) -> bool:
    """Whether a chart shows fewer points than its block asked for because of the budget."""
    return allowance < chart.asked and any(count > allowance for count in chart.counts)


def _fitting_prefix(charts: Sequence[Chart]) -> int:
    """How many charts, from the first, fit with every line at ``MIN_LINE_POINTS``."""
    points = size = 0
    for index, chart in enumerate(charts):
        if isinstance(chart, Fixed):
            points, size = points + chart.points, size + chart.size
        else:
            points += _cost(_point_lines([chart]), MIN_LINE_POINTS)
            size += _cost(_byte_lines([chart]), MIN_LINE_POINTS)
        if points > PAGE_POINTS or size > PAGE_FIGURE_BYTES:
            return index
    return len(charts)


def _fixed_cost(charts: Sequence[Chart]) -> tuple[int, int]:
    fixed = [c for c in charts if isinstance(c, Fixed)]
    return sum(c.points for c in fixed), sum(c.size for c in fixed)


def _point_lines(charts: list[Lines]) -> list[_Line]:
    return [_Line(want, 1, ENDS) for chart in charts for want in chart.wants()]


def _byte_lines(charts: list[Lines]) -> list[_Line]:
    lines = []
    for chart in charts:
        # A metric x axis sends steps; its metric's points count as lines of their own.
        weight = BYTES_PER_POINT.get(chart.x, BYTES_PER_POINT["step"])
        lines += [_Line(want, weight, LINE_BYTES + ENDS * weight) for want in chart.wants()]
    return lines


def _cost(lines: list[_Line], level: int) -> int:
    return sum(line.overhead + line.weight * min(line.want, level) for line in lines)


def _level(lines: list[_Line], budget: int) -> int:
    """The highest allowance per line whose total cost stays within ``budget``.

    Lines sorted by what they want: while the level is past a line's want, that
    line costs its want; the rest cost the level each. One pass, no search.
    """
    lines = sorted(lines, key=lambda line: line.want)
    left = budget - sum(line.overhead for line in lines)
    weight_left = sum(line.weight for line in lines)
    for line in lines:
        if line.want * weight_left > left:  # the level falls before this line's want
            return max(0, left // weight_left)
        left -= line.want * line.weight
        weight_left -= line.weight
    return max((line.want for line in lines), default=0)
