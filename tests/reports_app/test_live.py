"""Live updates end to end: a real session, the real ASGI app, real ingests and status changes.

Each test drives its websocket inside one ``async_to_sync`` call; the sync
work it triggers (ingest, run_update) runs through ``sync_to_async`` back on
the test's thread and database connection, and its on_commit publishing hops
onto the same event loop, so one process-wide layer (in-memory, or Redis when
REDIS_URL is set) carries the messages as it does in production.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from labbook.asgi import application
from reports_app import consumers, live
from tests.conftest import Persona, World
from tests.support import require_redis
from tracking import media, services
from tracking.ingest import metrics_ingest, parse_points
from tracking.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = 0.3  # seconds to wait before concluding that nothing arrives


@pytest.fixture(autouse=True)
def fresh_layer() -> None:
    """A new layer per test: the in-memory one would otherwise keep groups across tests."""
    if settings.REDIS_URL:
        require_redis()
    channel_layers.backends.clear()


@pytest.fixture
def run(world: World) -> Run:
    return services.run_create(user=world.editor.user, project=world.project, name="baseline")


def _host() -> str:
    return next(h.lstrip(".") for h in settings.ALLOWED_HOSTS if h and "*" not in h)


def socket_headers(persona: Persona | None) -> list[tuple[bytes, bytes]]:
    host = _host().encode()
    headers = [(b"host", host), (b"origin", b"http://" + host)]
    if persona is not None:
        client = Client()
        client.force_login(persona.user)
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        headers.append((b"cookie", cookie.encode()))
    return headers


@asynccontextmanager
async def live_socket(headers: list[tuple[bytes, bytes]]) -> AsyncIterator[WebsocketCommunicator]:
    socket = WebsocketCommunicator(application, "/ws/live/", headers=headers)
    connected, _ = await socket.connect()
    assert connected
    try:
        yield socket
    finally:
        await socket.disconnect()


def scenario(body: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(body)()


def ingest(run: Run, raw_points: list[dict[str, Any]]) -> Awaitable[Any]:
    return sync_to_async(metrics_ingest)(run=run, points=parse_points(raw_points))


async def subscribe(socket: WebsocketCommunicator, **targets: list[Any]) -> list[dict]:
    """Send a subscription; the answers up to and including the ``subscribed`` ack."""
    await socket.send_json_to({"subscribe": targets})
    answers = [await socket.receive_json_from()]
    while answers[-1]["type"] != "subscribed":
        answers.append(await socket.receive_json_from())
    return answers


def test_it_closes_an_anonymous_socket_with_4401(world: World) -> None:
    async def body() -> None:
        socket = WebsocketCommunicator(application, "/ws/live/", headers=socket_headers(None))
        await socket.connect()
        assert await socket.receive_output() == {"type": "websocket.close", "code": 4401}

    scenario(body)


def test_it_refuses_a_foreign_origin(world: World) -> None:
    headers = [
        (k, b"http://evil.example" if k == b"origin" else v)
        for k, v in socket_headers(world.viewer)
    ]

    async def body() -> None:
        connected, _ = await WebsocketCommunicator(
            application, "/ws/live/", headers=headers
        ).connect()
        assert not connected

    scenario(body)


def test_it_tells_an_outsider_not_found_and_sends_them_nothing(world: World, run: Run) -> None:
    headers = socket_headers(world.outsider)

    async def body() -> None:
        async with live_socket(headers) as socket:
            answers = await subscribe(socket, runs=[run.pk, 10**9], projects=["acme/mnist"])
            assert answers == [
                {"type": "error", "code": "not_found", "run": run.pk},
                {"type": "error", "code": "not_found", "run": 10**9},
                {"type": "error", "code": "not_found", "project": "acme/mnist"},
                {"type": "subscribed", "runs": [], "projects": []},
            ]
            await ingest(run, [{"key": "loss", "step": 0, "value": 1.0}])
            assert await socket.receive_nothing(timeout=QUIET)

    scenario(body)


def test_it_sends_a_viewer_the_points_an_ingest_stored(world: World, run: Run) -> None:
    headers = socket_headers(world.viewer)

    async def body() -> None:
        async with live_socket(headers) as socket:
            assert await subscribe(socket, runs=[run.pk]) == [
                {"type": "subscribed", "runs": [run.pk], "projects": []}
            ]
            await ingest(
                run,
                [
                    {"key": "loss", "step": 1, "value": 0.5, "timestamp": 100.0},
                    {"key": "loss", "step": 0, "value": "NaN", "timestamp": 99.0},
                    {"key": "acc", "step": 0, "value": math.inf, "timestamp": 99.0},
                ],
            )
            assert await socket.receive_json_from() == {
                "type": "run.points",
                "run": run.pk,
                "series": {
                    "loss": {"steps": [0, 1], "values": ["NaN", 0.5], "timestamps": [99.0, 100.0]},
                    "acc": {"steps": [0], "values": ["Infinity"], "timestamps": [99.0]},
                },
            }
            duplicate = {"key": "loss", "step": 1, "value": 0.5, "timestamp": 100.0}
            await ingest(run, [duplicate])  # stores nothing, so says nothing
            assert await socket.receive_nothing(timeout=QUIET)

    scenario(body)


def test_it_sends_a_viewer_the_keys_and_steps_of_new_media(world: World, run: Run) -> None:
    headers = socket_headers(world.viewer)
    histogram = {"key": "grad/w1", "step": 3, "kind": "histogram", "counts": [2], "edges": [0, 1]}

    async def log_media(items: list[dict[str, Any]]) -> None:
        await sync_to_async(media.media_ingest)(run=run, items=media.parse_items(items))

    async def body() -> None:
        async with live_socket(headers) as socket:
            await subscribe(socket, runs=[run.pk])
            await log_media([histogram, {**histogram, "step": 4}])
            assert await socket.receive_json_from() == {
                "type": "run.media",
                "run": run.pk,
                "media": {"grad/w1": {"kind": "histogram", "steps": [3, 4]}},
            }
            await log_media([histogram])  # the same content again: stored nothing, says nothing
            assert await socket.receive_nothing(timeout=QUIET)

    scenario(body)


def test_it_sends_a_status_change_to_the_run_and_the_project(world: World, run: Run) -> None:
    headers = socket_headers(world.viewer)

    async def body() -> None:
        async with live_socket(headers) as socket:
            await subscribe(socket, runs=[run.pk], projects=["acme/mnist"])
            await sync_to_async(services.run_update)(run=run, data={"status": "failed"})
            received = [await socket.receive_json_from() for _ in range(2)]
            assert sorted(received, key=lambda m: m["type"]) == [
                {"type": "project.run", "run": run.pk, "status": "failed"},
                {"type": "run.status", "run": run.pk, "status": "failed", "old": "running"},
            ]

    scenario(body)


def test_it_sends_the_project_latest_values_and_new_runs(world: World, run: Run) -> None:
    headers = socket_headers(world.viewer)

    async def body() -> None:
        async with live_socket(headers) as socket:
            await subscribe(socket, projects=["acme/mnist"])
            await ingest(
                run, [{"key": "loss", "step": s, "value": 1.0 / (s + 1)} for s in range(4)]
            )
            assert await socket.receive_json_from() == {
                "type": "project.run",
                "run": run.pk,
                "summary": {"loss": 0.25},
            }
            new = await sync_to_async(services.run_create)(
                user=world.editor.user, project=world.project
            )
            assert await socket.receive_json_from() == {
                "type": "project.run",
                "run": new.pk,
                "created": True,
            }

    scenario(body)


def test_it_truncates_a_large_batch_to_the_latest_point(world: World, run: Run) -> None:
    headers = socket_headers(world.viewer)
    many = live.MAX_POINTS_PER_KEY + 500

    async def body() -> None:
        async with live_socket(headers) as socket:
            await subscribe(socket, runs=[run.pk])
            await ingest(
                run,
                [
                    {"key": "loss", "step": s, "value": float(s), "timestamp": 5.0}
                    for s in range(many)
                ]
                + [{"key": "lr", "step": 0, "value": 0.1, "timestamp": 5.0}],
            )
            assert (await socket.receive_json_from())["series"] == {
                "loss": {
                    "steps": [many - 1],
                    "values": [float(many - 1)],
                    "timestamps": [5.0],
                    "truncated": True,
                },
                "lr": {"steps": [0], "values": [0.1], "timestamps": [5.0]},
            }

    scenario(body)


def test_it_stops_sending_after_unsubscribe(world: World, run: Run) -> None:
    headers = socket_headers(world.viewer)

    async def body() -> None:
        async with live_socket(headers) as socket:
            await subscribe(socket, runs=[run.pk])
            await socket.send_json_to({"unsubscribe": {"runs": [run.pk]}})
            assert await socket.receive_json_from() == {
                "type": "unsubscribed",
                "runs": [run.pk],
                "projects": [],
            }
            await ingest(run, [{"key": "loss", "step": 0, "value": 1.0}])
            assert await socket.receive_nothing(timeout=QUIET)

    scenario(body)


def test_it_limits_the_subscriptions_of_a_socket(
    world: World, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "MAX_SUBSCRIPTIONS", 1)
    headers = socket_headers(world.viewer)

    async def body() -> None:
        async with live_socket(headers) as socket:
            assert await subscribe(socket, runs=[run.pk, "7"], projects=["acme/mnist"]) == [
                {"type": "error", "code": "invalid", "run": "7"},
                {"type": "error", "code": "too_many_subscriptions", "project": "acme/mnist"},
                {"type": "subscribed", "runs": [run.pk], "projects": []},
            ]

    scenario(body)


def test_it_keeps_ingesting_when_the_layer_is_down(
    world: World, run: Run, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class DownLayer:
        async def group_send(self, group: str, message: dict) -> None:
            raise ConnectionError("redis is down")

    monkeypatch.setattr(live, "get_channel_layer", DownLayer)
    with caplog.at_level(logging.WARNING, logger="reports_app.live"):
        result = metrics_ingest(run=run, points=parse_points([{"key": "x", "step": 0, "value": 1}]))
    assert result.accepted == 1
    assert "live update not published" in caplog.text
