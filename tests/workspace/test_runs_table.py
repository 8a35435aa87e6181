"""The runs table's working surface: default columns, the column picker's offer, value
filters, grouping with aggregates, select all matching, and saved views."""

from __future__ import annotations

import re

import pytest

from tests.conftest import World
from tracking import services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run, SavedView

URL = "/acme/mnist/"


def _run(world: World, name: str, *, metrics=None, **fields) -> Run:
    run = services.run_create(user=world.owner.user, project=world.project, name=name, **fields)
    points = [Point(key, 0, value, 1.0) for key, value in (metrics or {}).items()]
    if points:
        metrics_ingest(run=run, points=points)
    return run


@pytest.fixture
def sweep(world: World) -> World:
    for i, (optimizer, lr, acc) in enumerate(
        [("adam", 1e-3, 0.9), ("adam", 1e-4, 0.8), ("sgd", 1e-2, 0.6), ("sgd", 1e-3, 0.7)]
    ):
        _run(
            world,
            f"run-{i}",
            config={"optimizer": {"name": optimizer}, "lr": lr},
            tags=["sweep"] if i < 3 else [],
            metrics={"val/acc": acc, "train/loss": 1 - acc, "system/cpu": 50.0},
        )
    _run(world, "eval-only", metrics={"val/acc": 0.5})
    return world


@pytest.fixture
def editor_client(client, world):
    client.force_login(world.editor.user)
    return client


def _page(client, query: dict | str = "") -> str:
    response = client.get(URL, query) if isinstance(query, dict) else client.get(URL + query)
    assert response.status_code == 200, response
    return response.content.decode()


def _names(page: str) -> list[str]:
    return re.findall(r'<a href="/acme/mnist/runs/\d+">([^<]+)</a>', page)


def _headers(page: str) -> list[str]:
    return re.findall(r'<th scope="col" class="num column" title="([^"]+)"', page)


def test_it_shows_the_most_logged_metrics_by_default_and_no_machine_metrics(editor_client, sweep):
    assert _headers(_page(editor_client)) == ["summary.val/acc", "summary.train/loss"]


def test_a_choice_of_no_columns_is_kept(editor_client, sweep):
    _page(editor_client, "?columns=")
    assert _headers(_page(editor_client)) == []


def test_the_picker_offers_flattened_config_and_every_metric_chosen_ones_first(
    editor_client, sweep
):
    page = _page(editor_client, "?columns=summary.train/loss,config.lr")
    offered = re.findall(r'<li draggable="(true|false)" data-column="([^"]+)"', page)
    assert offered == [
        ("true", "summary.train/loss"),
        ("true", "config.lr"),
        ("false", "config.optimizer.name"),  # the nested value by its path, not raw JSON
        ("false", "summary.system/cpu"),
        ("false", "summary.val/acc"),
    ]
    assert "config.optimizer</" not in page


def test_the_picker_submits_columns_in_the_order_of_its_list(editor_client, sweep):
    # The form sends one ``columns`` per ticked box, in the list's order.
    page = editor_client.get(URL, {"columns": ["", "config.lr", "summary.val/acc"]})
    assert _headers(page.content.decode()) == ["config.lr", "summary.val/acc"]


def test_a_value_filter_narrows_the_table(editor_client, sweep):
    page = _page(
        editor_client, {"filter": "summary.val/acc >= 0.7 and config.optimizer.name = adam"}
    )
    assert sorted(_names(page)) == ["run-0", "run-1"]
    assert "2 runs matching" in page


def test_a_bad_value_filter_is_explained_beside_the_field_and_filters_nothing(editor_client, sweep):
    page = _page(editor_client, {"filter": "summary.val/acc > high"})
    assert 'aria-invalid="true"' in page
    assert "compares numbers" in page
    assert len(_names(page)) == 5


def test_grouping_by_a_config_value_counts_and_aggregates(editor_client, sweep):
    page = _page(
        editor_client, {"group_by": "config.optimizer.name", "aggregate": "summary.val/acc"}
    )
    groups = re.findall(r'<tbody class="run-group" data-group="([^"]+)">', page)
    assert groups == ["adam", "sgd", "(none)"]
    adam = page[page.index('data-group="adam"') : page.index('data-group="sgd"')]
    assert "2 runs" in adam
    assert re.search(r'data-stat="mean">0.85<', adam)
    assert re.search(r'data-stat="min">0.8<', adam) and re.search(r'data-stat="max">0.9<', adam)
    only = re.search(r'<a class="group-only" href="([^"]+)"', adam)[1].replace("&amp;", "&")
    assert sorted(_names(_page(editor_client, only))) == ["run-0", "run-1"]


def test_grouping_by_tag_puts_a_run_in_each_of_its_tags(editor_client, sweep):
    page = _page(editor_client, {"group_by": "tags"})
    assert re.findall(r'data-group="([^"]+)"', page) == ["sweep", "(none)"]
    assert "3 runs" in page and "2 runs" in page


def test_grouping_by_a_number_orders_numerically(editor_client, sweep):
    page = _page(editor_client, {"group_by": "config.lr"})
    assert re.findall(r'data-group="([^"]+)"', page) == ["0.0001", "0.001", "0.01", "(none)"]


