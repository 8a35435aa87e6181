"""Run-level panels in reports: scatter, bar, parallel coordinates and parameter importance.

Built from a small sweep whose summary metric depends on `lr` only (and a little on the
optimizer), so each panel's figure can be checked value by value.
"""

from __future__ import annotations

import math
import re
import statistics
from html import unescape

import pytest

from reports_app import blocks, importance, panels, render, services
from reports_app.models import ReportRevision
from tests.conftest import World
from tracking import selectors
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run

LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]


def _sweep(world: World) -> list[Run]:
    """12 runs: lr x optimizer; val/acc falls with log(lr), adam a little better; a noise key."""
    runs = []
    for index, (lr, optimizer) in enumerate((lr, o) for o in ("adam", "sgd") for lr in LRS):
        acc = 0.95 - 0.05 * math.log10(lr / 1e-4) + (0.01 if optimizer == "adam" else 0)
        runs.append(
            tracking_services.run_create(
                user=world.owner.user,
                project=world.project,
                name=f"sweep-{index}",
                # MLflow logs params as text: "0.001" must count as a number
                config={"lr": str(lr), "opt": {"name": optimizer}, "seed": (index * 7) % 5},
                summary={"val/acc": acc},
                tags=["sweep", optimizer],
                group=optimizer,
            )
        )
    return runs


def _render(world: World, body: str, *, public: bool = False) -> render.Rendered:
    project = selectors.project_get_for_user(world.owner.user, "acme/mnist")
    report = services.report_create(user=world.owner.user, project=project, title="S", body=body)
    return render.render_report(report, public=public)


def _figure(rendered: render.Rendered, index: int = 0) -> dict:
    assert not rendered.errors, rendered.errors
    return next(f for f in rendered.figures if f.block == index).figure


def _error_text(html: str) -> str:
    box = re.search(r'class="block-error[^"]*"[^>]*>(.*?)</div>', html, re.S)
    assert box, html
    return unescape(re.sub(r"<[^>]+>", "", box.group(1)))


SWEEP = "runs: {project: acme/mnist, tags: [sweep], limit: 200}"


# --- Importance: the statistics ------------------------------------------------------------


def test_epsilon_squared_matches_a_hand_computed_example():
    # groups a: 1, 2 and b: 3, 4 -> SS_total 5, SS_within 1, k 2, n 4: (4 - 1/2) / 5
    assert importance.epsilon_squared(["a", "a", "b", "b"], [1, 2, 3, 4]) == pytest.approx(0.7)


def test_epsilon_squared_is_none_without_spread_or_error_term():
    assert importance.epsilon_squared(["a", "b"], [1, 2]) is None  # a run per group
    assert importance.epsilon_squared(["a", "a", "b"], [1, 1, 1]) is None  # constant metric
    assert importance.epsilon_squared(["a", "a", "a"], [1, 2, 3]) is None  # one group


def test_epsilon_squared_of_a_key_unrelated_to_the_metric_is_clipped_to_zero():
    assert importance.epsilon_squared(["a", "b", "a", "b"], [1, 1, 2, 2]) == 0.0


def test_pearson_agrees_with_the_standard_library():
    xs = [0.1, 0.4, 0.2, 0.9, 0.5, 0.7]
    ys = [1.0, 2.5, 1.1, 4.2, 2.0, 3.9]
    assert importance.pearson(xs, ys) == pytest.approx(statistics.correlation(xs, ys))
    assert importance.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert importance.pearson([1, 1, 1], [3, 2, 1]) is None


def test_only_positive_numbers_spanning_a_hundredfold_get_a_log_axis():
    assert panels.spans_decades([1e-4, 0.5, None, 1e-2])
    assert not panels.spans_decades([1.0, 99.0])
    assert not panels.spans_decades([0.0, 1e-4, 1.0])  # zero has no logarithm
    assert not panels.spans_decades(["adam", 1e-4, 1.0])


