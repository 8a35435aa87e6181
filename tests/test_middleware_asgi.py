"""The request guards and static files under a real ASGI server (uvicorn), where Django calls
them async."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import brotli
import httpx
import pytest

from kernel.charts import PLOTLY_JS
from tests.sdk.server import ROOT, LabbookServer
from tests.support import services_free

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
@services_free
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    with LabbookServer(tmp_path_factory.mktemp("asgi") / "home") as running:
        yield running


def shared_page(server: LabbookServer) -> str:
    """A page with a chart anyone may open: a report's share link."""
    run_id = server.create_run("lab/weights")
    body = f"```chart\nruns: [{run_id}]\nmetrics: [loss]\n```\n"
    with server.client() as client:
        report = {"project": "lab/weights", "title": "Weights", "body": body}
        report_id = client.post("/api/v1/reports", json=report).raise_for_status().json()["id"]
        link = client.post(f"/api/v1/reports/{report_id}/share-links", json={})
        path = urlsplit(link.raise_for_status().json()["url"]).path
    page = httpx.get(f"{server.url}{path}", trust_env=False)
    assert page.status_code == 200
    return page.text


def raw_get(server: LabbookServer, path: str, encoding: str) -> tuple[httpx.Response, bytes]:
    """The answer and its body as sent (httpx would decompress ``content``)."""
    headers = {"Accept-Encoding": encoding}
    with httpx.stream("GET", f"{server.url}{path}", headers=headers, trust_env=False) as answer:
        return answer, b"".join(answer.iter_raw())


def test_plotly_is_served_under_its_hashed_name_compressed_and_cached_a_year(
    server: LabbookServer,
):
    hashed = r'src="(/static/plotly/plotly-strict\.min\.[0-9a-f]{12}\.js)"'
    found = re.search(hashed, shared_page(server))
    assert found, "the page names plotly.js by its plain name"
    bundle = (ROOT / "kernel" / "static" / PLOTLY_JS).read_bytes()
    for encoding, decompress in (("br", brotli.decompress), ("gzip", gzip.decompress)):
        answer, sent = raw_get(server, found[1], encoding)
        assert answer.status_code == 200
        assert answer.headers["content-encoding"] == encoding
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert answer.headers["content-type"].startswith("text/javascript")
        assert len(sent) < len(bundle) / 3
        assert decompress(sent) == bundle


def test_a_plain_name_is_still_served_with_a_short_cache(server: LabbookServer):
    answer, sent = raw_get(server, f"/static/{PLOTLY_JS}", "identity")
    assert answer.status_code == 200 and "content-encoding" not in answer.headers
    assert answer.headers["cache-control"] == "public, max-age=60"
    assert len(sent) > 1_000_000
    css = httpx.get(f"{server.url}/static/labbook/labbook.css", trust_env=False)
    assert css.status_code == 200 and ".topbar" in css.text


def test_a_nul_character_is_refused_before_any_view(server: LabbookServer):
    response = httpx.get(f"{server.url}/api/v1/runs", params={"project": "a\x00b"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "project"


@pytest.mark.parametrize(
    "path", ["/api/2.0/mlflow/runs/get", "/ajax-api/2.0/mlflow/runs/get", "/get-artifact"]
)
def test_a_nul_character_on_an_mlflow_path_is_refused_in_mlflows_shape(
    server: LabbookServer, path: str
):
    response = httpx.get(f"{server.url}{path}", params={"run_id": "1\x00"})
    assert response.status_code == 400
    assert response.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "run_id: NUL characters are not allowed.",
    }


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
