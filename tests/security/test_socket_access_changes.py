"""Open websockets follow access as it changes (security review, issue 16 #5).

Sockets kept receiving points and comments after the share link was revoked,
the member removed from the team, the user logged out and the report made
private. Each change now reaches the sockets it concerns at once; a change
nobody announced (here: a membership deleted behind Labbook's back) is caught
by the periodic re-check within LIVE_ACCESS_RECHECK_SECONDS.

The sockets run through the real ASGI application (origin check, session
middleware, router) with a browser's headers, as in ``test_authorization_websockets``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from labbook.asgi import application
from reports_app import comments, selectors, services
from reports_app.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from reports_app.models import ShareLink
from tests.conftest import Persona, World
from tests.reports_app.test_live import (
    QUIET,
    fresh_layer,
    ingest,
    scenario,
    socket_headers,
    subscribe,
)
from tracking import selectors as tracking_selectors
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Membership, Run

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["fresh_layer"]  # the autouse fixture: a new channel layer per test

CEILING = 60.0  # seconds: generous, a busy 2-core machine still answers well within it


@pytest.fixture
def run(world: World) -> Run:
    run = tracking_services.run_create(user=world.owner.user, project=world.project, name="r")
    metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1.0)])
    return run


async def _open(path: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, path, headers=headers)
    assert (await socket.connect())[0]
    return socket


async def _closed_with(socket: WebsocketCommunicator) -> int:
    """The close code, skipping whatever was in flight before it."""
    while True:
        output = await socket.receive_output(timeout=CEILING)
        if output["type"] == "websocket.close":
            return output["code"]


async def _next_error(socket: WebsocketCommunicator) -> dict:
    while True:
        message = await socket.receive_json_from(timeout=CEILING)
        if message["type"] == "error":
            return message


def _report(world: World, *, body: str = "", author: Persona | None = None):
    user = (author or world.owner).user
    project = tracking_selectors.project_get_for_user(user, "acme/mnist")
    report = services.report_create(user=user, project=project, title="R", body=body)
    return selectors.report_get_for_user(user, report.pk)


def test_removing_a_member_drops_their_subscriptions_at_once(world: World, run: Run) -> None:
    viewer = world.viewer.user

    viewer_headers = socket_headers(world.viewer)

    async def body() -> None:
        socket = await _open("/ws/live/", viewer_headers)
        await subscribe(socket, runs=[run.pk], projects=["acme/mnist"])
        await sync_to_async(tracking_services.membership_remove)(
            team=world.team, user=viewer, actor=world.owner.user
        )
        dropped = [await _next_error(socket), await _next_error(socket)]
        assert {"type": "error", "code": "not_found", "run": run.pk} in dropped
        assert {"type": "error", "code": "not_found", "project": "acme/mnist"} in dropped
        await ingest(run, [{"key": "loss", "step": 1, "value": 0.5}])
        assert await socket.receive_nothing(timeout=QUIET)
        await socket.disconnect()

    scenario(body)


def test_logging_out_closes_that_sessions_sockets_only(world: World, run: Run) -> None:
    browser = Client()
    browser.force_login(world.viewer.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    logged_out = [*socket_headers(None), (b"cookie", cookie.encode())]

    viewer_headers = socket_headers(world.viewer)

    async def body() -> None:
        socket = await _open("/ws/live/", logged_out)
        other_session = await _open("/ws/live/", viewer_headers)
        await subscribe(socket, runs=[run.pk])
        await subscribe(other_session, runs=[run.pk])
        answer = await sync_to_async(browser.post)("/logout/")
        assert answer.status_code in (200, 302)
        assert await _closed_with(socket) == CLOSE_UNAUTHENTICATED
        await ingest(run, [{"key": "loss", "step": 1, "value": 0.5}])
        message = await other_session.receive_json_from(timeout=CEILING)
        assert message["type"] == "run.points"  # the same user's other session stays
        await other_session.disconnect()

    scenario(body)


def test_revoking_a_share_link_closes_its_sockets(world: World, run: Run) -> None:
    report = _report(world, body=f"```chart\nruns: [{run.pk}]\nmetrics: [loss]\n```")
    link, token = services.share_link_create(report=report, user=world.owner.user)

    anonymous_headers = socket_headers(None)

    async def body() -> None:
        socket = await _open(f"/ws/share/{token}/", anonymous_headers)
        await sync_to_async(services.share_link_revoke)(link=link, user=world.owner.user)
        assert await _closed_with(socket) == CLOSE_NOT_FOUND

    scenario(body)


def test_a_chart_taken_out_of_a_shared_report_stops_streaming(world: World, run: Run) -> None:
    report = _report(world, body=f"```chart\nruns: [{run.pk}]\nmetrics: [loss]\n```")
    token = services.share_link_create(report=report, user=world.owner.user)[1]

    anonymous_headers = socket_headers(None)

    async def body() -> None:
        socket = await _open(f"/ws/share/{token}/", anonymous_headers)
        await sync_to_async(services.report_save)(
            report=report, user=world.owner.user, revision=report.revision, body="No charts."
        )
        # The edit's re-check is ordered before this ingest's points on the same socket.
        await socket.send_json_to({"ping": 1})
        assert await socket.receive_json_from(timeout=CEILING) == {"type": "subscribed"}
        await ingest(run, [{"key": "loss", "step": 1, "value": 0.5}])
        assert await socket.receive_nothing(timeout=QUIET)
        await socket.disconnect()

    scenario(body)


def test_making_a_report_private_drops_teammates_from_its_discussion(world: World) -> None:
    report = _report(world, author=world.editor)
    target = f"report:{report.pk}"

    viewer_headers = socket_headers(world.viewer)
    editor_headers = socket_headers(world.editor)

    async def body() -> None:
        teammate = await _open("/ws/live/", viewer_headers)
        author = await _open("/ws/live/", editor_headers)
        await subscribe(teammate, comments=[target])
        await subscribe(author, comments=[target])
        await sync_to_async(services.report_save)(
            report=report, user=world.editor.user, revision=report.revision, visibility="private"
        )
        assert await _next_error(teammate) == {
            "type": "error",
            "code": "not_found",
            "comments": target,
        }
        await sync_to_async(_comment)(world.editor.user, target)
        assert (await author.receive_json_from(timeout=CEILING))["type"] == "comment.changed"
        assert await teammate.receive_nothing(timeout=QUIET)
        await teammate.disconnect()
        await author.disconnect()

    scenario(body)


def _comment(user, target: str) -> None:
    comments.comment_create(
        user=user, target=comments.target_get_for_user(user, target), body="private now"
    )


@override_settings(LIVE_ACCESS_RECHECK_SECONDS=1)
def test_an_unannounced_change_is_caught_by_the_periodic_recheck(world: World, run: Run) -> None:
    viewer_headers = socket_headers(world.viewer)

    async def body() -> None:
        socket = await _open("/ws/live/", viewer_headers)
        await subscribe(socket, runs=[run.pk])
        # Behind Labbook's back: no service, no event, only the backstop can see it.
        await sync_to_async(Membership.objects.filter(user=world.viewer.user).delete)()
        assert await _next_error(socket) == {"type": "error", "code": "not_found", "run": run.pk}
        await socket.disconnect()

    scenario(body)


@override_settings(LIVE_ACCESS_RECHECK_SECONDS=1)
def test_a_deactivated_account_is_closed_by_the_periodic_recheck(world: World) -> None:
    viewer_headers = socket_headers(world.viewer)

    async def body() -> None:
        socket = await _open("/ws/live/", viewer_headers)
        await sync_to_async(type(world.viewer.user).objects.filter(pk=world.viewer.user.pk).update)(
            is_active=False
        )
        assert await _closed_with(socket) == CLOSE_UNAUTHENTICATED

    scenario(body)


@override_settings(LIVE_ACCESS_RECHECK_SECONDS=1)
def test_a_share_link_that_expires_while_open_is_closed(world: World, run: Run) -> None:
    report = _report(world)
    link, token = services.share_link_create(report=report, user=world.owner.user)
    anonymous_headers = socket_headers(None)

    async def body() -> None:
        socket = await _open(f"/ws/share/{token}/", anonymous_headers)
        expired = timezone.now() - timedelta(seconds=1)  # nobody announces an expiry
        await sync_to_async(ShareLink.objects.filter(pk=link.pk).update)(expires_at=expired)
        assert await _closed_with(socket) == CLOSE_NOT_FOUND

    scenario(body)
