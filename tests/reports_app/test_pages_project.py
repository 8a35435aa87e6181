"""The project page: the runs table with sorting, filters, columns, pagination and compare."""

from __future__ import annotations

import re

import pytest

from tests.conftest import World
from tracking import services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run

URL = "/acme/mnist/"


@pytest.fixture
def viewer_client(client, world: World):
    client.force_login(world.viewer.user)
    return client


def _run(world: World, name: str, **fields) -> Run:
    return services.run_create(user=world.owner.user, project=world.project, name=name, **fields)


def _make_runs(world: World, count: int) -> list[Run]:
    runs = []
    for i in range(count):
        run = _run(world, f"run-{i:03d}", tags=["sweep"], config={"lr": i / 1000})
        metrics_ingest(run=run, points=[Point("loss", 0, 1.0 / (i + 1), 1.0)])
        runs.append(run)
    return runs


def _names(page: str) -> list[str]:
    return re.findall(r'<a href="/acme/mnist/runs/\d+">([^<]+)</a>', page)


def _get(client, query: str = "") -> str:
    response = client.get(URL + query)
    assert response.status_code == 200
    return response.content.decode()


def test_it_shows_a_viewer_the_runs_table(viewer_client, world):
    run = _run(world, "alpha", tags=["baseline"])
    page = _get(viewer_client)
    assert f'<tr data-run-id="{run.pk}">' in page
    assert f'href="/acme/mnist/runs/{run.pk}"' in page
    assert 'class="badge badge-running"' in page
    assert "baseline" in page
    assert f'name="runs" value="{run.pk}"' in page
    assert "Compare selected" in page


def test_it_hides_the_project_from_outsiders(client, world):
    _run(world, "alpha")
    client.force_login(world.outsider.user)
    assert client.get(URL).status_code == 404
    assert client.get("/acme/nope/").status_code == 404
    assert client.get("/rival/mnist/").status_code == 404


def test_it_redirects_anonymous_visitors_to_login(client, world):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_it_sorts_by_a_clicked_column(viewer_client, world):
    for name in ("bravo", "alpha", "charlie"):
        _run(world, name)
    assert _names(_get(viewer_client)) == ["charlie", "alpha", "bravo"]  # newest first
    page = _get(viewer_client, "?sort=name")
    assert _names(page) == ["alpha", "bravo", "charlie"]
    assert 'href="?sort=-name"' in page  # clicking again reverses
    assert _names(_get(viewer_client, "?sort=-name")) == ["charlie", "bravo", "alpha"]


def test_it_ignores_an_unknown_sort(viewer_client, world):
    _run(world, "alpha")
    assert _names(_get(viewer_client, "?sort=password")) == ["alpha"]


def test_it_filters_by_status_tag_and_text(viewer_client, world):
    failed = _run(world, "broken", tags=["gpu"], notes="diverged at step 10")
    services.run_update(run=failed, data={"status": "failed"})
    _run(world, "fine", tags=["cpu"])
    assert _names(_get(viewer_client, "?status=failed")) == ["broken"]
    assert _names(_get(viewer_client, "?status=running&status=failed")) == ["fine", "broken"]
    assert _names(_get(viewer_client, "?tag=cpu")) == ["fine"]
    assert _names(_get(viewer_client, "?q=diverged")) == ["broken"]
    assert "No runs match these filters" in _get(viewer_client, "?q=nothing-like-this")


def test_it_shows_chosen_config_and_summary_columns(viewer_client, world):
    run = _run(world, "alpha", config={"lr": 0.0003, "optimizer": "adam"})
    metrics_ingest(run=run, points=[Point("loss", 5, 0.25, 1.0)])
    page = _get(viewer_client)
    assert "config.lr" in page  # offered as an available column
    assert "summary.loss" in page
    page = _get(viewer_client, "?columns=config.lr,summary.loss,bogus")
    assert (
        'href="?columns=config.lr%2Csummary.loss%2Cbogus&amp;sort=config.lr">'
        '<span class="col-source">config</span>lr</a>' in page
    )
    assert '<span class="col-source">summary</span>loss</a></th>' in page
    assert '<td class="num cell" title="0.0003">0.0003</td>' in page
    summary_cell = f'data-summary-run="{run.pk}" data-summary-key="loss">0.25</td>'
    assert summary_cell in page  # marked so live updates find it
    assert ">bogus</th>" not in page


