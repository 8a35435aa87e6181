"""Live charts through a share link: ``/ws/share/<token>/`` joins only what the report shows."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from labbook.asgi import application
from reports_app import selectors, services
from tests.conftest import World
from tests.reports_app.test_live import QUIET, fresh_layer, ingest, scenario, socket_headers
from tracking import console, media
from tracking import selectors as tracking_selectors
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest
from tracking.models import Run

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["fresh_layer"]  # the autouse fixture: a new channel layer per test


def _shared_report(world: World, body: str) -> str:
    project = tracking_selectors.project_get_for_user(world.owner.user, "acme/mnist")
    report = services.report_create(user=world.owner.user, project=project, title="R", body=body)
    report = selectors.report_get_for_user(world.owner.user, report.pk)
    return services.share_link_create(report=report, user=world.owner.user)[1]


def _runs(world: World) -> tuple[Run, Run]:
    shown = tracking_services.run_create(user=world.owner.user, project=world.project, name="a")
    hidden = tracking_services.run_create(user=world.owner.user, project=world.project, name="b")
    tracking_services.run_annotate(run=shown, tags=["shown"])
    for run in (shown, hidden):
        metrics_ingest(run=run, points=[Point("loss", 0, 1.0, 1.0)])
    return shown, hidden


def test_a_share_link_streams_the_runs_its_charts_draw_and_nothing_else(world: World) -> None:
    shown, hidden = _runs(world)
    token = _shared_report(world, f"```chart\nruns: [{shown.pk}]\nmetrics: [loss]\n```")
    anonymous = socket_headers(None)

    async def body() -> None:
        socket = WebsocketCommunicator(application, f"/ws/share/{token}/", headers=anonymous)
        connected, _ = await socket.connect()
        assert connected
        await socket.send_json_to({"subscribe": {"runs": [hidden.pk]}})  # ignored
        assert await socket.receive_json_from() == {"type": "subscribed"}
        await ingest(hidden, [{"key": "loss", "step": 1, "value": 2.0}])
        assert await socket.receive_nothing(timeout=QUIET)
        await ingest(shown, [{"key": "loss", "step": 1, "value": 0.5, "timestamp": 5.0}])
        message = await socket.receive_json_from()
        assert message["type"] == "run.points" and message["run"] == shown.pk
        await socket.disconnect()

    scenario(body)


def test_new_runs_are_announced_without_their_ids(world: World) -> None:
    _runs(world)
    token = _shared_report(world, "```chart\nruns: {tags: [shown]}\nmetrics: [loss]\n```")

    async def body() -> None:
        socket = WebsocketCommunicator(
            application, f"/ws/share/{token}/", headers=socket_headers(None)
        )
        assert (await socket.connect())[0]
        await sync_to_async(tracking_services.run_create)(
            user=world.owner.user, project=world.project, name="new"
        )
        assert await socket.receive_json_from() == {"type": "project.run", "created": True}
        await socket.disconnect()

    scenario(body)


def test_a_dead_link_is_closed_with_4404(world: World) -> None:
    async def body() -> None:
        socket = WebsocketCommunicator(
            application, "/ws/share/s_made-up/", headers=socket_headers(None)
        )
        await socket.connect()
        assert await socket.receive_output() == {"type": "websocket.close", "code": 4404}

    scenario(body)


def test_a_share_link_streams_only_the_metrics_its_charts_draw(world: World) -> None:
    """A report charting train/loss sent secret/metric of the same run to an anonymous
    reader too (security review): only charted keys go out, other batches not at all."""
    shown, _hidden = _runs(world)
    token = _shared_report(world, f"```chart\nruns: [{shown.pk}]\nmetrics: [loss]\n```")

    async def body() -> None:
        socket = WebsocketCommunicator(
            application, f"/ws/share/{token}/", headers=socket_headers(None)
        )
        connected, _ = await socket.connect()
        assert connected
        await ingest(shown, [{"key": "secret/metric", "step": 1, "value": 42.0}])
        assert await socket.receive_nothing(timeout=QUIET)
        await ingest(
            shown,
            [
                {"key": "loss", "step": 2, "value": 0.5, "timestamp": 5.0},
                {"key": "secret/metric", "step": 2, "value": 43.0, "timestamp": 5.0},
            ],
        )
        message = await socket.receive_json_from()
        assert message["type"] == "run.points" and message["run"] == shown.pk
        assert set(message["series"]) == {"loss"}
        assert "secret" not in str(message)
        await socket.disconnect()

    scenario(body)


def test_a_share_link_sends_nothing_of_a_shown_runs_console_or_media(world: World) -> None:
    """The link joins the run's group for its charts; the run's console lines and media
    keys travel in the same group and must not reach an anonymous reader."""
    shown, _hidden = _runs(world)
    token = _shared_report(world, f"```chart\nruns: [{shown.pk}]\nmetrics: [loss]\n```")
    secret_line = [{"number": 0, "text": "SECRET token=abc"}]
    histogram = [
        {"key": "secret/w", "step": 1, "kind": "histogram", "counts": [1], "edges": [0, 1]}
    ]

    async def body() -> None:
        socket = WebsocketCommunicator(
            application, f"/ws/share/{token}/", headers=socket_headers(None)
        )
        connected, _ = await socket.connect()
        assert connected
        await sync_to_async(console.console_append)(
            run=shown, lines=console.parse_lines(secret_line)
        )
        await sync_to_async(media.media_ingest)(run=shown, items=media.parse_items(histogram))
        assert await socket.receive_nothing(timeout=QUIET)
        await ingest(shown, [{"key": "loss", "step": 3, "value": 0.5, "timestamp": 5.0}])
        message = await socket.receive_json_from()  # the socket is alive and still charting
        assert message["type"] == "run.points"
        await socket.disconnect()

    scenario(body)
