"""Rendering has a budget: no report page, share link or Markdown body may hold the server.

The security review (issue 16, #7) rendered one chart at the block maximum
(20 runs x 10 metrics x 5,000 points) into 26.5 MB in about 7 s, per
anonymous share-link view; a report holds 50 charts. A page now shares one
budget of points and bytes among its charts and says what it thinned; share
links are served from a cache while the report and its data are unchanged;
Markdown past a structural budget is shown as text.
"""

from __future__ import annotations

import re
from html import unescape

import orjson
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from reports_app import budget, markup, render, selectors, services
from reports_app.models import Report, ShareLink
from tests.conftest import World
from tracking import services as tracking_services
from tracking.history import histories
from tracking.ingest import Point, metrics_ingest
from tracking.models import MetricSeries, Run

pytestmark = pytest.mark.django_db

RUNS, METRICS, STEPS = 4, 5, 3_000  # 20 lines of 3,000 points each
CHARTS = 50  # the most blocks a report draws
# The link; counting the view in a savepoint (its update, the audit row's check); the data
# version; the contributors. No series, point or rollup read.
SHARE_CACHED_QUERIES = 7


def _runs(world: World, *, runs: int = RUNS, metrics: int = METRICS, steps: int = STEPS):
    made = []
    for r in range(runs):
        run = tracking_services.run_create(
            user=world.owner.user, project=world.project, name=f"run-{r}"
        )
        points = [
            Point(f"m{k}", s, 1 / (s + 1), 1.7e9 + s) for k in range(metrics) for s in range(steps)
        ]
        metrics_ingest(run=run, points=points)
        made.append(run)
    return made


def _chart(runs: list[Run], *, max_points: int = 5_000, x: str = "step", metrics=METRICS) -> str:
    ids = ", ".join(str(run.pk) for run in runs)
    keys = ", ".join(f"m{k}" for k in range(metrics))
    return f"```chart\nruns: [{ids}]\nmetrics: [{keys}]\nx: {x}\nmax_points: {max_points}\n```"


def _report(world: World, body: str) -> Report:
    return services.report_create(
        user=world.owner.user, project=world.project, title="Sweep", body=body
    )


def _points(rendered: render.Rendered) -> int:
    return sum(len(trace["y"]) for f in rendered.figures for trace in f.figure["data"])


def _figure_bytes(rendered: render.Rendered) -> int:
    return sum(len(orjson.dumps(f.figure)) for f in rendered.figures)


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html))


# --- The page budget ---------------------------------------------------------------------


def test_it_keeps_a_report_of_max_size_charts_within_the_points_and_bytes_budget(world):
    runs = _runs(world)
    x_axes = ("step", "time", "relative")
    body = "\n\n".join(_chart(runs, x=x_axes[c % 3]) for c in range(CHARTS))
    rendered = render.render_report(_report(world, body))
    assert _points(rendered) <= budget.PAGE_POINTS
    assert _figure_bytes(rendered) <= budget.PAGE_FIGURE_BYTES
    assert rendered.figures and rendered.thinned == len(rendered.figures)
    assert rendered.left_out == CHARTS - len(rendered.figures) > 0
    assert not rendered.errors  # left out is not an error: the author did nothing wrong


def test_it_names_the_thinning_in_each_chart_and_once_at_the_top(client, world):
    runs = _runs(world)
    report = _report(world, "\n\n".join(_chart(runs) for _ in range(CHARTS)))
    client.force_login(world.viewer.user)
    page = client.get(f"/reports/{report.pk}/").content.decode()
    notes = re.findall(r'<p class="chart-note chart-thinned">(.*?)</p>', page)
    (allowance,) = {re.search(r"Thinned to ([\d,]+) points", note)[1] for note in notes}
    assert notes[0] == (
        f"Thinned to {allowance} points per line to keep this page under its budget"
        " (asked for 5,000)."
    )
    assert budget.MIN_LINE_POINTS <= int(allowance.replace(",", "")) < STEPS
    (summary,) = re.findall(r"<p class=\"notice\" role=\"status\" data-budget-note>(.*?)</p>", page)
    assert f"budget of {budget.PAGE_POINTS:,} chart points" in summary
    assert f"thinned {len(notes)} charts and left out {CHARTS - len(notes)} chart" in summary
    boxes = re.findall(r'<div class="block-note" role="note">(.*?)</div>', page)
    assert len(boxes) == CHARTS - len(notes)
    assert "Not drawn: this page already carries 100,000 points" in _text(boxes[0])


def test_it_shares_the_budget_fairly_and_leaves_a_chart_under_it_untouched(world):
    runs = _runs(world, runs=2, metrics=1, steps=3_000)
    short = _runs(world, runs=1, metrics=1, steps=300)
    body = "\n\n".join([_chart(short, metrics=1, max_points=400)] + [_chart(runs, metrics=1)] * 30)
    rendered = render.render_report(_report(world, body))
    small, *big = rendered.figures
    assert small.thinned_to is None and len(small.figure["data"][0]["y"]) == 300
    level = (budget.PAGE_POINTS - 300 - 61 * budget.ENDS) // 60  # 300 to the small line
    assert {figure.thinned_to for figure in big} == {level}
    assert "chart-thinned" not in rendered.html.split('data-block="1"')[0]
    assert rendered.thinned == 30 and rendered.left_out == 0


