"""``run.artifacts`` live (issue 21): a committed version, a use, an MLflow file stored or deleted.

The run page's socket hears that the run's artifacts changed and reads its cards
again; a share link's socket, in the same run group for its charts, hears nothing.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from labbook.asgi import application
from reports_app import selectors as report_selectors
from reports_app import services as report_services
from tests.conftest import World
from tests.reports_app.test_live import (
    QUIET,
    fresh_layer,
    live_socket,
    scenario,
    socket_headers,
    subscribe,
)
from tracking import artifact_versions as av
from tracking import selectors, services
from tracking.ingest import Point, metrics_ingest
from tracking.models import ArtifactVersion, Run

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["fresh_layer"]  # the autouse fixture: a new channel layer per test

WEIGHTS = b"\x00\x01weights"


@pytest.fixture(autouse=True)
def home(settings, tmp_path: Path) -> Path:
    settings.LABBOOK_HOME = tmp_path
    return tmp_path


@pytest.fixture
def run(world: World) -> Run:
    return services.run_create(user=world.editor.user, project=world.project, name="trainer")


def log_version(run: Run, data: bytes = WEIGHTS) -> ArtifactVersion:
    """Announce, upload and commit a one-file version of "model" logged by ``run``."""
    sha256 = hashlib.sha256(data).hexdigest()
    files: list[av.FileEntry] = [{"path": "weights.bin", "sha256": sha256, "size": len(data)}]
    created = av.version_create(run=run, name="model", type=None, description="", files=files)
    if not created.created:
        return created.version  # the same files as a committed version: that one
    av.file_put(version=created.version, sha256=sha256, stream=io.BytesIO(data), length=len(data))
    return av.version_commit(created.version)


def mlflow_url(run: Run, rel: str = "") -> str:
    tail = f"/{rel}" if rel else ""
    return f"/api/2.0/mlflow-artifacts/artifacts/{run.project_id}/{run.pk}/artifacts{tail}"


def test_a_committed_version_and_a_use_reach_the_producer_and_the_consumer(
    world: World, run: Run
) -> None:
    consumer = services.run_create(user=world.editor.user, project=world.project, name="eval")
    headers = socket_headers(world.viewer)

    async def body() -> None:
        async with live_socket(headers) as socket:
            await subscribe(socket, runs=[run.pk, consumer.pk])
            version = await sync_to_async(log_version)(run)
            assert await socket.receive_json_from() == {"type": "run.artifacts", "run": run.pk}
            await sync_to_async(log_version)(run)  # the same files: the same version, no news
            assert await socket.receive_nothing(timeout=QUIET)
            recorded = await sync_to_async(av.use_record)(run=consumer, version=version)
            assert recorded
            message = await socket.receive_json_from()
            assert message == {"type": "run.artifacts", "run": consumer.pk}
            await sync_to_async(av.use_record)(run=consumer, version=version)  # recorded before
            assert await socket.receive_nothing(timeout=QUIET)

    scenario(body)


def test_an_mlflow_file_stored_or_deleted_reaches_the_run(world: World, run: Run) -> None:
    headers = socket_headers(world.viewer)
    client = world.editor.client()

    def put(rel: str) -> int:
        url = mlflow_url(run, rel)
        return client.put(url, data=b"hi", content_type="application/octet-stream").status_code

    async def body() -> None:
        async with live_socket(headers) as socket:
            await subscribe(socket, runs=[run.pk])
            assert await sync_to_async(put)("notes/x.bin") == 200
            assert await socket.receive_json_from() == {"type": "run.artifacts", "run": run.pk}
            deleted = await sync_to_async(client.delete)(mlflow_url(run, "notes/x.bin"))
            assert deleted.status_code == 200
            assert await socket.receive_json_from() == {"type": "run.artifacts", "run": run.pk}
            assert await sync_to_async(put)("../escape.txt") != 200  # refused: nothing changed
            assert await socket.receive_nothing(timeout=QUIET)

    scenario(body)


def test_a_share_link_sends_nothing_of_a_shown_runs_artifacts(world: World) -> None:
    """The link joins the run's group for its charts; ``run.artifacts`` travels in it and
    must neither reach the reader nor crash the socket."""
    shown = services.run_create(user=world.owner.user, project=world.project, name="a")
    metrics_ingest(run=shown, points=[Point("loss", 0, 1.0, 1.0)])
    project = selectors.project_get_for_user(world.owner.user, "acme/mnist")
    report = report_services.report_create(
        user=world.owner.user,
        project=project,
        title="R",
        body=f"```chart\nruns: [{shown.pk}]\nmetrics: [loss]\n```",
    )
    report = report_selectors.report_get_for_user(world.owner.user, report.pk)
    token = report_services.share_link_create(report=report, user=world.owner.user)[1]

    async def body() -> None:
        socket = WebsocketCommunicator(
            application, f"/ws/share/{token}/", headers=socket_headers(None)
        )
        connected, _ = await socket.connect()
        assert connected
        await sync_to_async(log_version)(shown)
        assert await socket.receive_nothing(timeout=QUIET)
        await sync_to_async(metrics_ingest)(run=shown, points=[Point("loss", 3, 0.5, 5.0)])
        message = await socket.receive_json_from()  # the socket is alive and still charting
        assert message["type"] == "run.points"
        await socket.disconnect()

    scenario(body)


def test_the_artifact_cards_endpoint_renders_what_the_page_shows(world: World, run: Run) -> None:
    log_version(run)
    client = world.editor.client()
    put = client.put(mlflow_url(run, "x.txt"), data=b"hi", content_type="application/octet-stream")
    assert put.status_code == 200
    page = f"{run.get_absolute_url()}/artifact-cards"
    reader = Client()
    reader.force_login(world.viewer.user)
    response = reader.get(page)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert "model:v0" in html and "x.txt" in html
    outsider = Client()
    outsider.force_login(world.outsider.user)
    assert outsider.get(page).status_code == 404
