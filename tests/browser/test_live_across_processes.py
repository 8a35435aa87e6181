"""Live updates across server processes: channels-redis carries them from one to another.

Two uvicorn processes share one database and one Redis, as N ASGI processes
behind a load balancer do. The browser watches a run on server A while the
training job writes to server B; the chart and the status badge still move.
Needs Redis (REDIS_URL): skipped on the embedded default, required in CI's
PostgreSQL + Redis pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import create_user, log_in
from tests.sdk.server import LabbookServer
from tests.support import require_redis

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabbookServer, ...]]:
    env = {"REDIS_URL": require_redis()}
    home = tmp_path_factory.mktemp("shared-home")
    with LabbookServer(home, env=env) as a, LabbookServer(home, env=env) as b:
        yield a, b


def call(server: LabbookServer, token: str, method: str, path: str, **body: Any) -> dict:
    response = httpx.request(
        method,
        f"{server.url}/api/v1/{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code < 300, response.text
    return response.json()


def points(key: str, steps: range) -> list[dict]:
    return [{"key": key, "step": s, "value": float(s)} for s in steps]


def test_a_point_written_to_one_server_reaches_a_chart_served_by_another(page, servers):
    a, b = servers
    user = create_user(a, "rosa", team="lab")
    run_id = call(b, user.token, "POST", "runs", project="lab/shared", name="across")["id"]
    call(b, user.token, "POST", f"runs/{run_id}/metrics", points=points("loss", range(5)))
    log_in(page, a, user.username, user.password)
    page.goto(f"{a.url}/lab/shared/runs/{run_id}")
    card = page.locator('.chart-card[data-key="loss"]')
    expect(card).to_have_attribute("data-points", "5")
    expect(page.locator("[data-live-state]")).to_have_text("Live")
    call(b, user.token, "POST", f"runs/{run_id}/metrics", points=points("loss", range(5, 12)))
    expect(card).to_have_attribute("data-points", "12")
    call(b, user.token, "PATCH", f"runs/{run_id}", status="finished")
    expect(page.locator(f'h1 [data-status-run="{run_id}"]')).to_have_text("finished")
