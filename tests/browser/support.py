"""Setting up what a browser test looks at, through Labbook's own API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sdk.server import LabbookServer


def api(live: LabbookServer, token: str, method: str, path: str, **body: Any) -> Any:
    """``method /api/v1/<path>`` with ``body`` as JSON; a 4xx/5xx fails the test."""
    response = httpx.request(
        method,
        f"{live.url}/api/v1/{path}",
        json=body or None,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        trust_env=False,
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None  # 204: nothing
