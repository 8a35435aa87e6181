"""How runs look on every chart: one colour per run, by its place in the chart; a marker on
every point of a short series."""

from __future__ import annotations

# Plotly's and D3's category colours: 20 runs on one chart stay distinguishable.
COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


# A line alone hides a series of one point, or points between gaps: a series of at most this
# many points marks each of them (charts.js reads it from the page's config).
MARKED_UP_TO = 30


def run_color(index: int) -> str:
    return COLORS[index % len(COLORS)]