def test_select_all_matching_compares_every_match_not_only_the_page(editor_client, sweep):
    back = "?filter=config.optimizer.name+%3D+sgd"
    response = editor_client.post(URL, {"compare": "1", "all_matching": "1", "back": back})
    ids = Run.objects.filter(name__in=["run-2", "run-3"]).order_by("-created_at", "-id")
    assert response["Location"] == f"/acme/mnist/compare?runs={','.join(str(r.pk) for r in ids)}"


def test_select_all_matching_tags_every_match(editor_client, sweep):
    editor_client.post(
        URL,
        {"tag_action": "add", "tag": "checked", "all_matching": "1", "back": "?tag=sweep"},
    )
    tagged = Run.objects.filter(tag_rows__name="checked").values_list("name", flat=True)
    assert sorted(tagged) == ["run-0", "run-1", "run-2"]


def test_a_saved_view_reopens_for_a_teammate_from_its_link(client, sweep):
    editor_client = client
    client.force_login(sweep.editor.user)
    back = (
        "?filter=config.optimizer.name+%3D+adam&sort=name&group_by=tags&aggregate=summary.val%2Facc"
    )
    editor_client.get(URL + "?columns=config.lr")  # remembered in the editor's session
    saved = editor_client.post(URL, {"save_view": "1", "view_name": "Adam runs", "back": back})
    view = SavedView.objects.get(name="Adam runs")
    assert saved["Location"] == f"{URL}?view={view.pk}"
    client.force_login(sweep.viewer.user)  # a teammate: columns never chosen in their session
    opened = client.get(f"{URL}?view={view.pk}")
    assert opened.status_code == 302
    page = _page(client, opened["Location"].removeprefix(URL))
    assert sorted(_names(page)) == ["run-0", "run-1"]
    assert _headers(page) == ["config.lr"]
    assert '<option value="' + str(view.pk) + '" selected>Adam runs</option>' in page
    assert 'data-group="sweep"' in page  # grouped as saved


def test_saving_under_the_same_name_replaces_the_view(editor_client, sweep):
    for back in ("?tag=sweep", "?tag=other"):
        editor_client.post(URL, {"save_view": "1", "view_name": "Mine", "back": back})
    assert list(SavedView.objects.values_list("query", flat=True)) == [
        "tag=other&columns=summary.val%2Facc%2Csummary.train%2Floss"
    ]


def test_a_viewer_cannot_save_or_delete_views(client, sweep):
    client.force_login(sweep.editor.user)
    client.post(URL, {"save_view": "1", "view_name": "Kept", "back": "?tag=sweep"})
    view = SavedView.objects.get()
    client.force_login(sweep.viewer.user)
    client.post(URL, {"save_view": "1", "view_name": "Nope", "back": ""})
    client.post(URL, {"delete_view": str(view.pk), "back": ""})
    assert list(SavedView.objects.values_list("name", flat=True)) == ["Kept"]
    client.force_login(sweep.editor.user)
    client.post(URL, {"delete_view": str(view.pk), "back": ""})
    assert not SavedView.objects.exists()


def test_a_view_of_another_project_or_a_deleted_one_opens_nothing(editor_client, sweep):
    other = services.project_create(user=sweep.owner.user, team_slug="acme", slug="cifar")
    view = SavedView.objects.create(project=other, name="Theirs", query="tag=x&columns=")
    answer = editor_client.get(f"{URL}?view={view.pk}", follow=True)
    assert answer.redirect_chain[-1][0] == URL
    assert "That view no longer exists" in answer.content.decode()
    assert editor_client.get(f"{URL}?view=99999999999999999999").status_code == 302


def test_a_view_name_is_required_and_bounded(editor_client, sweep):
    answer = editor_client.post(URL, {"save_view": "1", "view_name": " ", "back": ""}, follow=True)
    assert "name" in answer.content.decode().lower()
    editor_client.post(URL, {"save_view": "1", "view_name": "x" * 101, "back": ""})
    assert not SavedView.objects.exists()


def test_grouping_by_a_boolean_reads_true_and_false_on_either_database(editor_client, world):
    for name, amp in [("a", True), ("b", False), ("c", True)]:
        _run(world, name, config={"amp": amp}, metrics={"val/acc": 0.5})
    page = _page(editor_client, {"group_by": "config.amp"})
    assert re.findall(r'data-group="([^"]+)"', page) == ["false", "true"]
    only = re.search(r'data-group="true".*?class="group-only" href="([^"]+)"', page, re.S)[1]
    assert sorted(_names(_page(editor_client, only.replace("&amp;", "&")))) == ["a", "c"]


def test_the_picker_skips_configs_too_large_to_read_for_their_keys(editor_client, world):
    _run(world, "huge", config={"blob": "x" * 70_000, "seen_only_here": 1})
    _run(world, "small", config={"lr": 0.1})
    page = _page(editor_client)
    assert 'data-column="config.lr"' in page
    assert 'data-column="config.seen_only_here"' not in page  # past 64 KB: not read for keys
    assert "huge" in _names(page)  # the run itself is listed as always
