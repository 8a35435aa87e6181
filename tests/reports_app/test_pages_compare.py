"""The compare page: runs overlaid per metric and a config diff."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import World
from tracking import presentation, services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run

URL = "/acme/mnist/compare"


def _run(world: World, name: str, **fields) -> Run:
    return services.run_create(user=world.owner.user, project=world.project, name=name, **fields)


def _get(client, ids) -> str:
    response = client.get(URL, {"runs": ",".join(str(i) for i in ids)})
    assert response.status_code == 200
    return response.content.decode()


def _charts(page: str) -> list[dict]:
    found = re.search(r'<script id="charts-config" type="application/json">(.*?)</script>', page)
    return json.loads(found.group(1))["charts"]


def test_it_overlays_the_runs_on_one_chart_per_metric(client, world):
    a = _run(world, "a", config={"lr": 0.1, "bs": 64})
    b = _run(world, "b", config={"lr": 0.01, "bs": 64, "warmup": 10})
    metrics_ingest(run=a, points=[Point("loss", 0, 1.0, 1.0), Point("acc", 0, 0.5, 1.0)])
    metrics_ingest(run=b, points=[Point("loss", 0, 2.0, 1.0)])
    client.force_login(world.viewer.user)
    page = _get(client, [b.pk, a.pk])
    assert _charts(page) == [  # stats are a single run's; points per line by run count
        {"key": "acc", "runs": [a.pk], "stats": None, "maxPoints": 1000},
        {"key": "loss", "runs": [b.pk, a.pk], "stats": None, "maxPoints": 1000},  # as asked
    ]
    assert page.index(">b</a>") < page.index(">a</a>")
    assert "2 of 3 keys differ" in page
    assert '<tr class="same"><th scope="row">bs</th><td>64</td><td>64</td></tr>' in page
    assert '<tr class="differs"><th scope="row">lr</th><td>0.01</td><td>0.1</td></tr>' in page
    assert '<tr class="differs"><th scope="row">warmup</th><td>10</td><td>—</td></tr>' in page


def test_it_asks_for_two_runs(client, world):
    a = _run(world, "a")
    client.force_login(world.viewer.user)
    assert "Pick at least two runs" in _get(client, [a.pk])
    assert "Pick at least two runs" in _get(client, [])


def test_it_leaves_out_runs_of_other_projects_and_teams(client, world):
    a, b = _run(world, "a"), _run(world, "b")
    rival = services.project_create(user=world.outsider.user, team_slug="rival", slug="secret")
    hidden = services.run_create(user=world.outsider.user, project=rival, name="rival-secret-run")
    client.force_login(world.viewer.user)
    page = _get(client, [a.pk, hidden.pk, b.pk])
    assert "rival-secret-run" not in page
    assert "1 of the requested run is not in this project" in page


def test_it_compares_a_sweep_of_200_runs_and_no_more(client, world):
    runs = [_run(world, f"r{i:03d}") for i in range(201)]
    for run in runs:
        metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1.0)])
    client.force_login(world.viewer.user)
    page = _get(client, [run.pk for run in runs])
    assert "Only the first 200 runs are compared." in page
    assert ">r199</a>" in page and ">r200</a>" not in page
    (chart,) = _charts(page)
    assert len(chart["runs"]) == 200
    assert chart["maxPoints"] == 200  # 40,000 points a chart, shared by its lines


def _config(page: str) -> dict:
    found = re.search(r'<script id="charts-config" type="application/json">(.*?)</script>', page)
    return json.loads(found.group(1))


def test_runs_can_be_grouped_by_what_puts_two_of_them_together(client, world):
    a = _run(world, "a", config={"lr": "1e-3", "seed": 1, "bs": 64}, group="g1", tags=["x"])
    b = _run(world, "b", config={"lr": 0.001, "seed": 2, "bs": 64}, group="g1")
    c = _run(world, "c", config={"lr": 0.01, "seed": 3, "bs": 64}, group="g2", tags=["x", "y"])
    client.force_login(world.viewer.user)

    page = _get(client, [a.pk, b.pk, c.pk])
    config = _config(page)
    # lr puts a and b together; a seed differs on every run and bs on none: no choice
    assert config["groupBy"] == "" and config["band"] == "std"
    groups = {run["name"]: run["groups"] for run in config["runs"]}
    assert groups["a"] == {"group": ["g1"], "tags": ["x"], "config.lr": ["0.001"]}
    assert groups["b"] == {"group": ["g1"], "tags": ["(none)"], "config.lr": ["0.001"]}
    assert groups["c"] == {"group": ["g2"], "tags": ["x", "y"], "config.lr": ["0.01"]}
    assert '<select id="chart-group" data-chart-group>' in page
    assert '<select id="chart-band" data-chart-band disabled>' in page

    response = client.get(
        URL, {"runs": f"{a.pk},{b.pk},{c.pk}", "group_by": "config.lr", "band": "minmax"}
    )
    picked = _config(response.content.decode())
    assert (picked["groupBy"], picked["band"]) == ("config.lr", "minmax")
    assert '<option value="config.lr" selected>' in response.content.decode()
    odd = client.get(URL, {"runs": f"{a.pk},{b.pk}", "group_by": "config.seed", "band": "x"})
    assert (_config(odd.content.decode())["groupBy"], _config(odd.content.decode())["band"]) == (
        "",
        "std",
    )


def test_it_hides_the_project_from_outsiders(client, world):
    a, b = _run(world, "a"), _run(world, "b")
    client.force_login(world.outsider.user)
    assert client.get(URL, {"runs": f"{a.pk},{b.pk}"}).status_code == 404


# session, user, project (+ role), runs, tags, metric series, teams in the top bar
COMPARE_QUERIES = 7


def test_it_costs_the_same_queries_for_2_and_20_runs(client, world, django_assert_max_num_queries):
    runs = []
    for i in range(20):
        run = _run(world, f"r{i}", config={"lr": i}, tags=["x"])
        metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1.0), Point("acc", 0, 1.0, 1.0)])
        runs.append(run)
    client.force_login(world.viewer.user)
    counts = []
    for chosen in (runs[:2], runs):
        with django_assert_max_num_queries(COMPARE_QUERIES) as queries:
            _get(client, [run.pk for run in chosen])
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_it_flags_a_key_missing_from_one_run_as_differing():
    rows = presentation.diff_rows([{"a": 1, "b": None}, {"a": 1}])
    assert [(row.key, row.differs) for row in rows] == [("a", False), ("b", True)]


# --- Sweep panels ----------------------------------------------------------------------------


def _sweep_config(page: str) -> list[dict]:
    found = re.search(r'<script id="sweep-config" type="application/json">(.*?)</script>', page)
    return json.loads(found.group(1)) if found else []


def _sweep_runs(world: World) -> list[Run]:
    return [
        _run(world, f"s{i}", config={"lr": lr, "bs": 32 * (1 + i % 2), "seed": i},
             summary={"acc": 0.9 - lr, "loss": lr})
        for i, lr in enumerate((0.1, 0.2, 0.3, 0.4))
    ]  # fmt: skip


def test_the_sweep_shows_a_scatter_parallel_coordinates_and_importance(client, world):
    runs = _sweep_runs(world)
    client.force_login(world.viewer.user)
    page = _get(client, [run.pk for run in runs])
    panels = _sweep_config(page)
    assert [panel["figure"]["data"][0]["type"] for panel in panels] == [
        "scatter",
        "parcoords",
        "bar",
    ]
    scatter = panels[0]["figure"]["data"][0]
    assert scatter["x"] == [32, 64, 32, 64]
    assert scatter["y"] == pytest.approx([0.8, 0.7, 0.6, 0.5])
    assert scatter["customdata"][0] == runs[0].get_absolute_url()  # a click opens the run
    labels = [dimension["label"] for dimension in panels[1]["figure"]["data"][0]["dimensions"]]
    assert labels == ["config.bs", "config.lr", "config.seed", "summary.acc"]
    assert "acc by config.bs" in page  # the first differing key is the default x
    assert "<option selected>summary.acc</option>" in page


def test_the_reader_picks_the_sweeps_metric_and_x(client, world):
    runs = _sweep_runs(world)
    client.force_login(world.viewer.user)
    ids = ",".join(str(run.pk) for run in runs)
    response = client.get(URL, {"runs": ids, "metric": "summary.loss", "x": "config.lr"})
    page = response.content.decode()
    scatter = _sweep_config(page)[0]["figure"]["data"][0]
    assert scatter["y"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert "<option selected>summary.loss</option>" in page
    assert "<option selected>config.lr</option>" in page
    unknown = client.get(URL, {"runs": ids, "metric": "summary.<script>", "x": "config.nope"})
    assert unknown.status_code == 200
    assert "<option selected>summary.acc</option>" in unknown.content.decode()  # the default


def test_a_sweep_panel_with_nothing_to_draw_says_why(client, world):
    a = _run(world, "a", config={"lr": 0.1}, summary={"acc": 0.5})
    b = _run(world, "b", config={"lr": 0.2}, summary={"acc": 0.6})
    client.force_login(world.viewer.user)
    page = _get(client, [a.pk, b.pk])
    assert "2 of these runs have a number for `summary.acc`; importance needs at least 3." in page
    assert len(_sweep_config(page)) == 2


def test_no_sweep_without_config_or_summary(client, world):
    a, b = _run(world, "a"), _run(world, "b")
    client.force_login(world.viewer.user)
    page = _get(client, [a.pk, b.pk])
    assert 'id="sweep-title"' not in page and _sweep_config(page) == []
