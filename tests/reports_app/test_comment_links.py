"""Mentions and run references in comment bodies: badges and links, only for the team's own."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reports_app import comments
from reports_app import services as report_services
from reports_app.models import Comment, Report
from tests.conftest import Persona, World
from tracking import services
from tracking.models import Run

pytestmark = pytest.mark.django_db

URL = "/api/v1/comments"


@pytest.fixture
def run(world: World) -> Run:
    return services.run_create(user=world.editor.user, project=world.project, name="baseline")


@pytest.fixture
def rival_run(world: World) -> Run:
    rival_project = services.project_create(
        user=world.outsider.user, team_slug="rival", slug="secret"
    )
    return services.run_create(user=world.outsider.user, project=rival_project, name="hidden")


def say(persona: Persona, target: str, body: str) -> Comment:
    found = comments.target_get_for_user(persona.user, target)
    return comments.comment_create(user=persona.user, target=found, body=body)


def html_of(persona: Persona, target: str, body: str) -> str:
    return comments.comment_data(say(persona, target, body))["body_html"]


def name_user(persona: Persona, **fields: str) -> None:
    get_user_model().objects.filter(pk=persona.user.pk).update(**fields)


# --- Mentions ------------------------------------------------------------------------------


def test_it_badges_a_mentioned_member_with_their_name(world: World, run: Run) -> None:
    name_user(world.editor, first_name="Bob", last_name="Builder")
    html = html_of(world.viewer, f"run:{run.pk}", "@bob please look.")
    assert html == '<p><span class="mention" title="Bob Builder">@bob</span> please look.</p>'


def test_it_badges_a_member_mentioned_by_email_in_any_case(world: World, run: Run) -> None:
    name_user(world.editor, email="bob@example.com")
    html = html_of(world.viewer, f"run:{run.pk}", "ask @Bob@Example.com")
    assert '<span class="mention" title="bob">@Bob@Example.com</span>' in html


@pytest.mark.parametrize("name", ["nobody", "mallory", "Bob"])
def test_it_leaves_a_name_that_is_no_member_plain(world: World, run: Run, name: str) -> None:
    # mallory exists but is in another team; usernames are matched exactly
    html = html_of(world.viewer, f"run:{run.pk}", f"@{name} hi")
    assert html == f"<p>@{name} hi</p>"


def test_it_leaves_a_deactivated_member_plain(world: World, run: Run) -> None:
    name_user(world.editor, is_active=False)
    assert html_of(world.viewer, f"run:{run.pk}", "@bob hi") == "<p>@bob hi</p>"


def test_it_badges_no_mention_in_code_or_inside_a_link(world: World, run: Run) -> None:
    body = "`@bob` and\n\n```\n@bob\n```\n\n[@bob](https://example.com/) [x](mailto:@carol)"
    html = html_of(world.viewer, f"run:{run.pk}", body)
    assert "mention" not in html
    assert '<a href="https://example.com/" rel="noopener noreferrer nofollow">@bob</a>' in html
    assert 'href="mailto:@carol"' in html


def test_it_badges_a_member_on_a_report_as_on_a_run(world: World) -> None:
    report = report_services.report_create(
        user=world.owner.user, project=world.project, title="Findings"
    )
    html = html_of(world.viewer, f"report:{report.pk}", "thanks @alice")
    assert '<span class="mention" title="alice">@alice</span>' in html


# --- Run references ------------------------------------------------------------------------


def test_it_links_a_run_of_the_team_with_its_name_and_status(world: World, run: Run) -> None:
    html = html_of(world.viewer, f"run:{run.pk}", f"better than run:{run.pk}.")
    assert html == (
        f'<p>better than <a class="run-ref" href="/acme/mnist/runs/{run.pk}">baseline</a>'
        ' <span class="badge badge-running">running</span>.</p>'
    )


def test_it_leaves_another_teams_run_and_a_missing_one_plain(
    world: World, run: Run, rival_run: Run
) -> None:
    html = html_of(world.viewer, f"run:{run.pk}", f"see run:{rival_run.pk} and run:999999")
    assert html == f"<p>see run:{rival_run.pk} and run:999999</p>"
    assert "hidden" not in html


def test_it_keeps_a_run_reference_in_a_link_target_plain(world: World, run: Run) -> None:
    html = html_of(world.viewer, f"run:{run.pk}", f"[x](https://example.com/?q=run:{run.pk})")
    assert html == (
        f'<p><a href="https://example.com/?q=run:{run.pk}" rel="noopener noreferrer nofollow">'
        "x</a></p>"
    )


# --- Hostile names -------------------------------------------------------------------------


def test_no_html_gets_in_through_a_members_name_or_a_run_name(world: World) -> None:
    name_user(world.editor, first_name='"><img src=x onerror=alert(1)>', last_name="<b>")
    evil = services.run_create(
        user=world.editor.user, project=world.project, name="<script>alert(1)</script>"
    )
    html = html_of(world.viewer, f"run:{evil.pk}", f"@bob run:{evil.pk}")
    assert "<img" not in html and "<script" not in html and "<b>" not in html
    assert 'title="&quot;&gt;&lt;img src=x onerror=alert(1)&gt; &lt;b&gt;"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</a>" in html


def test_a_body_cannot_forge_a_badge(world: World, run: Run) -> None:
    body = '<span class="mention">@mallory</span> @bob"><script>x</script> LBMENTION0X0 LBRUN0X1'
    html = html_of(world.viewer, f"run:{run.pk}", body)
    assert "<script" not in html
    assert html.count('class="mention"') == 1  # @bob's; the raw span loses the class
    assert "<span>@mallory</span>" in html
    assert "LBMENTION0X0 LBRUN0X1" in html


# --- Cost ----------------------------------------------------------------------------------


def test_it_lists_linked_comments_in_a_constant_number_of_queries(
    world: World, run: Run, rival_run: Run
) -> None:
    other = services.run_create(user=world.editor.user, project=world.project, name="other")
    people = [world.owner, world.editor, world.viewer]

    def listed() -> tuple[int, list[dict]]:
        client = world.viewer.client()
        client.get(URL, {"target": f"run:{run.pk}"})  # the token's first use is recorded
        with CaptureQueriesContext(connection) as queries:
            response = client.get(URL, {"target": f"run:{run.pk}"})
        assert response.status_code == 200
        return len(queries), response.json()

    def add(count: int) -> None:
        for i in range(count):
            ref = (run, other, rival_run)[i % 3].pk
            say(people[i % 3], f"run:{run.pk}", f"@{people[(i + 1) % 3].name} run:{ref} @x{i}")

    add(3)
    few, answer = listed()
    assert few <= 5  # the token, the run, the comments, their members, their runs
    add(27)
    many, answer = listed()
    assert many == few
    links = [re.findall(r'class="(mention|run-ref)"', c["body_html"]) for c in answer]
    assert links[:3] == [["mention", "run-ref"], ["mention", "run-ref"], ["mention"]]


def test_a_comment_without_mentions_or_runs_costs_no_lookup(world: World, run: Run) -> None:
    comment = say(world.viewer, f"run:{run.pk}", "plain words, an a@b.co address")
    with CaptureQueriesContext(connection) as queries:
        comments.comment_data(comment)
    assert len(queries) == 0


def test_a_report_comments_list_links_in_two_lookups(world: World, run: Run) -> None:
    report: Report = report_services.report_create(
        user=world.owner.user, project=world.project, title="Findings"
    )
    for i in range(5):
        say(world.editor, f"report:{report.pk}", f"@alice run:{run.pk} #{i}")
    target = comments.target_get_for_user(world.viewer.user, f"report:{report.pk}")
    listed = list(comments.comments_for(target))
    with CaptureQueriesContext(connection) as queries:
        data = comments.comments_data(listed, target)
    assert len(queries) == 2
    assert all('class="mention"' in c["body_html"] and "run-ref" in c["body_html"] for c in data)
