"""A runs/create the mlflow client resends after losing the answer makes no second run.

Seen in the soak of `manage.py up`: the web server was killed after a
runs/create committed; the client retried, a second run appeared, the client
logged into one, and the other stayed "running" until it was reported crashed
(and paged as a failed run). A retry carries the same body, so it gets the
run the first request made.
"""

from __future__ import annotations

import time

import pytest

from tests.tracking.mlflow.test_protocol import Caller, bearer, ok
from tracking.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(world, client) -> Caller:
    return Caller(client, bearer(world.editor.user))


def create(caller: Caller, project_id: int, **body) -> str:
    answer = ok(caller.post("runs/create", {"experiment_id": str(project_id), **body}))
    return answer["run"]["info"]["run_id"]


def test_the_same_create_again_answers_the_run_it_made(world, editor):
    now = int(time.time() * 1000)
    tags = [{"key": "mlflow.user", "value": "bob"}, {"key": "mlflow.source.name", "value": "t.py"}]
    first = create(editor, world.project.pk, start_time=now, tags=tags)
    assert create(editor, world.project.pk, start_time=now, tags=tags) == first
    named = create(editor, world.project.pk, run_name="a", start_time=now + 1, tags=tags)
    assert create(editor, world.project.pk, run_name="a", start_time=now + 1, tags=tags) == named
    assert Run.objects.count() == 2


@pytest.mark.parametrize(
    "change",
    [
        {"start_time": 1},  # another millisecond
        {"tags": [{"key": "mlflow.user", "value": "carol"}]},
        {"run_name": "other"},
    ],
)
def test_a_create_that_differs_in_anything_makes_a_new_run(world, editor, change):
    now = int(time.time() * 1000)
    body = {"run_name": "a", "start_time": now, "tags": [{"key": "mlflow.user", "value": "bob"}]}
    first = create(editor, world.project.pk, **body)
    if "start_time" in change:
        change = {"start_time": now + change["start_time"]}
    assert create(editor, world.project.pk, **{**body, **change}) != first


def test_an_old_start_time_is_never_taken_for_a_retry(world, editor):
    """Importing runs with their historic start times makes each one."""
    old = int(time.time() * 1000) - 3_600_000
    first = create(editor, world.project.pk, start_time=old)
    assert create(editor, world.project.pk, start_time=old) != first
