"""The request guards under a real ASGI server (uvicorn), where Django calls them async."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.sdk.server import LabbookServer
from tests.support import services_free

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
@services_free
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    with LabbookServer(tmp_path_factory.mktemp("asgi") / "home") as running:
        yield running


def test_static_files_are_served_compressed_and_cached(server: LabbookServer):
    response = httpx.get(
        f"{server.url}/static/plotly/plotly-strict.min.js", headers={"Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert len(response.content) > 1_000_000  # the whole bundle, decompressed by httpx
    css = httpx.get(f"{server.url}/static/labbook/labbook.css")
    assert css.status_code == 200 and ".topbar" in css.text


def test_a_nul_character_is_refused_before_any_view(server: LabbookServer):
    response = httpx.get(f"{server.url}/api/v1/runs", params={"project": "a\x00b"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "project"


def test_other_requests_go_on_to_the_views(server: LabbookServer):
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    answer = httpx.get(f"{server.url}/api/v1/runs", headers=server.client().headers)
    assert answer.status_code in (200, 400)  # reached the API (which wants ?project=)


def test_the_guards_are_callable_without_a_thread_switch():
    from django.conf import settings

    from labbook import middleware

    assert "labbook.middleware.StaticFilesMiddleware" in settings.MIDDLEWARE
    for guard in (middleware.RejectNulCharactersMiddleware, middleware.StaticFilesMiddleware):
        assert guard.async_capable and guard.sync_capable