def test_a_numeric_key_with_many_values_is_cut_into_five_groups_of_about_equal_size():
    labels = importance._bins([float(x) for x in range(20)])
    assert len(set(labels)) == importance.BINS
    assert sorted(labels.count(label) for label in set(labels)) == [4] * 5
    assert importance._bins([1.0, 2.0, 1.0]) == ["1.0", "2.0", "1.0"]  # few values: themselves


def test_fewer_than_three_runs_score_nothing():
    assert importance.of_key("lr", [0.1, 0.2], [1.0, 2.0]).importance is None


# --- Values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0.5, 0.5),
        (3, 3.0),
        ("0.001", 0.001),
        (" adam ", "adam"),
        ("NaN", None),
        (float("inf"), None),
        (True, "true"),
        ("", None),
        (None, None),
        ({}, None),
        ([1, 2], "[1, 2]"),
    ],
)
def test_a_value_is_a_number_a_category_or_nothing(raw, expected):
    assert panels.scalar(raw) == expected


# --- Block options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("scatter", "runs: [1]\ny: summary.acc", "`x` is required"),
        ("scatter", "runs: [1]\nx: lr\ny: summary.acc", "`x` names `lr`; write"),
        ("scatter", "runs: [1]\nx: config.lr\ny: summary.acc\nsize: 3", "Unknown scatter option"),
        ("bar", "runs: [1]\nvalue: summary.acc\ngroup_by: summary.x", "`group_by` names"),
        ("parallel", "runs: [1]\ncolumns: [config.lr]", "at least two axes"),
        ("importance", "runs: [1]\nmetric: summary.acc\ncolumns: [summary.x]", "`config.<key>`"),
        ("scatter", "runs: {tags: [a], limit: 201}\nx: config.a\ny: config.b", "from 1 to 200"),
        ("bar", f"runs: {list(range(1, 202))}\nvalue: summary.a", "At most 200 runs"),
        ("chart", "runs: {tags: [a], limit: 201}\nmetrics: [loss]", "from 1 to 200"),
        ("runs", "runs: {tags: [a], limit: 21}", "from 1 to 20"),
    ],
)
def test_bad_panel_options_name_the_problem(kind, text, message):
    with pytest.raises(blocks.BlockError) as raised:
        blocks.parse(kind, text)
    assert message in raised.value.message


def test_a_panel_takes_up_to_200_runs_and_100_by_default():
    many = blocks.parse("scatter", "runs: {tags: [a], limit: 200}\nx: config.a\ny: summary.b")
    assert many.runs.limit == 200
    default = blocks.parse("parallel", "runs: {tags: [a]}\ncolumns: [config.a, summary.b]")
    assert default.runs.limit == blocks.DEFAULT_PANEL_LIMIT == 100


# --- Figures ---------------------------------------------------------------------------------


def test_a_scatter_places_each_run_and_links_it(world):
    runs = _sweep(world)
    rendered = _render(
        world, f"```scatter\n{SWEEP}\nx: config.lr\ny: summary.val/acc\nlog_x: true\n```"
    )
    figure = _figure(rendered)
    (trace,) = figure["data"]
    by_name = dict(zip(trace["text"], zip(trace["x"], trace["y"], strict=True), strict=True))
    assert len(by_name) == 12
    assert by_name["sweep-2"] == (pytest.approx(1e-3), pytest.approx(runs[2].summary["val/acc"]))
    assert figure["layout"]["xaxis"]["type"] == "log"
    assert f"/acme/mnist/runs/{runs[0].pk}" in trace["customdata"]
    assert 'data-panel="scatter"' in rendered.html
    public = _figure(
        _render(world, f"```scatter\n{SWEEP}\nx: config.lr\ny: summary.val/acc\n```", public=True)
    )
    assert set(public["data"][0]["customdata"]) == {None}  # a share link links no run


def test_a_scatter_coloured_by_a_category_draws_a_trace_per_value(world):
    _sweep(world)
    body = f"```scatter\n{SWEEP}\nx: config.lr\ny: summary.val/acc\ncolor: config.opt.name\n```"
    figure = _figure(_render(world, body))
    assert sorted(trace["name"] for trace in figure["data"]) == ["adam", "sgd"]
    assert all(len(trace["x"]) == 6 for trace in figure["data"])


