"""The run page: overview, failure, config and summary, charts, notes and tags, CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import re

import pytest

from kernel.charts import MARKED_UP_TO
from tests.conftest import World
from tracking import services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run
from workspace import run_pages


def _run(world: World, name: str = "alpha", **fields) -> Run:
    return services.run_create(user=world.owner.user, project=world.project, name=name, **fields)


def _url(run: Run) -> str:
    return f"/acme/mnist/runs/{run.pk}"


def _login(client, world: World, persona: str):
    client.force_login(world.persona(persona).user)
    return client


def _get(client, run: Run) -> str:
    response = client.get(_url(run))
    assert response.status_code == 200
    return response.content.decode()


def _charts_config(page: str) -> dict:
    found = re.search(r'<script id="charts-config" type="application/json">(.*?)</script>', page)
    return json.loads(found.group(1))


def test_it_shows_a_viewer_the_overview(client, world):
    run = _run(
        world,
        host="gpu-box-2",
        command="python train.py --lr 0.1",
        git={"commit": "0123456789abcdef", "branch": "main", "remote": "git@github.com:acme/t.git"},
        config={"lr": 0.1, "optimizer": {"name": "adam", "beta1": 0.9}},
        tags=["baseline"],
        group="sweep-1",
    )
    page = _get(_login(client, world, "viewer"), run)
    assert f'data-status-run="{run.pk}">running</span>' in page
    assert "gpu-box-2" in page and "python train.py --lr 0.1" in page
    assert 'href="https://github.com/acme/t/commit/0123456789abcdef"' in page
    assert "<strong>sweep-1</strong>" in page and '<span class="tag">baseline</span>' in page
    assert '<th scope="row">optimizer.beta1</th><td>0.9</td>' in page  # nested config flattened
    assert "No metrics logged yet" in page
    assert 'id="comments"' in page and 'id="alerts"' in page


def test_it_hides_edit_controls_from_viewers(client, world):
    run = _run(world, notes="first try")
    page = _get(_login(client, world, "viewer"), run)
    assert 'data-edit="notes"' not in page and 'data-edit="tags"' not in page
    assert "first try" in page
    editor_page = _get(_login(client, world, "editor"), run)
    assert 'data-edit="notes"' in editor_page and 'data-edit="tags"' in editor_page


@pytest.mark.parametrize("persona", ["outsider"])
def test_it_hides_the_run_from_outsiders(client, world, persona):
    run = _run(world)
    assert _login(client, world, persona).get(_url(run)).status_code == 404
    assert client.get(f"{_url(run)}/metrics.csv?key=loss").status_code == 404


def test_it_sends_anonymous_visitors_to_log_in(client, world):
    response = client.get(_url(_run(world)))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_it_answers_404_when_the_url_names_another_project(client, world):
    run = _run(world)
    services.project_create(user=world.owner.user, team_slug="acme", slug="cifar")
    _login(client, world, "owner")
    assert client.get(f"/acme/cifar/runs/{run.pk}").status_code == 404
    assert client.get("/acme/mnist/runs/999999").status_code == 404


def test_it_shows_why_a_run_failed_with_the_tail_of_its_traceback(client, world):
    run = _run(world)
    lines = [f"  frame {i}" for i in range(60)] + ["ValueError: boom"]
    services.run_update(
        run=run,
        data={
            "status": "failed",
            "exit_code": 3,
            "error": "ValueError: boom",
            "traceback": "\n".join(lines),
        },
    )
    page = _get(_login(client, world, "viewer"), run)
    assert "The run failed" in page and "<code>ValueError: boom</code>" in page
    assert "Exit code 3" in page
    assert "frame 59" in page and "frame 0\n" not in page
    assert "21 earlier lines cut" in page


def test_it_draws_a_chart_per_metric_key(client, world):
    run = _run(world)
    metrics_ingest(
        run=run,
        points=[Point("train/loss", s, 1.0 / (s + 1), float(s)) for s in range(5)]
        + [Point("lr", 0, 0.1, 0.0), Point("grad", 0, math.inf, 0.0), Point("nan", 0, None, 0.0)],
    )
    page = _get(_login(client, world, "viewer"), run)
    assert '<article class="chart-card" data-key="train/loss">' in page
    assert '<article class="chart-card" data-key="lr">' in page
    assert f'href="/acme/mnist/runs/{run.pk}/metrics.csv?key=train%2Floss"' in page
    assert "/static/plotly/plotly-strict.min.js" in page
    config = _charts_config(page)
    # with what charts.js keeps up to date as points arrive; a line of a single run reads
    # 1,000 points at most (kernel.charts.line_points)
    assert config["charts"] == [
        {
            "key": "grad",
            "runs": [run.pk],
            "stats": {"min": "Infinity", "max": "Infinity", "count": 1},
            "maxPoints": 1000,
        },
        {
            "key": "lr",
            "runs": [run.pk],
            "stats": {"min": 0.1, "max": 0.1, "count": 1},
            "maxPoints": 1000,
        },
        {
            "key": "nan",
            "runs": [run.pk],
            "stats": {"min": None, "max": None, "count": 1},
            "maxPoints": 1000,
        },
        {
            "key": "train/loss",
            "runs": [run.pk],
            "stats": {"min": 0.2, "max": 1.0, "count": 5},
            "maxPoints": 1000,
        },
    ]
    assert config["markedUpTo"] == MARKED_UP_TO
    nan_card = page.split('data-key="nan"')[1].split("</header>")[0]
    assert "min <span data-stat-min>\N{EN DASH}</span>" in nan_card
    assert config["runs"][0]["id"] == run.pk
    assert config["histories"] == "/api/v1/metrics/KEY"  # one read a chart, all its runs
    # The summary cell of a metric is marked so live points update it.
    assert f'data-summary-run="{run.pk}" data-summary-key="train/loss">0.2</td>' in page


def test_it_lists_alerts_the_run_raised(client, world):
    run = _run(world)
    services.sdk_alert_raise(run=run, title="Loss exploded", text="at step 7", level="error")
    page = _get(_login(client, world, "viewer"), run)
    assert "Loss exploded" in page and "at step 7" in page


# --- Notes and tags -----------------------------------------------------------------


def test_it_lets_an_editor_save_notes_without_touching_last_seen(client, world):
    run = _run(world)
    seen = run.last_seen_at
    response = _login(client, world, "editor").post(_url(run), {"notes": "lr too high"})
    assert response.status_code == 302 and response["Location"] == _url(run)
    run.refresh_from_db()
    assert run.notes == "lr too high"
    assert run.last_seen_at == seen  # a note is not a sign of life from the training job
    assert "Notes saved." in client.get(_url(run)).content.decode()


HOSTILE_NOTES = (
    "# Findings\n\n**lr** too high <script>alert('x')</script>\n\n"
    "[click](javascript:alert(1)) <img src=x onerror=alert(2)>\n\n"
    '<a href="JaVaScRiPt:alert(3)">b</a>'
)


def _notes_view(page: str) -> str:
    found = re.search(
        r'<div class="notes-body comment-body" data-notes-view>(.*?)</div>', page, re.S
    )
    assert found, "no notes on the page"
    return found.group(1)


def _assert_harmless(html: str) -> None:
    lowered = html.lower()
    assert "<script" not in lowered and "javascript:" not in lowered
    assert "onerror" not in lowered and "alert(" not in lowered


def test_it_renders_notes_as_sanitized_markdown():
    html = run_pages.notes_html(Run(notes=HOSTILE_NOTES))
    assert '<h1 id="r-findings">Findings</h1>' in html and "<strong>lr</strong> too high" in html
    assert '<img src="x">' in html  # the image stays, its handler does not
    _assert_harmless(html)


def test_it_renders_no_notes_as_nothing():
    assert run_pages.notes_html(Run(notes="  \n ")) == ""


def test_it_shows_a_viewer_the_notes_rendered_and_nothing_to_edit_them(client, world):
    run = _run(world, notes=HOSTILE_NOTES)
    page = _get(_login(client, world, "viewer"), run)
    notes = _notes_view(page)
    assert "<strong>lr</strong>" in notes
    _assert_harmless(notes)
    assert "data-notes-edit" not in page and 'name="notes"' not in page


def test_it_says_when_there_are_no_notes(client, world):
    page = _get(_login(client, world, "viewer"), _run(world))
    assert '<p class="muted">No notes.</p>' in _notes_view(page)


def _save_notes_for_a_script(client, run: Run, notes: str):
    return client.post(_url(run), {"notes": notes}, headers={"Accept": "application/json"})


def test_it_answers_a_script_saving_notes_with_them_rendered(client, world):
    run = _run(world)
    response = _save_notes_for_a_script(_login(client, world, "editor"), run, HOSTILE_NOTES)
    assert response.status_code == 200
    body = response.json()
    assert body["notes"] == HOSTILE_NOTES and "<strong>lr</strong>" in body["html"]
    _assert_harmless(body["html"])
    run.refresh_from_db()
    assert run.notes == HOSTILE_NOTES
    assert body["html"].strip() == _notes_view(client.get(_url(run)).content.decode()).strip()


def test_it_answers_a_script_with_the_field_at_fault(client, world):
    run = _run(world, notes="keep")
    response = _save_notes_for_a_script(_login(client, world, "editor"), run, "x" * 100_001)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "notes"
    run.refresh_from_db()
    assert run.notes == "keep"


def test_it_refuses_a_viewer_saving_notes_from_a_script(client, world):
    run = _run(world, notes="keep")
    assert _save_notes_for_a_script(_login(client, world, "viewer"), run, "x").status_code == 403
    run.refresh_from_db()
    assert run.notes == "keep"


def test_it_lets_an_editor_replace_tags(client, world):
    run = _run(world, tags=["a", "b"])
    _login(client, world, "editor").post(_url(run), {"tags": "b, c ,, d"})
    assert services.run_tags(run) == ["b", "c", "d"]


def test_it_refuses_a_viewers_edit_and_changes_nothing(client, world):
    run = _run(world, notes="keep", tags=["keep"])
    response = _login(client, world, "viewer").post(_url(run), {"notes": "x", "tags": "x"})
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.notes == "keep" and services.run_tags(run) == ["keep"]


def test_it_explains_a_bad_tag_and_keeps_the_old_ones(client, world):
    run = _run(world, tags=["keep"])
    _login(client, world, "editor").post(_url(run), {"tags": "x" * 101})
    assert services.run_tags(run) == ["keep"]
    assert (
        "Could not save the tags: At most 100 characters." in client.get(_url(run)).content.decode()
    )


# --- Live state -------------------------------------------------------------------


def _state(client, run: Run) -> dict:
    response = client.get(f"{_url(run)}/state")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    return response.json()


def test_it_answers_the_state_of_a_running_run_as_ticking(client, world):
    run = _run(world)
    state = _state(_login(client, world, "viewer"), run)
    assert state["id"] == run.pk and state["status"] == "running" and state["ticking"] is True
    assert state["started"] == run.created_at.timestamp()
    assert state["href"] == f"{_url(run)}/state"
    assert set(state["parts"]) == {"badge", "failure", "facts"}
    assert f'data-status-run="{run.pk}">running</span>' in state["parts"]["badge"]


@pytest.mark.parametrize("status", ["finished", "failed", "crashed", "killed"])
def test_it_answers_an_ended_run_with_the_parts_a_reload_shows(client, world, status):
    run = _run(world, host="gpu-box-2")
    data = {"status": status, "exit_code": 0 if status == "finished" else 3, "error": "E: boom"}
    services.run_update(run=run, data=data)
    _login(client, world, "viewer")
    state = _state(client, run)
    page = _get(client, run)
    assert state["status"] == status and state["ticking"] is False
    for name, html in state["parts"].items():
        assert html.strip() in page, name
    assert f'data-status-run="{run.pk}">{status}</span>' in state["parts"]["badge"]
    assert "data-run-ended" in state["parts"]["facts"]
    assert ("The run" in state["parts"]["failure"]) == (status != "finished")


def test_it_answers_the_state_only_to_members(client, world):
    run = _run(world)
    assert _login(client, world, "outsider").get(f"{_url(run)}/state").status_code == 404
    client.logout()
    assert client.get(f"{_url(run)}/state").status_code == 302


def test_the_state_costs_a_fixed_number_of_queries(client, world, django_assert_max_num_queries):
    run = _run(world, tags=["a"])
    _login(client, world, "viewer")
    with django_assert_max_num_queries(3):  # session, user, run (+ role)
        _state(client, run)


# --- CSV --------------------------------------------------------------------------


def _csv(client, run: Run, key: str) -> list[list[str]]:
    response = client.get(f"{_url(run)}/metrics.csv", {"key": key})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_it_downloads_every_point_of_a_metric_as_csv(client, world, monkeypatch):
    monkeypatch.setattr(run_pages, "CSV_PAGE", 3)  # several database pages
    run = _run(world)
    points = [Point("val/loss", s, s / 2, 1000.0 + s) for s in range(8)]
    metrics_ingest(run=run, points=[*points, Point("val/loss", 8, None, 1008.0)])
    rows = _csv(_login(client, world, "viewer"), run, "val/loss")
    assert rows[0] == ["step", "value", "timestamp"]
    assert [int(r[0]) for r in rows[1:]] == list(range(9))
    assert rows[2] == ["1", "0.5", "1001.0"]
    assert rows[-1][1] == "NaN"


def test_it_answers_404_for_an_unknown_metric(client, world):
    run = _run(world)
    _login(client, world, "viewer")
    assert client.get(f"{_url(run)}/metrics.csv", {"key": "nope"}).status_code == 404
    assert client.get(f"{_url(run)}/metrics.csv").status_code == 404


# --- Query counts -----------------------------------------------------------------

# session, user, run (+ role), series, tags, SDK alerts, rule alerts, created_by, top bar teams
RUN_QUERIES = 11  # 9, and the versioned artifacts the run logged and used


def _page_queries(client, run: Run, django_assert_max_num_queries) -> int:
    with django_assert_max_num_queries(RUN_QUERIES) as queries:
        assert client.get(_url(run)).status_code == 200
    return len(queries)


def test_it_costs_the_same_queries_for_2_and_40_metrics(
    client, world, django_assert_max_num_queries
):
    run = _run(world, tags=["a"])
    services.sdk_alert_raise(run=run, title="one")
    metrics_ingest(run=run, points=[Point(f"m{i}", 0, 1.0, 1.0) for i in range(2)])
    _login(client, world, "viewer")
    few = _page_queries(client, run, django_assert_max_num_queries)
    metrics_ingest(run=run, points=[Point(f"m{i}", s, 1.0, 1.0) for i in range(40) for s in (1, 2)])
    services.run_annotate(run=run, tags=[f"t{i}" for i in range(20)])
    for i in range(5):
        services.sdk_alert_raise(run=run, title=f"alert {i}")
    assert _page_queries(client, run, django_assert_max_num_queries) == few


# --- Helpers ----------------------------------------------------------------------


def test_it_flattens_nested_config():
    assert run_pages.flatten({"a": {"b": {"c": 1}, "d": []}, "e": {}}) == {
        "a.b.c": 1,
        "a.d": [],
        "e": {},
    }


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("https://github.com/acme/t.git", "https://github.com/acme/t/commit/abcdef1"),
        ("git@gitlab.com:acme/sub/t.git", "https://gitlab.com/acme/sub/t/commit/abcdef1"),
        ("https://git.internal/acme/t.git", None),
        ("", None),
    ],
)
def test_it_links_commits_on_well_known_forges(remote, expected):
    assert run_pages.commit_url({"remote": remote, "commit": "abcdef1"}) == expected


def test_it_refuses_to_link_a_commit_that_is_not_a_hash():
    git = {"remote": "https://github.com/a/b", "commit": "javascript:alert(1)"}
    assert run_pages.commit_url(git) is None
