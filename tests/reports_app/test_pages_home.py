"""The home page: teams and projects, recent runs, runs that need attention, empty states."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from tests.conftest import World
from tracking import services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run


def _get_home(client, world: World, persona: str = "viewer") -> str:
    client.force_login(world.persona(persona).user)
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def _make_runs(world: World, count: int) -> list[Run]:
    runs = []
    for i in range(count):
        run = services.run_create(
            user=world.owner.user, project=world.project, name=f"run-{i}", tags=["a"]
        )
        metrics_ingest(run=run, points=[Point("loss", 0, 1.0 / (i + 1), 1.0)])
        runs.append(run)
    return runs


def test_it_lists_teams_and_projects_with_run_counts(client, world):
    _make_runs(world, 3)
    page = _get_home(client, world)
    assert "acme/mnist" in page
    assert 'href="/acme/mnist/"' in page
    assert "3 runs" in page


def test_it_links_recent_runs_to_their_run_page(client, world):
    run = services.run_create(user=world.owner.user, project=world.project, name="visible-run")
    page = _get_home(client, world)
    assert f'href="/acme/mnist/runs/{run.pk}"' in page
    assert f'data-run-id="{run.pk}"' in page
    assert 'class="badge badge-running"' in page


def test_it_hides_other_teams_runs(client, world):
    rival_project = services.project_create(user=world.outsider.user, team_slug="rival", slug="x")
    services.run_create(user=world.outsider.user, project=rival_project, name="secret-run")
    page = _get_home(client, world)
    assert "secret-run" not in page
    assert "rival/x" not in page


def test_it_flags_failed_runs_and_stalled_runs(client, world):
    failed = services.run_create(user=world.owner.user, project=world.project, name="boom")
    services.run_update(run=failed, data={"status": "failed", "error": "ValueError: boom"})
    stalled = services.run_create(user=world.owner.user, project=world.project, name="quiet")
    silent_for = settings.LABBOOK["RUN_CRASH_AFTER_SECONDS"] / 2 + 5
    Run.objects.filter(pk=stalled.pk).update(
        last_seen_at=timezone.now() - timedelta(seconds=silent_for)
    )
    services.run_create(user=world.owner.user, project=world.project, name="healthy")
    page = _get_home(client, world)
    attention = page.split("Needs attention")[1].split("Recent runs")[0]
    assert "boom" in attention
    assert "ValueError: boom" in attention
    assert "quiet" in attention
    assert "stalled?" in attention
    assert "healthy" not in attention


def test_it_leaves_out_failures_older_than_a_week(client, world):
    old = services.run_create(user=world.owner.user, project=world.project, name="ancient")
    services.run_update(run=old, data={"status": "crashed"})
    week_ago = timezone.now() - timedelta(days=8)
    Run.objects.filter(pk=old.pk).update(ended_at=week_ago, last_seen_at=week_ago)
    page = _get_home(client, world)
    assert "Nothing needs attention" in page


def test_it_tells_a_newcomer_how_to_get_started(client, django_user_model):
    newcomer = django_user_model.objects.create_user("dave")
    client.force_login(newcomer)
    page = client.get("/").content.decode()
    assert 'href="/settings/new-team/">create a team</a>' in page
    assert 'href="/settings/tokens/">API token</a>' in page
    assert "sdk.init(" in page


def test_it_says_when_a_team_has_no_runs(client, world):
    page = _get_home(client, world)
    assert "No runs yet" in page
    assert "Nothing needs attention" in page


def test_it_redirects_anonymous_visitors_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# session, user, teams, projects with counts, recent runs, attention, teams in the top bar
HOME_QUERIES = 7


def _home_queries(client, django_assert_max_num_queries) -> int:
    with django_assert_max_num_queries(HOME_QUERIES) as queries:
        assert client.get("/").status_code == 200
    return len(queries)


def test_it_costs_the_same_queries_for_3_and_60_runs(client, world, django_assert_max_num_queries):
    client.force_login(world.viewer.user)
    runs = _make_runs(world, 3)
    services.run_update(run=runs[0], data={"status": "failed"})
    few = _home_queries(client, django_assert_max_num_queries)
    runs += _make_runs(world, 57)
    for run in runs[1:30]:
        services.run_update(run=run, data={"status": "failed"})
    assert _home_queries(client, django_assert_max_num_queries) == few
