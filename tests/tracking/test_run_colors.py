"""One colour per run, the same wherever it is drawn (``Run.project_index``, ``kernel.charts``).

A run's colour comes from its place in its project, fixed at its creation: the
run page, the compare page, the runs table and a report's chart and blocks
all draw it alike, and runs added later never change an earlier run's colour.
"""

from __future__ import annotations

import json
import re

from kernel.charts import COLORS, PALEST, _luminance, run_color
from reports_app import services as report_services
from reports_app.render import render_report
from tests.conftest import World
from tracking import selectors, services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run


def _runs(world: World, count: int, project=None) -> list[Run]:
    project = project or world.project
    return [
        services.run_create(user=world.owner.user, project=project, name=f"run-{i}")
        for i in range(count)
    ]


def test_the_palette_holds_40_distinct_colours_none_too_pale():
    assert len(COLORS) >= 40
    assert len(set(COLORS)) == len(COLORS)
    assert all(_luminance(color) < PALEST for color in COLORS)


def test_a_projects_runs_are_numbered_in_order_and_each_project_starts_at_0(world):
    first = _runs(world, 3)
    other = services.project_create(user=world.owner.user, team_slug="acme", slug="other")
    elsewhere = _runs(world, 2, other)
    assert [run.project_index for run in first] == [0, 1, 2]
    assert [run.project_index for run in elsewhere] == [0, 1]


def test_a_sweep_of_40_runs_gets_40_colours_and_later_runs_change_none(world):
    sweep = _runs(world, 40)
    colors = [run_color(run.project_index) for run in sweep]
    assert len(set(colors)) == 40
    _runs(world, 5)
    again = [run_color(Run.objects.get(pk=run.pk).project_index) for run in sweep]
    assert again == colors


def _config(page: str, script: str) -> dict:
    found = re.search(rf'<script id="{script}" type="application/json">(.*?)</script>', page, re.S)
    assert found, script
    return json.loads(found.group(1))


def test_a_run_has_the_same_colour_on_every_page_and_in_reports(client, world):
    runs = _runs(world, 3)
    for run in runs:
        metrics_ingest(
            run=run, points=[Point("loss", s, 1.0 / (s + 1), float(s)) for s in range(5)]
        )
    third = runs[2]
    expected = run_color(third.project_index)
    client.force_login(world.owner.user)
    run_page = client.get(third.get_absolute_url()).content.decode()
    assert _config(run_page, "charts-config")["runs"][0]["color"] == expected
    ids = f"{runs[2].pk},{runs[0].pk}"  # another order, another position: the same colour
    compare = client.get(f"/acme/mnist/compare?runs={ids}").content.decode()
    assert [r["color"] for r in _config(compare, "charts-config")["runs"]] == [
        expected,
        run_color(runs[0].project_index),
    ]
    table = client.get("/acme/mnist/").content.decode()
    assert f'style="background: {expected}" data-run-color="{third.pk}"' in table
    body = f"```chart\nruns: [{runs[0].pk}, {third.pk}]\nmetrics: [loss]\n```"
    project = selectors.project_at(world.owner.user, "acme", "mnist")  # with the owner's role
    report = report_services.report_create(
        project=project, user=world.owner.user, title="Colours", body=body
    )
    (figure,) = render_report(report).figures
    colors = {t["meta"]["run"]: t["line"]["color"] for t in figure.figure["data"]}
    assert colors[third.pk] == expected