def test_it_remembers_columns_per_project_in_the_session(viewer_client, world):
    _run(world, "alpha", config={"lr": 0.5})
    _get(viewer_client, "?columns=config.lr")
    assert '<td class="num cell" title="0.5">0.5</td>' in _get(viewer_client)
    assert viewer_client.session[f"labbook.columns.{world.project.pk}"] == ["config.lr"]
    other = services.project_create(user=world.owner.user, team_slug="acme", slug="cifar")
    services.run_create(user=world.owner.user, project=other, name="c", config={"lr": 0.5})
    elsewhere = viewer_client.get("/acme/cifar/").content.decode()
    assert (
        '<td class="num cell" title="0.5">0.5</td>' not in elsewhere
    )  # remembered for acme/mnist only
    _get(viewer_client, "?columns=")
    assert '<td class="num cell" title="0.5">0.5</td>' not in _get(viewer_client)


def test_it_paginates_by_50(viewer_client, world):
    _make_runs(world, 55)
    first = _get(viewer_client, "?sort=name")
    assert len(_names(first)) == 50
    assert "Page 1 of 2" in first
    assert 'href="?sort=name&amp;page=2"' in first
    second = _get(viewer_client, "?sort=name&page=2")
    assert _names(second) == [f"run-{i:03d}" for i in range(50, 55)]
    assert _names(_get(viewer_client, "?sort=name&page=99")) == _names(second)


def test_it_sends_selected_runs_to_the_compare_page(viewer_client, world):
    a, b = _run(world, "a"), _run(world, "b")
    response = viewer_client.get(URL, {"runs": [a.pk, b.pk, "x"], "compare": "1"})
    assert response.status_code == 302
    assert response["Location"] == f"/acme/mnist/compare?runs={a.pk},{b.pk}"
    refused = viewer_client.get(URL, {"compare": "1"}, follow=True)
    assert "Select at least one run" in refused.content.decode()


def test_it_builds_run_links_in_one_place(world):
    run = _run(world, "a")
    assert run.get_absolute_url() == f"/acme/mnist/runs/{run.pk}"
    assert world.project.get_absolute_url() == URL


def test_it_shows_how_to_log_the_first_run(viewer_client, world):
    page = _get(viewer_client)
    assert 'sdk.init(project="acme/mnist"' in page


# session, user, project, saved views, the picker's config keys and metric keys, count,
# runs, tags, metric series, teams in the top bar; then the session save (3)
PROJECT_QUERIES = 14


def _page_queries(client, django_assert_max_num_queries) -> int:
    with django_assert_max_num_queries(PROJECT_QUERIES) as queries:
        response = client.get(URL, {"columns": "config.lr,summary.loss", "sort": "name"})
        assert response.status_code == 200
    return len(queries)


def test_it_costs_the_same_queries_for_3_and_60_runs(
    viewer_client, world, django_assert_max_num_queries
):
    _make_runs(world, 3)
    few = _page_queries(viewer_client, django_assert_max_num_queries)
    _make_runs(world, 57)
    viewer_client.get(URL, {"columns": ""})  # the next request saves the session again
    assert _page_queries(viewer_client, django_assert_max_num_queries) == few


def test_it_shows_a_nan_last_value_as_nan(client, world):
    from tracking import services
    from tracking.ingest import Point, metrics_ingest

    run = services.run_create(user=world.owner.user, project=world.project, name="diverged")
    metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1.0), Point("loss", 1, None, 2.0)])
    client.force_login(world.viewer.user)
    page = client.get("/acme/mnist/?columns=summary.loss").content.decode()
    assert ">NaN<" in page.replace(" ", "").replace("\n", "")


