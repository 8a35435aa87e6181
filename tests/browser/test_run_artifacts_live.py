"""The run page's artifact cards follow the run live in a real browser (issue 21).

While the page is open, a version is announced, uploaded and committed through the REST
API, the run records a use of it, and a file is PUT through MLflow's artifact endpoint, as
the SDK and the mlflow client do. The "Versioned artifacts" and "Artifacts" cards show each
without a reload.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.browser.support import api
from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.browser

PROJECT = "artteam/train"
WEIGHTS = b"\x00\x01weights of the model"


@pytest.fixture(scope="module")
def owner(make_user: Any) -> Any:
    return make_user("artemis", team="artteam")


@pytest.fixture(scope="module")
def run_id(live: LabbookServer, owner: Any) -> int:
    return int(api(live, owner.token, "POST", "runs", project=PROJECT, name="trainer")["id"])


def _request(live: LabbookServer, token: str, method: str, url: str, **more: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}", **more.pop("headers", {})}
    response = httpx.request(
        method, f"{live.url}{url}", headers=headers, timeout=60, trust_env=False, **more
    )
    assert response.status_code < 300, response.text
    return response


def log_version(live: LabbookServer, token: str, run: int) -> None:
    """Announce one file of "model", upload it, commit: what ``labbook.log_artifact`` sends."""
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    files = [{"path": "weights.bin", "sha256": sha256, "size": len(WEIGHTS)}]
    announced = api(live, token, "POST", f"runs/{run}/artifact-versions", name="model", files=files)
    version = announced["version"]["id"]
    _request(
        live,
        token,
        "PUT",
        f"/api/v1/artifact-versions/{version}/files/{sha256}",
        content=WEIGHTS,
        headers={"Content-Type": "application/octet-stream"},
    )
    api(live, token, "POST", f"artifact-versions/{version}/commit")


def mlflow_upload(live: LabbookServer, token: str, run: int, rel: str, body: bytes) -> None:
    """A plain PUT to MLflow's proxied artifact endpoint, as ``mlflow.log_artifact`` sends."""
    info = _request(live, token, "GET", f"/api/2.0/mlflow/runs/get?run_id={run}").json()
    experiment = info["run"]["info"]["experiment_id"]
    _request(
        live,
        token,
        "PUT",
        f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/{rel}",
        content=body,
        headers={"Content-Type": "application/octet-stream"},
    )


def test_versions_and_files_appear_in_the_cards_without_a_reload(watched, live, owner, run_id):
    page = watched
    log_in(page, live, owner.username, owner.password)
    page.goto(f"{live.url}/{PROJECT}/runs/{run_id}")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    expect(page.locator("#artifact-versions")).to_have_count(0)
    expect(page.locator("#artifacts")).to_have_count(0)
    page.evaluate("() => { window.notReloaded = true; }")

    log_version(live, owner.token, run_id)
    logged = page.locator("#artifact-versions [data-artifacts-logged]")
    expect(logged).to_contain_text("model:v0")
    expect(logged.locator("a", has_text="model:v0")).to_have_attribute(
        "href", f"/{PROJECT}/artifacts/model"
    )

    api(live, owner.token, "POST", f"runs/{run_id}/artifact-uses", artifact=f"{PROJECT}/model:v0")
    expect(page.locator("#artifact-versions [data-artifacts-used]")).to_contain_text(
        f"{PROJECT}/model:v0"
    )

    mlflow_upload(live, owner.token, run_id, "x.txt", b"hello")
    card = page.locator("#artifacts")
    expect(card).to_contain_text("x.txt")
    expect(card.locator("a", has_text="x.txt")).to_have_attribute(
        "href", f"/{PROJECT}/runs/{run_id}/artifacts/x.txt"
    )
    mlflow_upload(live, owner.token, run_id, "y.bin", b"\x00" * 10)  # within the 2 s of x.txt
    expect(card).to_contain_text("y.bin")
    expect(page.locator("#artifacts-title")).to_contain_text("2")

    assert page.evaluate("() => window.notReloaded === true"), "the page was reloaded"
