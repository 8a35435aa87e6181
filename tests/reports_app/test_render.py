"""Report rendering: Markdown features, Labbook blocks and their error boxes, sanitizing."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

import plotly.graph_objects as go
import pytest

from reports_app import blocks, markup, render, services
from reports_app.models import Report
from tests.conftest import World
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run


def _run(world: World, name: str, **fields) -> Run:
    return tracking_services.run_create(
        user=world.owner.user, project=world.project, name=name, **fields
    )


def _report(world: World, body: str) -> Report:
    return services.report_create(
        user=world.owner.user, project=_project(world), title="Findings", body=body
    )


def _project(world: World):
    from tracking import selectors

    return selectors.project_get_for_user(world.owner.user, "acme/mnist")


def _html(world: World, body: str) -> str:
    return render.render_report(_report(world, body)).html


def _errors(html: str) -> list[str]:
    boxes = re.findall(r'class="block-error[^"]*"[^>]*>(.*?)</(?:div|span)>', html)
    return [unescape(re.sub(r"<[^>]+>", "", box)) for box in boxes]


# --- Markdown ----------------------------------------------------------------------


def test_it_renders_tables_code_toc_footnotes_and_task_lists(world):
    html = _html(
        world,
        "[TOC]\n\n# Results\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n"
        "```python\nprint('hi')\n```\n\n- [x] done\n- [ ] todo\n\nSee[^1].\n\n[^1]: A note.\n",
    )
    assert '<h1 id="r-results">Results</h1>' in html
    assert '<a href="#r-results"' in html  # the table of contents, with prefixed anchors
    assert '<td align="right">2</td>' in html
    assert '<div class="highlight"><pre>' in html and '<span class="nb">print</span>' in html
    assert '<input type="checkbox" disabled="" checked="">' in html
    assert 'id="r-fn:1"' in html and 'href="#r-fn:1"' in html


def test_inline_run_links_carry_their_status(world):
    run = _run(world, "resnet")
    html = _html(world, f"Best: run:{run.pk}; gone: run:999999; code: `run:{run.pk}`.")
    assert f'<a class="run-ref" href="/acme/mnist/runs/{run.pk}">resnet</a>' in html
    assert '<span class="badge badge-running">running</span>' in html
    assert "run:999999 not found" in html
    assert f"<code>run:{run.pk}</code>" in html


def test_a_share_link_names_runs_without_linking_them(world):
    run = _run(world, "resnet")
    report = _report(world, f"run:{run.pk}")
    html = render.render_report(report, public=True).html
    assert "resnet" in html and "/runs/" not in html


# --- Blocks --------------------------------------------------------------------------


def test_a_chart_block_becomes_a_plotly_figure_per_run_and_metric(world):
    a, b = _run(world, "a", tags=["sweep"]), _run(world, "b", tags=["sweep"])
    for run in (a, b):
        metrics_ingest(
            run=run, points=[Point("loss", s, 1 / (s + 1), 100.0 + s) for s in range(50)]
        )
    report = _report(
        world,
        "```chart\nruns: {tags: [sweep]}\nmetrics: [loss]\nlog_y: true\ntitle: Loss\n"
        "smoothing: 0.5\nmax_points: 20\n```",
    )
    rendered = render.render_report(report)
    assert '<div class="plot" data-figure="0" role="img" aria-label="Chart: Loss">' in rendered.html
    (figure,) = rendered.figures
    traces = figure.figure["data"]
    assert [t["name"] for t in traces] == ["b", "a"]  # newest run first
    assert [t["meta"]["run"] for t in traces] == [b.pk, a.pk]
    assert all(t["meta"]["last_step"] == 49 for t in traces)
    assert len(traces[0]["x"]) <= 22  # downsampled to max_points (plus both ends)
    assert figure.figure["layout"]["yaxis"]["type"] == "log"
    assert figure.figure["layout"]["legend"]["orientation"] == "v"  # beside: height holds
    assert figure.smoothing == 0.5 and figure.live is True
    go.Figure(figure.figure)  # plotly's own validators accept the whole figure
    assert rendered.live_runs == sorted([a.pk, b.pk])
    assert rendered.live_projects == ["acme/mnist"]  # a selector: new runs may join


def test_a_grouped_chart_names_each_lines_groups_for_the_page_to_draw(world):
    runs = [
        _run(world, f"lr-{i}", config={"lr": lr}, tags=["sweep"])
        for i, lr in enumerate(["1e-3", 0.001, 0.01, 0.01])
    ]
    runs.append(_run(world, "no-lr", tags=["sweep"]))
    for run in runs:
        metrics_ingest(run=run, points=[Point(k, s, 1.0, 1.0 + s) for s in range(5) for k in "ab"])
    report = _report(
        world,
        "```chart\nruns: {tags: [sweep]}\nmetrics: [a]\ngroup_by: config.lr\nband: minmax\n```"
        "\n\n```chart\nruns: {tags: [sweep]}\nmetrics: [a, b]\ngroup_by: tags\n```",
    )
    one, two = render.render_report(report).figures

    assert one.figure["layout"]["meta"] == {
        "group_by": "config.lr",
        "band": "minmax",
        "marked_up_to": 30,
    }
    groups = {t["name"]: t["meta"]["groups"] for t in one.figure["data"]}
    # "1e-3" (as MLflow logs a param) and 0.001 are one group; a run without the key is "(none)"
    assert groups == {
        "no-lr": ["(none)"],
        "lr-3": ["0.01"],
        "lr-2": ["0.01"],
        "lr-1": ["0.001"],
        "lr-0": ["0.001"],
    }
    assert two.figure["layout"]["meta"]["band"] == "std"  # the default
    assert {tuple(t["meta"]["groups"]) for t in two.figure["data"]} == {
        ("sweep · a",),
        ("sweep · b",),
    }
    go.Figure(one.figure)  # plotly accepts the layout's meta


def test_a_metric_x_axis_sends_each_line_the_points_of_that_metric(world):
    run = _run(world, "a")
    points = [Point("loss", s, 1 / (s + 1), 1.0 + s) for s in range(0, 50, 5)]
    points += [Point("epoch", s, s / 20, 1.0 + s) for s in range(0, 50, 20)]
    metrics_ingest(run=run, points=points)
    report = _report(world, f"```chart\nruns: [{run.pk}]\nmetrics: [loss]\nx: epoch\n```")
    (figure,) = render.render_report(report).figures
    (trace,) = figure.figure["data"]  # the x metric is read, not drawn
    assert trace["x"] == list(range(0, 50, 5))  # steps: the page places them (valueAt)
    assert trace["meta"]["x_of"] == {"steps": [0, 20, 40], "values": [0.0, 1.0, 2.0]}
    assert figure.figure["layout"]["xaxis"]["title"]["text"] == "epoch"
    assert figure.x == "epoch"
    go.Figure(figure.figure)


def test_a_short_series_marks_its_points_so_a_single_point_shows(world):
    one, long = _run(world, "one"), _run(world, "long")
    metrics_ingest(run=one, points=[Point("val/acc", 3, 0.91, 1.0)])
    metrics_ingest(run=long, points=[Point("val/acc", s, 0.5, 1.0 + s) for s in range(200)])
    report = _report(world, f"```chart\nruns: [{one.pk}, {long.pk}]\nmetrics: [val/acc]\n```")
    (figure,) = render.render_report(report).figures
    modes = {t["name"]: t["mode"] for t in figure.figure["data"]}
    assert modes == {"one": "lines+markers", "long": "lines"}
    go.Figure(figure.figure)


def test_explicit_runs_do_not_watch_for_new_runs(world):
    run = _run(world, "a")
    metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1.0)])
    rendered = render.render_report(
        _report(world, f"```chart\nruns: [{run.pk}]\nmetrics: loss\n```")
    )
    assert rendered.live_runs == [run.pk] and rendered.live_projects == []


def test_a_frozen_chart_keeps_the_data_of_its_save(world):
    run = _run(world, "a")
    metrics_ingest(run=run, points=[Point("loss", s, 1.0, 1.0) for s in range(3)])
    report = _report(world, f"```chart\nruns: [{run.pk}]\nmetrics: [loss]\nlive: false\n```")
    metrics_ingest(run=run, points=[Point("loss", s, 1.0, 1.0) for s in range(3, 10)])
    frozen = report.revisions.get(number=1).frozen
    rendered = render.render_report(report, frozen=frozen)
    assert len(rendered.figures[0].figure["data"][0]["x"]) == 3
    assert rendered.live_runs == []
    assert "Frozen when the report was saved." in rendered.html


def test_runs_and_compare_blocks_draw_tables(world):
    a = _run(world, "a", config={"lr": 0.1, "bs": 32}, tags=["x"])
    b = _run(world, "b", config={"lr": 0.2, "bs": 32}, tags=["x"])
    metrics_ingest(run=a, points=[Point("acc", 0, 0.5, 1.0)])
    html = _html(
        world,
        "```runs\nruns: {tags: [x]}\ncolumns: [config.lr, summary.acc]\n```\n\n"
        f"```compare\nruns: [{a.pk}, {b.pk}]\n```",
    )
    assert f'href="/acme/mnist/runs/{a.pk}">a</a>' in html
    assert f'data-summary-run="{a.pk}" data-summary-key="acc">0.5</td>' in html
    assert '<tr class="differs"><th scope="row">lr</th><td>0.1</td><td>0.2</td></tr>' in html
    assert '<tr class="same"><th scope="row">bs</th>' in html


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("```chart\nmetrics: [loss]\n```", "Say which runs"),
        ("```chart\nruns: [1\n```", "not valid YAML"),
        ("```chart\n- a\n- b\n```", "`option: value`"),
        (
            "```chart\nruns: [RUN]\nmetrics: [loss]\ncolour: red\n```",
            "Unknown chart option `colour`",
        ),
        ("```chart\nruns: [RUN]\n```", "`metrics` is required"),
        ("```chart\nruns: [RUN]\nmetrics: [loss]\nx: wall\n```", "logged `wall`, the x axis"),
        (
            "```chart\nruns: [RUN]\nmetrics: [loss]\nsmoothing: 2\n```",
            "`smoothing` must be a number",
        ),
        (
            "```chart\nruns: [RUN]\nmetrics: [loss]\nlive: maybe\n```",
            "`live` must be true or false",
        ),
        ("```chart\nruns: [RUN]\nmetrics: [nope]\n```", "None of these runs logged `nope`"),
        ("```chart\nruns: [999999]\nmetrics: [loss]\n```", "Run 999999 is not a run of team acme"),
        ("```chart\nruns: {project: rival/secret}\nmetrics: [loss]\n```", "not in team acme"),
        ("```chart\nruns: {tags: [no-such-tag]}\nmetrics: [loss]\n```", "No run matches"),
        ("```runs\nruns: [RUN]\ncolumns: [lr]\n```", "`columns` names `lr`; write"),
        ("```compare\nruns: [true]\n```", "Run ids are positive whole numbers"),
        ("```chart\nruns: {limit: 500, tags: [a]}\nmetrics: [loss]\n```", "`runs.limit` must be"),
        (f"```chart\nruns: {list(range(1, 202))}\nmetrics: [loss]\n```", "At most 200 runs"),
        ("```chart\nruns: [RUN]\nmetrics: [loss]\nband: std\n```", "add `group_by`"),
        (
            "```chart\nruns: [RUN]\nmetrics: [loss]\ngroup_by: group\nband: iqr\n```",
            "`band` must be one of std, minmax, none",
        ),
        (
            "```chart\nruns: [RUN]\nmetrics: [loss]\ngroup_by: summary.acc\n```",
            "`group_by` names `summary.acc`; write `config.<key>`",
        ),
    ],
)
def test_a_bad_block_becomes_an_error_box_naming_the_problem(world, body, message):
    run = _run(world, "a")
    metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1.0)])
    html = _html(world, "Before.\n\n" + body.replace("RUN", str(run.pk)) + "\n\nAfter.")
    (error,) = _errors(html)
    assert message in error
    assert "<p>Before.</p>" in html and "<p>After.</p>" in html


def test_another_teams_run_is_never_drawn(world):
    rival = tracking_services.project_create(
        user=world.outsider.user, team_slug="rival", slug="secret"
    )
    theirs = tracking_services.run_create(user=world.outsider.user, project=rival, name="theirs")
    metrics_ingest(run=theirs, points=[Point("loss", 0, 1.0, 1.0)])
    rendered = render.render_report(
        _report(world, f"```chart\nruns: [{theirs.pk}]\nmetrics: [loss]\n```\n\nrun:{theirs.pk}")
    )
    assert rendered.figures == [] and "theirs" not in rendered.html


# --- Query counts --------------------------------------------------------------------------


def _chart_report(world: World, charts: int, runs: list[Run]) -> Report:
    ids = ", ".join(str(run.pk) for run in runs)
    blocks = [f"```chart\nruns: [{ids}]\nmetrics: [loss, acc]\n```" for _ in range(charts)]
    blocks.append("```chart\nruns: {tags: [q]}\nmetrics: [loss]\n```")
    blocks.append(f"```runs\nruns: [{ids}]\ncolumns: [summary.loss]\n```")
    return _report(world, "\n\n".join(blocks))


def test_rendering_costs_the_same_queries_for_1_and_20_charts(world, django_assert_max_num_queries):
    runs = [_run(world, f"r{i}", tags=["q"]) for i in range(5)]
    for run in runs:
        metrics_ingest(
            run=run,
            points=[Point(k, s, float(s), float(s)) for k in ("loss", "acc") for s in range(300)],
        )
    counts = []
    for charts in (1, 20):
        report = _chart_report(world, charts, runs)
        with django_assert_max_num_queries(12) as queries:
            rendered = render.render_report(report)
        assert len(rendered.figures) == charts + 1 and not rendered.errors
        counts.append(len(queries))
    assert counts[0] == counts[1]


# --- Sanitizing ------------------------------------------------------------------------------

XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<img src=javascript:alert(1)>",
    '<img src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=">',
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<svg><script>alert(1)</script></svg>",
    "<iframe src=https://evil.example></iframe>",
    "<object data=javascript:alert(1)></object>",
    "<embed src=javascript:alert(1)>",
    "<a href=javascript:alert(1)>x</a>",
    "<a href=JaVaScRiPt:alert(1)>x</a>",
    "<a href='&#106;avascript:alert(1)'>x</a>",
    "<a href='java&#x09;script:alert(1)'>x</a>",
    "<a href=' javascript:alert(1)'>x</a>",
    "<a href=vbscript:msgbox(1)>x</a>",
    "<a href=data:text/html,<script>alert(1)</script>>x</a>",
    "[click](javascript:alert(1))",
    "[click](JAVASCRIPT:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![img](javascript:alert(1))",
    '![img](x" onerror="alert(1))',
    "[x](<javascript:alert(1)>)",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<p style=color:red onclick=alert(1)>x</p>",
    "<body onload=alert(1)>",
    "<form action=javascript:alert(1)><button>x</button></form>",
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>x</details>",
    "<math><mi xlink:href=javascript:alert(1)>x</mi></math>",
    "<style>*{display:none}</style>",
    "<link rel=stylesheet href=https://evil.example/x.css>",
    "<meta http-equiv=refresh content='0;url=javascript:alert(1)'>",
    "<base href=https://evil.example/>",
    "<table background=javascript:alert(1)><tr><td>x</td></tr></table>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<scr<script>ipt>alert(1)</script>",
    "<!--<img src=x onerror=alert(1)>-->",
    '<h2 id="report-config">clobber</h2>',
    "<a href=# id=charts-config>x</a>",
]
SAFE_TAGS = markup.TAGS


class _Checker(HTMLParser):
    """Walks rendered HTML as a browser would and records anything that could run code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SAFE_TAGS:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            url = re.sub(r"[\x00-\x20]", "", value or "").lower()
            if name.startswith("on") or name in ("style", "srcdoc", "formaction"):
                self.problems.append(f"attribute {name}")
            elif name in ("href", "src") and re.match(r"(javascript|vbscript|data):", url):
                self.problems.append(f"{name}={value}")
            elif name == "id" and not (value or "").startswith("r-"):
                self.problems.append(f"unprefixed id {value}")