# --- Compare and bulk tags by POST ---------------------------------------------------


def test_it_sends_runs_ticked_in_the_table_to_compare(viewer_client, world):
    a, b = _run(world, "a"), _run(world, "b")
    response = viewer_client.post(URL, {"runs": [a.pk, b.pk], "compare": "1"})
    assert response.status_code == 302
    assert response["Location"] == f"/acme/mnist/compare?runs={a.pk},{b.pk}"


def test_it_lets_an_editor_tag_and_untag_the_ticked_runs(client, world):
    a, b, c = _run(world, "a"), _run(world, "b", tags=["old"]), _run(world, "c")
    client.force_login(world.editor.user)
    form = {"runs": [a.pk, b.pk], "tag_action": "add", "tag": "best", "back": "?sort=name"}
    response = client.post(URL + "?sort=name", form)
    assert response.status_code == 302 and response["Location"] == URL + "?sort=name"
    assert [services.run_tags(r) for r in (a, b, c)] == [["best"], ["best", "old"], []]
    assert "Tags updated on 2 runs." in client.get(URL).content.decode()
    client.post(URL, {"runs": [b.pk], "tag_action": "remove", "tag": "old"})
    assert services.run_tags(b) == ["best"]


def test_it_shows_bulk_tag_controls_to_editors_only(client, world):
    _run(world, "a")
    client.force_login(world.viewer.user)
    assert 'name="tag_action"' not in _get(client)
    client.force_login(world.editor.user)
    assert 'name="tag_action"' in _get(client)


def test_it_refuses_bulk_tags_from_a_viewer(viewer_client, world):
    a = _run(world, "a")
    response = viewer_client.post(URL, {"runs": [a.pk], "tag_action": "add", "tag": "x"})
    assert response.status_code == 403
    assert services.run_tags(a) == []


def test_it_cannot_tag_runs_of_another_team(client, world):
    rival = services.project_create(user=world.outsider.user, team_slug="rival", slug="secret")
    theirs = services.run_create(user=world.outsider.user, project=rival, name="theirs")
    client.force_login(world.editor.user)
    client.post(URL, {"runs": [theirs.pk], "tag_action": "add", "tag": "pwned"})
    assert services.run_tags(theirs) == []


def test_it_explains_a_bulk_tag_without_runs_or_tag(client, world):
    a = _run(world, "a")
    client.force_login(world.editor.user)
    client.post(URL, {"tag_action": "add", "tag": "x"})
    assert "Select at least one run." in _get(client)
    client.post(URL, {"runs": [a.pk], "tag_action": "add", "tag": " "})
    assert services.run_tags(a) == []
    assert "Type the tag to add or remove." in _get(client)


def test_it_sorts_by_a_config_or_summary_column_with_missing_values_last(viewer_client, world):
    for name, lr, loss in [("a", 0.1, 3.0), ("b", 0.003, None), ("c", None, 1.0), ("d", 2, 2.0)]:
        run = _run(world, name, config={} if lr is None else {"lr": lr})
        if loss is not None:
            metrics_ingest(run=run, points=[Point("loss", 0, loss, 1.0)])
    columns = "?columns=config.lr,summary.loss&sort="
    assert _names(_get(viewer_client, columns + "config.lr")) == ["b", "a", "d", "c"]
    assert _names(_get(viewer_client, columns + "-config.lr")) == ["d", "a", "b", "c"]
    assert _names(_get(viewer_client, columns + "summary.loss")) == ["c", "d", "a", "b"]
    assert _names(_get(viewer_client, columns + "-summary.loss")) == ["a", "d", "c", "b"]
    page = _get(viewer_client, columns + "-summary.loss")
    assert 'aria-sort="descending"><a class="sort sort-desc"' in page
    assert _names(_get(viewer_client, columns + "config.x';drop")) == ["a", "b", "c", "d"]