def test_runs_without_a_value_are_left_out_with_a_note(world):
    _sweep(world)
    tracking_services.run_create(
        user=world.owner.user, project=world.project, name="bare", tags=["sweep"]
    )
    rendered = _render(world, f"```scatter\n{SWEEP}\nx: config.lr\ny: summary.val/acc\n```")
    assert len(_figure(rendered)["data"][0]["x"]) == 12
    assert "1 of 13 runs have no `config.lr` or `summary.val/acc`: not drawn." in rendered.html


def test_bars_per_run_keep_runs_of_one_name_apart(world):
    _sweep(world)
    tracking_services.run_create(
        user=world.owner.user, project=world.project, name="sweep-0", tags=["sweep"],
        summary={"val/acc": 0.5},
    )  # fmt: skip
    figure = _figure(_render(world, f"```bar\n{SWEEP}\nvalue: summary.val/acc\n```"))
    (trace,) = figure["data"]
    assert len(trace["y"]) == 13
    assert figure["layout"]["xaxis"]["ticktext"].count("sweep-0") == 2


def test_bars_per_group_show_mean_and_standard_deviation(world):
    runs = _sweep(world)
    body = f"```bar\n{SWEEP}\nvalue: summary.val/acc\ngroup_by: config.opt.name\n```"
    (trace,) = _figure(_render(world, body))["data"]
    assert trace["x"] == ["adam", "sgd"]
    adam = [run.summary["val/acc"] for run in runs[:6]]
    mean = sum(adam) / 6
    std = math.sqrt(sum((a - mean) ** 2 for a in adam) / 5)
    assert trace["y"][0] == pytest.approx(mean)
    assert trace["error_y"]["array"][0] == pytest.approx(std)
    assert trace["customdata"][0] == [6, pytest.approx(min(adam)), pytest.approx(max(adam))]


def test_bars_by_tag_count_a_run_in_each_of_its_tags(world):
    _sweep(world)
    body = f"```bar\n{SWEEP}\nvalue: summary.val/acc\ngroup_by: tags\n```"
    (trace,) = _figure(_render(world, body))["data"]
    counts = dict(zip(trace["x"], [c[0] for c in trace["customdata"]], strict=True))
    assert counts == {"adam": 6, "sgd": 6, "sweep": 12}


def test_numeric_groups_sort_by_value(world):
    _sweep(world)
    body = f"```bar\n{SWEEP}\nvalue: summary.val/acc\ngroup_by: config.lr\n```"
    (trace,) = _figure(_render(world, body))["data"]
    assert [float(x) for x in trace["x"]] == LRS


def test_parallel_coordinates_map_categories_to_ticks_and_colour_by_the_metric(world):
    _sweep(world)
    body = (
        f"```parallel\n{SWEEP}\ncolumns: [config.lr, config.opt.name, summary.val/acc]\n"
        "color: summary.val/acc\n```"
    )
    (trace,) = _figure(_render(world, body))["data"]
    assert trace["type"] == "parcoords"
    lr, optimizer, acc = trace["dimensions"]
    # lr spans more than a hundredfold: its axis is logarithmic, ticked in powers of ten
    assert lr["label"] == "config.lr (log)"
    assert sorted(set(lr["values"])) == pytest.approx([math.log10(lr) for lr in LRS])
    assert lr["tickvals"] == [-4, -3, -2, -1] and lr["ticktext"] == [
        "0.0001",
        "0.001",
        "0.01",
        "0.1",
    ]
    assert optimizer["ticktext"] == ["adam", "sgd"] and set(optimizer["values"]) == {0, 1}
    assert trace["line"]["color"] == acc["values"] and trace["line"]["showscale"] is True


