"""Setting up what a browser test looks at, through Labbook's own API."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class Transfer:
    """One request as chromium's network stack saw it."""

    url: str
    kind: str  # Document, Script, Stylesheet, Fetch...
    status: int = 0
    from_cache: bool = False
    bytes: int | None = None  # on the wire (headers and body, compressed); None until done


class Transfers:
    """Every request of ``page`` with the bytes it moved, from chromium's DevTools protocol.

    Playwright's own events do not say whether the browser's cache answered;
    ``Network.loadingFinished`` does (``encodedDataLength`` 0, after
    ``Network.requestServedFromCache``).
    """

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: dict[str, Transfer] = {}
        session = page.context.new_cdp_session(page)
        session.on("Network.requestWillBeSent", self._sent)
        session.on("Network.requestServedFromCache", self._cached)
        session.on("Network.responseReceived", self._answered)
        session.on("Network.loadingFinished", self._finished)
        session.send("Network.enable")

    def _sent(self, event: dict[str, Any]) -> None:
        url = event["request"]["url"]
        self.seen[event["requestId"]] = Transfer(url, event.get("type", "Other"))

    def _cached(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.seen:
            self.seen[event["requestId"]].from_cache = True

    def _answered(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.seen:
            self.seen[event["requestId"]].status = event["response"]["status"]

    def _finished(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.seen:
            self.seen[event["requestId"]].bytes = int(event["encodedDataLength"])

    def clear(self) -> None:
        self.seen.clear()

    def of(self, part: str, *, ceiling_ms: int = 30_000) -> list[Transfer]:
        """The finished requests whose URL holds ``part``; waits until there is one."""
        for _ in range(ceiling_ms // 100):
            found = [t for t in self.seen.values() if part in t.url and t.bytes is not None]
            if found:
                return found
            self.page.wait_for_timeout(100)  # lets Playwright deliver chromium's events
        raise AssertionError(f"no finished request for {part!r} within {ceiling_ms} ms")
