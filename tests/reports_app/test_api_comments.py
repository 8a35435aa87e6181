"""The comments API: /api/v1/comments and /api/v1/comments/<id>, and the run page using it."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from labbook.celery import app as celery_app
from reports_app import comments
from reports_app.models import Comment
from tests.conftest import Persona, World
from tracking import services
from tracking.models import Run

pytestmark = pytest.mark.django_db

URL = "/api/v1/comments"


@pytest.fixture
def run(world: World) -> Run:
    return services.run_create(user=world.editor.user, project=world.project, name="baseline")


def post(persona: Persona, data: Any) -> Any:
    return persona.client().post(URL, data, format="json")


def comment(persona: Persona, run: Run, body: str = "Looks good", **extra: Any) -> dict:
    response = post(persona, {"target": f"run:{run.pk}", "body": body, **extra})
    assert response.status_code == 201, response.json()
    return response.json()


def listed(persona: Persona, run: Run) -> Any:
    return persona.client().get(URL, {"target": f"run:{run.pk}"})


def error_of(response: Any) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["field"]


# --- Creating and listing ------------------------------------------------------------------


def test_it_creates_a_viewers_comment(world: World, run: Run) -> None:
    data = comment(world.viewer, run, "**Loss** spikes at step 40")
    assert data == {
        "id": data["id"],
        "target": f"run:{run.pk}",
        "parent": None,
        "anchor": "",
        "author": "carol",
        "body": "**Loss** spikes at step 40",
        "body_html": "<p><strong>Loss</strong> spikes at step 40</p>",
        "deleted": False,
        "created_at": data["created_at"],
        "edited_at": None,
        "resolved_at": None,
        "resolved_by": None,
    }


def test_it_lists_threads_oldest_first(world: World, run: Run) -> None:
    root = comment(world.viewer, run, "first")
    reply = comment(world.editor, run, "reply", parent=root["id"])
    answer = comment(world.viewer, run, "reply to reply", parent=reply["id"])
    response = listed(world.owner, run)
    assert response.status_code == 200
    assert [(c["id"], c["parent"]) for c in response.json()] == [
        (root["id"], None),
        (reply["id"], root["id"]),
        (answer["id"], root["id"]),
    ]


def test_it_lists_in_a_constant_number_of_queries(world: World, run: Run) -> None:
    def count_queries() -> int:
        client = world.viewer.client()
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL, {"target": f"run:{run.pk}"}).status_code == 200
        return len(queries)

    target = comments.target_get_for_user(world.owner.user, f"run:{run.pk}")
    people = [world.owner, world.editor, world.viewer]
    for i in range(3):
        comments.comment_create(user=people[i % 3].user, target=target, body=f"c{i}")
    count_queries()  # the first request of a token also records when it was used
    few = count_queries()
    assert few <= 3  # the token, the run with its access check, the comments with authors
    root = comments.comment_get_for_user(world.owner.user, Comment.objects.first().pk)
    comments.comment_resolve(user=world.owner.user, comment=root)
    for i in range(27):
        made = comments.comment_create(
            user=people[i % 3].user, target=target, body=f"c{i}", parent=root.pk
        )
        if i % 5 == 0:
            comments.comment_delete(user=made.author, comment=made)
    assert count_queries() == few


def test_it_sanitizes_what_it_answers(world: World, run: Run) -> None:
    data = comment(world.viewer, run, "<img src=x onerror=alert(1)> [x](javascript:alert(1))")
    assert "onerror" not in data["body_html"] and "javascript:" not in data["body_html"]
    assert listed(world.viewer, run).json()[0]["body_html"] == data["body_html"]


# --- Outsiders and bad input -------------------------------------------------------------------


def test_it_answers_an_outsider_as_if_nothing_existed(world: World, run: Run) -> None:
    existing = comment(world.viewer, run)
    client = world.outsider.client()
    for real, missing in [
        (client.get(URL, {"target": f"run:{run.pk}"}), client.get(URL, {"target": "run:999999"})),
        (post(world.outsider, {"target": f"run:{run.pk}", "body": "hi"}), None),
        (client.get(f"{URL}/{existing['id']}"), client.get(f"{URL}/999999")),
        (client.patch(f"{URL}/{existing['id']}", {"body": "x"}, format="json"), None),
        (client.delete(f"{URL}/{existing['id']}"), client.delete(f"{URL}/999999")),
    ]:
        assert real.status_code == 404
        if missing is not None:
            assert real.json() == missing.json()
    assert Comment.objects.get().body == "Looks good"


def test_it_requires_a_login(anonymous: APIClient, run: Run) -> None:
    assert anonymous.get(URL, {"target": f"run:{run.pk}"}).status_code == 401
    assert (
        anonymous.post(URL, {"target": f"run:{run.pk}", "body": "x"}, format="json").status_code
        == 401
    )


@pytest.mark.parametrize(
    ("data", "status", "field"),
    [
        ({"body": "x"}, 400, "target"),
        ({"target": "run:abc", "body": "x"}, 400, "target"),
        ({"target": "RUN", "body": "x"}, 400, "target"),
        ({"target": "{run}", "body": ""}, 400, "body"),
        ({"target": "{run}"}, 400, "body"),
        ({"target": "{run}", "body": ["x"]}, 400, "body"),
        ({"target": "{run}", "body": "x", "parent": "1"}, 400, "parent"),
        ({"target": "{run}", "body": "x", "parent": 999999}, 404, "parent"),
        ({"target": "{run}", "body": "x", "anchor": "r-results"}, 400, "anchor"),
        ({"target": "{run}", "body": "x", "author": "alice"}, 400, "author"),
        ({"target": "report:999999", "body": "x"}, 404, "target"),
    ],
)
def test_it_names_the_field_of_bad_input_and_writes_nothing(
    world: World, run: Run, data: dict, status: int, field: str
) -> None:
    if data.get("target") == "{run}":
        data = {**data, "target": f"run:{run.pk}"}
    response = post(world.viewer, data)
    assert (response.status_code, response.json()["error"]["field"]) == (status, field)
    assert not Comment.objects.exists()


def test_it_rejects_a_body_that_is_not_an_object(world: World) -> None:
    response = world.viewer.client().post(URL, [1, 2], format="json")
    assert error_of(response) == (400, "invalid", None)


# --- Edit, delete, resolve -----------------------------------------------------------------


def test_it_lets_the_author_edit(world: World, run: Run) -> None:
    made = comment(world.viewer, run, "typo")
    response = world.viewer.client().patch(f"{URL}/{made['id']}", {"body": "fixed"}, format="json")
    assert response.status_code == 200
    assert response.json()["body"] == "fixed" and response.json()["edited_at"]


def test_it_refuses_to_edit_or_delete_someone_elses(world: World, run: Run) -> None:
    made = comment(world.viewer, run, "mine")
    client = world.owner.client()
    response = client.patch(f"{URL}/{made['id']}", {"body": "no"}, format="json")
    assert error_of(response) == (403, "permission_denied", None)
    assert client.delete(f"{URL}/{made['id']}").status_code == 403
    assert Comment.objects.get().body == "mine"


@pytest.mark.parametrize(
    ("data", "field"),
    [({"body": ""}, "body"), ({"resolved": "yes"}, "resolved"), ({"parent": 1}, "parent")],
)
def test_it_names_the_field_of_a_bad_patch(world: World, run: Run, data: dict, field: str) -> None:
    made = comment(world.viewer, run, "mine")
    response = world.viewer.client().patch(f"{URL}/{made['id']}", data, format="json")
    assert error_of(response)[::2] == (400, field)
    assert Comment.objects.get().body == "mine"


def test_it_deletes_softly(world: World, run: Run) -> None:
    root = comment(world.viewer, run, "oops")
    reply = comment(world.editor, run, "answer", parent=root["id"])
    response = world.viewer.client().delete(f"{URL}/{root['id']}")
    assert response.status_code == 200
    assert (response.json()["deleted"], response.json()["body"]) == (True, "")
    assert [c["id"] for c in listed(world.editor, run).json()] == [root["id"], reply["id"]]
    again = world.viewer.client().patch(f"{URL}/{root['id']}", {"body": "back"}, format="json")
    assert error_of(again) == (409, "deleted", None)


def test_it_resolves_and_reopens_a_thread(world: World, run: Run) -> None:
    root = comment(world.viewer, run, "Is this a bug?")
    url = f"{URL}/{root['id']}"
    resolved = world.editor.client().patch(url, {"resolved": True}, format="json").json()
    assert resolved["resolved_by"] == "bob" and resolved["resolved_at"]
    reopened = world.viewer.client().patch(url, {"resolved": False}, format="json").json()
    assert reopened["resolved_at"] is None


def test_it_refuses_a_viewer_resolving_someone_elses_thread(world: World, run: Run) -> None:
    root = comment(world.editor, run, "Is this a bug?")
    response = world.viewer.client().patch(f"{URL}/{root['id']}", {"resolved": True}, format="json")
    assert error_of(response) == (403, "permission_denied", None)


# --- Mentions --------------------------------------------------------------------------------


@pytest.fixture
def eager_mail(world: World) -> Any:
    for persona in (world.editor, world.outsider):
        get_user_model().objects.filter(pk=persona.user.pk).update(
            email=f"{persona.name}@example.com"
        )
    conf = celery_app.conf
    before = conf.task_always_eager, conf.task_eager_propagates
    conf.update(task_always_eager=True, task_eager_propagates=True)
    yield mail.outbox
    conf.update(task_always_eager=before[0], task_eager_propagates=before[1])


def test_it_answers_the_same_whether_a_mentioned_outsider_exists(
    world: World, run: Run, eager_mail: list, django_capture_on_commit_callbacks: Any
) -> None:
    answers = []
    for name in ("mallory", "nobody-at-all"):
        with django_capture_on_commit_callbacks(execute=True):
            response = post(world.viewer, {"target": f"run:{run.pk}", "body": f"@{name} hi"})
        answers.append((response.status_code, sorted(response.json())))
    assert answers[0] == answers[1]
    assert eager_mail == []
    with django_capture_on_commit_callbacks(execute=True):
        post(world.viewer, {"target": f"run:{run.pk}", "body": "@bob hi"})
    assert [m.to for m in eager_mail] == [["bob@example.com"]]


# --- The run page ------------------------------------------------------------------------------


def page_config(page: str) -> dict:
    match = re.search(r'<script id="comments-config" type="application/json">(.*?)</script>', page)
    assert match, "no comments config on the page"
    return json.loads(match.group(1))


@pytest.mark.parametrize(("persona", "moderate"), [("viewer", False), ("editor", True)])
def test_the_run_page_hands_the_discussion_to_comments_js(
    world: World, run: Run, persona: str, moderate: bool
) -> None:
    client = Client()
    client.force_login(world.persona(persona).user)
    page = client.get(f"/acme/mnist/runs/{run.pk}").content.decode()
    assert page_config(page) == {
        "target": f"run:{run.pk}",
        "api": URL,
        "me": world.persona(persona).name,
        "canModerate": moderate,
        "anchors": False,
        "members": "/api/v1/teams/acme/members",
    }
    assert "labbook/comments.js" in page and 'id="comments"' in page


def test_it_accepts_the_session_and_csrf_token_of_the_run_page(world: World, run: Run) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.viewer.user)
    client.get(f"/acme/mnist/runs/{run.pk}")
    body = json.dumps({"target": f"run:{run.pk}", "body": "from the page"})
    refused = client.post(URL, body, content_type="application/json")
    assert refused.status_code == 403
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(URL, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.content


def test_the_openapi_schema_documents_the_endpoints(tmp_path: Path) -> None:
    target = tmp_path / "schema.yml"
    options = ("--validate", "--fail-on-warn", "--file", str(target))
    call_command("spectacular", *options, stdout=StringIO(), stderr=StringIO())
    text = target.read_text()
    assert "/api/v1/comments:" in text and "/api/v1/comments/{comment_id}:" in text