def test_parallel_coordinates_without_a_colour_draw_each_run_in_its_own(world):
    runs = _sweep(world)
    body = f"```parallel\n{SWEEP}\ncolumns: [config.lr, summary.val/acc]\n```"
    (trace,) = _figure(_render(world, body))["data"]
    scale = [color for _, color in trace["line"]["colorscale"]]
    newest_first = sorted(runs, key=lambda run: run.created_at, reverse=True)
    from kernel.charts import run_color

    assert scale == [run_color(run.project_index) for run in newest_first]


def test_importance_ranks_the_key_that_drives_the_metric_first(world):
    _sweep(world)
    body = f"```importance\n{SWEEP}\nmetric: summary.val/acc\n```"
    figure = _figure(_render(world, body))
    scores, correlations = figure["data"]
    ranked = list(reversed(scores["y"]))  # plotly draws the first bar lowest
    assert ranked[0] == "config.lr"
    assert scores["x"][-1] > 0.8 > max(x for x in scores["x"][:-1] if x is not None)
    assert correlations["x"][-1] < -0.8  # accuracy falls as lr grows
    assert set(ranked) == {"config.lr", "config.opt.name", "config.seed"}


def test_panels_with_nothing_to_draw_say_why(world):
    _sweep(world)
    html = _render(world, f"```scatter\n{SWEEP}\nx: config.nope\ny: summary.val/acc\n```").html
    assert _error_text(html) == (
        "scatter block, line 1: None of these 12 runs has both `config.nope` and `summary.val/acc`."
    )
    few = "runs: {project: acme/mnist, name: sweep-1?}"  # sweep-10 and sweep-11
    html = _render(world, f"```importance\n{few}\nmetric: summary.val/acc\n```").html
    assert "importance needs at least 3" in _error_text(html)


def test_run_names_are_escaped_in_panels(world):
    tracking_services.run_create(
        user=world.owner.user, project=world.project, name="<img src=x onerror=alert(1)>",
        config={"lr": 1}, summary={"acc": 1}, tags=["t"],
    )  # fmt: skip
    body = "```scatter\nruns: {tags: [t]}\nx: config.lr\ny: summary.acc\n```"
    (trace,) = _figure(_render(world, body))["data"]
    assert trace["text"] == ["&lt;img src=x onerror=alert(1)&gt;"]


def test_a_live_panel_subscribes_to_its_runs_and_the_keys_it_reads(world):
    runs = _sweep(world)
    rendered = _render(world, f"```scatter\n{SWEEP}\nx: config.lr\ny: summary.val/acc\n```")
    assert rendered.live_runs == sorted(run.pk for run in runs)
    assert rendered.live_keys[runs[0].pk] == {"val/acc"}
    assert rendered.live_projects == ["acme/mnist"]


def test_a_panel_reads_the_last_point_when_the_summary_lacks_the_key(world):
    run = tracking_services.run_create(
        user=world.owner.user, project=world.project, name="r", config={"lr": 0.1}, tags=["t"]
    )
    metrics_ingest(run=run, points=[Point("loss", 0, 0.5, 1.0), Point("loss", 1, 0.25, 2.0)])
    body = "```bar\nruns: {tags: [t]}\nvalue: summary.loss\n```"
    assert _figure(_render(world, body))["data"][0]["y"] == [0.25]


def test_a_frozen_panel_keeps_the_values_it_was_saved_with(world):
    runs = _sweep(world)
    project = selectors.project_get_for_user(world.owner.user, "acme/mnist")
    body = f"```bar\n{SWEEP}\nvalue: summary.val/acc\nlive: false\n```"
    report = services.report_create(user=world.owner.user, project=project, title="F", body=body)
    tracking_services.run_update(run=runs[0], data={"summary": {"val/acc": 0.01}})
    frozen = ReportRevision.objects.get(report=report, number=report.revision).frozen
    rendered = render.render_report(report, frozen=frozen)
    (trace,) = _figure(rendered)["data"]
    assert 0.01 not in trace["y"] and len(trace["y"]) == 12
    assert "Frozen when the report was saved." in rendered.html
    assert rendered.live_runs == []
