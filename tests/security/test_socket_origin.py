"""A websocket opens only from the page's own origin, scheme and port included.

Channels' host-only check accepted ``http://localhost:9999`` (any other
program on the machine) for a server on port 8000 (security review).
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from labbook.asgi import application
from labbook.socket_origin import allowed_origin
from tests.conftest import World
from tests.reports_app.test_live import socket_headers


def scope(host: str, origin: str | None, scheme: str = "ws") -> dict:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@override_settings(ALLOWED_HOSTS=["localhost", "127.0.0.1"], CSRF_TRUSTED_ORIGINS=[])
@pytest.mark.parametrize(
    ("host", "origin", "scheme", "allowed"),
    [
        ("localhost:8000", "http://localhost:8000", "ws", True),
        ("localhost", "http://localhost", "ws", True),
        ("localhost", "http://localhost:80", "ws", True),
        ("localhost:8000", "http://localhost:9999", "ws", False),  # another port
        ("localhost:8000", "https://localhost:8000", "ws", False),  # another scheme
        ("localhost:8000", "http://127.0.0.1:8000", "ws", False),  # another host
        ("localhost:443", "https://localhost", "wss", True),
        ("localhost:8000", None, "ws", False),  # no Origin: not a browser page
        ("localhost:8000", "null", "ws", False),  # a sandboxed frame or a file: page
        ("evil.example:8000", "http://evil.example:8000", "ws", False),  # not an allowed host
        ("localhost:8000", "http://localhost:80000", "ws", False),  # no such port
    ],
)
def test_only_the_same_origin_may_open_a_socket(host, origin, scheme, allowed):
    assert allowed_origin(scope(host, origin, scheme)) is allowed


@override_settings(
    ALLOWED_HOSTS=["labbook.internal"], CSRF_TRUSTED_ORIGINS=["https://labbook.example.org"]
)
def test_a_trusted_origin_behind_a_tls_proxy_may_open_one():
    assert allowed_origin(scope("labbook.internal:8000", "https://labbook.example.org"))
    assert not allowed_origin(scope("labbook.internal:8000", "https://labbook.example.org:8443"))


@pytest.mark.django_db
def test_the_application_refuses_another_port_before_any_consumer_runs(world: World):
    headers = [
        (key, value + b":9999" if key == b"origin" else value)
        for key, value in socket_headers(world.viewer)
    ]

    async def body() -> None:
        connected, _ = await WebsocketCommunicator(
            application, "/ws/live/", headers=headers
        ).connect()
        assert not connected

    async_to_sync(body)()
