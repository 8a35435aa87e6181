"""How runs look on every chart: one colour per run, the same on every page; a marker on
every point of a short series."""

from __future__ import annotations

from plotly.colors import hex_to_rgb, qualitative

PALEST = 0.55  # relative luminance: a paler colour hardly reads as a line on white


def _luminance(color: str) -> float:
    """WCAG's relative luminance of ``#rrggbb``."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = hex_to_rgb(color)
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


# Plotly's Dark24 then its Alphabet, without the pale ones: 44 colours, so a project's first
# 44 runs (a sweep of 40) get one each.
COLORS: tuple[str, ...] = tuple(
    dict.fromkeys(
        color.lower()
        for color in (*qualitative.Dark24, *qualitative.Alphabet)
        if _luminance(color) < PALEST
    )
)

# plotly.js as pages load it: the "strict" bundle, vendored under kernel/static/plotly/ from npm's
# plotly.js-strict-dist-min. It draws every trace type without compiling code at run time, so
# the Content-Security-Policy needs no 'unsafe-eval' even for parallel coordinates (WebGL).
PLOTLY_JS = "plotly/plotly-strict.min.js"

# A line alone hides a series of one point, or points between gaps: a series of at most this
# many points marks each of them (charts.js reads it from the page's config).
MARKED_UP_TO = 30


# The most runs one chart draws: a compare page, a chart or panel block of a report, one read of
# the histories API. A sweep of 200 runs is drawn whole; past it, a filter or a group says more.
MAX_CHART_RUNS = 200

# A line chart's points, shared by its lines: a chart of few runs draws each at up to
# LINE_POINTS, a sweep thins every line alike so that the chart stays near CHART_POINTS (SVG
# lines redraw on every hover and zoom), but never below MIN_LINE_POINTS: thinner, a line no
# longer shows a curve's shape. The server downsamples keeping each bucket's min and max, so a
# thinned line still shows its spikes.
LINE_POINTS = 1000
CHART_POINTS = 40_000
MIN_LINE_POINTS = 100


# What a grouped chart draws around each group's mean line (bands.js draws them): ±1 sample
# standard deviation, the runs' min to max, or nothing.
BANDS = ("std", "minmax", "none")


def line_points(runs: int) -> int:
    """Points per line for a chart of ``runs`` lines (see ``CHART_POINTS``)."""
    return max(MIN_LINE_POINTS, min(LINE_POINTS, CHART_POINTS // max(runs, 1)))


def run_color(project_index: int) -> str:
    """The colour of the run that was its project's ``project_index``-th (``Run.project_index``)."""
    return COLORS[project_index % len(COLORS)]
