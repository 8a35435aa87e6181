"""Issue 16 #5 against a real server: a share link's open socket closes when it is revoked.

The review kept receiving chart updates on a share link's socket after the
link was revoked. Here uvicorn serves Labbook as ``up`` runs it; the socket is
a real websocket client, and the revocation goes through the REST API.
"""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.subprocess

CEILING = 60.0  # seconds: generous, the close comes as soon as the revocation commits
CLOSE_NOT_FOUND = 4404


def test_revoking_a_link_closes_its_open_socket(tmp_path) -> None:
    with LabbookServer(tmp_path / "home") as server, server.client() as api:
        run = server.create_run("lab/shared")
        api.post(
            f"/api/v1/runs/{run}/metrics",
            json={"points": [{"key": "loss", "step": 0, "value": 1.0}]},
        )
        body = f"```chart\nruns: [{run}]\nmetrics: [loss]\n```"
        report = api.post(
            "/api/v1/reports", json={"project": "lab/shared", "title": "R", "body": body}
        )
        link = api.post(f"/api/v1/reports/{report.json()['id']}/share-links", json={}).json()
        url = server.url.replace("http://", "ws://") + f"/ws/share/{link['token']}/"
        with connect(url, origin=server.url, open_timeout=CEILING) as socket:
            api.delete(f"/api/v1/share-links/{link['id']}").raise_for_status()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    socket.recv(timeout=CEILING)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_NOT_FOUND
