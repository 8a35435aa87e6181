"""Comments arrive live: subscribing to a discussion over /ws/live/, with access checks.

Same setup as ``test_live``: the real ASGI app, a real session, real services
whose on_commit publishing reaches the socket through the process's layer.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.conf import settings

from reports_app import comments
from reports_app import services as report_services
from reports_app.models import Comment, Report
from tests.conftest import Persona, World
from tests.reports_app.test_live import (
    QUIET,
    live_socket,
    scenario,
    socket_headers,
    subscribe,
)
from tests.support import require_redis
from tracking import services
from tracking.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_layer() -> None:
    if settings.REDIS_URL:
        require_redis()
    channel_layers.backends.clear()


@pytest.fixture
def run(world: World) -> Run:
    return services.run_create(user=world.editor.user, project=world.project, name="baseline")


@pytest.fixture
def report(world: World) -> Report:
    return report_services.report_create(
        user=world.owner.user, project=world.project, title="Findings"
    )


def _say(persona: Persona, target: str, body: str, **options: object) -> Comment:
    found = comments.target_get_for_user(persona.user, target)
    return comments.comment_create(user=persona.user, target=found, body=body, **options)


say = sync_to_async(_say)


def test_it_tells_an_outsider_not_found_and_sends_them_nothing(
    world: World, run: Run, report: Report
) -> None:
    headers = socket_headers(world.outsider)
    targets = [f"run:{run.pk}", f"report:{report.pk}", "run:999999"]

    async def body() -> None:
        async with live_socket(headers) as socket:
            answers = await subscribe(socket, comments=targets)
            assert answers == [
                *({"type": "error", "code": "not_found", "comments": t} for t in targets),
                {"type": "subscribed", "runs": [], "projects": [], "comments": []},
            ]
            await say(world.viewer, f"run:{run.pk}", "psst")
            assert await socket.receive_nothing(timeout=QUIET)

    scenario(body)


def test_it_refuses_a_private_report_to_teammates(world: World) -> None:
    private = report_services.report_create(
        user=world.editor.user, project=world.project, title="Draft", visibility="private"
    )
    headers = socket_headers(world.owner)

    async def body() -> None:
        async with live_socket(headers) as socket:
            answers = await subscribe(socket, comments=[f"report:{private.pk}", "job:1", 7])
            assert answers == [
                {"type": "error", "code": "not_found", "comments": f"report:{private.pk}"},
                {"type": "error", "code": "invalid", "comments": "job:1"},
                {"type": "error", "code": "invalid", "comments": 7},
                {"type": "subscribed", "runs": [], "projects": [], "comments": []},
            ]

    scenario(body)


def test_it_sends_a_viewer_new_comments_and_changes(world: World, run: Run) -> None:
    headers = socket_headers(world.viewer)
    target = f"run:{run.pk}"

    async def body() -> None:
        async with live_socket(headers) as socket:
            assert await subscribe(socket, comments=[target]) == [
                {"type": "subscribed", "runs": [], "projects": [], "comments": [target]}
            ]
            made = await say(world.editor, target, "**lr** was too high")
            message = await socket.receive_json_from()
            assert message == {
                "type": "comment.changed",
                "action": "created",
                "target": target,
                "comment": {
                    **message["comment"],
                    "id": made.pk,
                    "author": "bob",
                    "body_html": "<p><strong>lr</strong> was too high</p>",
                },
            }
            await sync_to_async(comments.comment_delete)(user=world.editor.user, comment=made)
            message = await socket.receive_json_from()
            assert (message["action"], message["comment"]["deleted"]) == ("deleted", True)

    scenario(body)


def test_it_sends_mentions_and_run_links_rendered(world: World, run: Run) -> None:
    headers = socket_headers(world.viewer)
    target = f"run:{run.pk}"

    async def body() -> None:
        async with live_socket(headers) as socket:
            await subscribe(socket, comments=[target])
            await say(world.editor, target, f"@carol see run:{run.pk}, @nobody")
            message = await socket.receive_json_from()
            assert message["comment"]["body_html"] == (
                '<p><span class="mention" title="carol">@carol</span> see'
                f' <a class="run-ref" href="/acme/mnist/runs/{run.pk}">baseline</a>'
                ' <span class="badge badge-running">running</span>, @nobody</p>'
            )

    scenario(body)


def test_it_sends_report_comments_to_the_reports_group_only(
    world: World, run: Run, report: Report
) -> None:
    headers = socket_headers(world.viewer)

    async def body() -> None:
        async with live_socket(headers) as socket:
            await subscribe(socket, comments=[f"report:{report.pk}"], runs=[run.pk])
            await say(world.editor, f"run:{run.pk}", "on the run")
            await say(world.editor, f"report:{report.pk}", "on the report", anchor="r-x")
            message = await socket.receive_json_from()
            assert message["target"] == f"report:{report.pk}"
            assert message["comment"]["anchor"] == "r-x"
            assert await socket.receive_nothing(timeout=QUIET)

    scenario(body)


def test_it_stops_sending_after_unsubscribe(world: World, run: Run) -> None:
    headers = socket_headers(world.viewer)
    target = f"run:{run.pk}"

    async def body() -> None:
        async with live_socket(headers) as socket:
            await subscribe(socket, comments=[target])
            await socket.send_json_to({"unsubscribe": {"comments": [target]}})
            assert await socket.receive_json_from() == {
                "type": "unsubscribed",
                "runs": [],
                "projects": [],
                "comments": [target],
            }
            await say(world.editor, target, "anyone?")
            assert await socket.receive_nothing(timeout=QUIET)

    scenario(body)