def test_it_draws_a_report_within_budget_as_asked(client, world):
    runs = _runs(world, runs=2, metrics=2, steps=600)
    report = _report(world, _chart(runs, metrics=2, max_points=400))
    rendered = render.render_report(report)
    assert rendered.budget_note == "" and rendered.thinned == rendered.left_out == 0
    stored = MetricSeries.objects.filter(run__in=runs).order_by("run_id", "key")
    asked = histories(list(stored), max_points=400, timestamps=False)
    drawn = [trace["y"] for trace in rendered.figures[0].figure["data"]]
    assert drawn == [asked[series.pk].values for series in stored]
    client.force_login(world.viewer.user)
    page = client.get(f"/reports/{report.pk}/").content.decode()
    assert "data-budget-note" not in page and "Thinned" not in page


def test_it_plans_fairly_within_both_budgets():
    wide = budget.Lines(asked=5_000, counts=(1_000_000,) * 200, x="time")
    short = budget.Lines(asked=400, counts=(50, 100))
    small, first, second = budget.plan([short, wide, wide]).allowances
    assert not budget.thinned(short, small) and budget.thinned(wide, first)
    assert first == second and budget.MIN_LINE_POINTS <= first < 5_000
    spent = 2 * 200 * (budget.LINE_BYTES + (first + budget.ENDS) * budget.BYTES_PER_POINT["time"])
    assert spent <= budget.PAGE_FIGURE_BYTES
    crowded = budget.plan([budget.Lines(asked=5_000, counts=(10**6,) * 200)] * 50).allowances
    assert crowded.index(None) > 0 and set(crowded[crowded.index(None) :]) == {None}


# --- Share links are served from the cache -------------------------------------------------


def _link(world: World, report: Report) -> tuple[ShareLink, str]:
    found = selectors.report_get_for_user(world.owner.user, report.pk)
    return services.share_link_create(report=found, user=world.owner.user)


def _history_reads(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"] for q in queries if re.search(r"metricpoint|metricrollup|metricseries", q["sql"])
    ]


def test_it_serves_a_second_share_view_from_the_cache(world, django_assert_num_queries):
    runs = _runs(world, runs=2, metrics=2, steps=500)
    report = _report(world, f"run:{runs[0].pk}\n\n" + _chart(runs, metrics=2))
    _link_row, token = _link(world, report)
    anonymous = Client()
    with CaptureQueriesContext(connection) as first:
        assert anonymous.get(f"/s/{token}").status_code == 200
    assert _history_reads(first)
    with django_assert_num_queries(SHARE_CACHED_QUERIES) as second:
        page = anonymous.get(f"/s/{token}")
    assert page.status_code == 200 and not _history_reads(second)
    assert b"run-0" in page.content and b'data-figure="0"' in page.content


def test_it_draws_again_once_the_runs_get_new_points(world):
    runs = _runs(world, runs=1, metrics=1, steps=100)
    report = _report(world, _chart(runs, metrics=1))
    _link_row, token = _link(world, report)
    anonymous = Client()
    anonymous.get(f"/s/{token}")
    metrics_ingest(run=runs[0], points=[Point("m0", 100 + s, 0.5, 2e9) for s in range(50)])
    page = anonymous.get(f"/s/{token}").content.decode()
    assert '"last_step":149' in page.replace(" ", "")


def test_it_never_serves_a_revoked_link_or_an_edited_report_from_the_cache(world):
    report = _report(world, "# First words")
    link, token = _link(world, report)
    _other, other_token = _link(world, report)
    anonymous = Client()
    assert b"First words" in anonymous.get(f"/s/{token}").content  # now cached
    found = selectors.report_get_for_user(world.owner.user, report.pk)
    services.report_save(report=found, user=world.owner.user, revision=1, body="# Second words")
    page = anonymous.get(f"/s/{other_token}").content
    assert b"Second words" in page and b"First words" not in page
    link.report = found
    services.share_link_revoke(link=link, user=world.owner.user)
    assert anonymous.get(f"/s/{token}").status_code == 404
    assert anonymous.get(f"/s/{token}/blocks/0").status_code == 404


# --- Markdown render budget ----------------------------------------------------------------


def _at_most_size(unit: str) -> str:
    return (unit * (services.MAX_BODY // len(unit) + 1))[: services.MAX_BODY]


@pytest.mark.timeout(60)  # without the budget the first took minutes, the others seconds
@pytest.mark.parametrize(
    "unit",
    ["# heading\n", "***\n", "<ul>", "<div>x", "<blockquote>"],
    ids=["headings-without-blank-lines", "rules", "ul", "div", "blockquote"],
)
def test_it_shows_markdown_past_the_render_budget_as_text(unit):
    html, _source = markup.convert(_at_most_size(unit))
    assert html.startswith('<pre class="markdown-unrendered">')


def test_it_stops_highlighting_code_past_the_limit_and_renders_the_rest():
    many = _at_most_size("```python\nprint(1)\n```\n\n")
    html, _source = markup.convert(many)
    assert '<code class="language-python">print(1)' in html and "highlight" not in html
    few = "```python\nprint(1)\n```\n" * markup.MAX_HIGHLIGHTED
    assert markup.convert(few)[0].count('<div class="highlight">') == markup.MAX_HIGHLIGHTED