def assert_safe(html: str) -> None:
    checker = _Checker()
    checker.feed(html)
    assert checker.problems == [], (checker.problems, html)


@pytest.mark.parametrize("payload", XSS)
def test_no_payload_survives_sanitizing(world, payload):
    html = _html(world, f"# Title {payload}\n\n{payload}\n\n- {payload}\n\n> {payload}\n")
    assert_safe(html)
    assert 'id="report-config"' not in html and 'id="charts-config"' not in html


@pytest.mark.parametrize("payload", XSS)
def test_comments_markdown_is_sanitized_too(payload):
    assert_safe(markup.to_html(payload))


def test_a_body_cannot_forge_a_block_placeholder(world):
    html, source = markup.convert("LBBLOCK0000X0 and <p>LBBLOCKX0</p>")
    assert source.blocks == []
    assert "LBBLOCK0000X0" in html  # left as the text it is


def test_comments_show_labbook_blocks_as_code():
    html = markup.to_html("Try:\n\n```chart\nruns: [1]\nmetrics: [<b>loss</b>]\n```\n")
    assert '<pre><code class="language-chart">runs: [1]\nmetrics: [&lt;b&gt;loss&lt;/b&gt;]' in html


def test_blocks_past_the_limit_are_error_boxes_not_queries(world, django_assert_max_num_queries):
    runs_block = "```runs\nruns: {project: acme/mnist}\n```\n\n"
    report = _report(world, "# Many\n")
    body = runs_block * (blocks.MAX_BLOCKS + 3)  # a preview is not limited at save time
    with django_assert_max_num_queries(blocks.MAX_BLOCKS + 5):  # one a block, up to the limit
        html = render.render_report(report, body=body).html
    past = [e for e in _errors(html) if "at most" in e]
    assert [e.rsplit(" ", 1)[-1] for e in past] == ["51.", "52.", "53."]
