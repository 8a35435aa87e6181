"""Real parts for the transports: an HTTP receiver and an SMTP server, both on loopback.

The guard refuses loopback by default, and that is what every test gets
(``private_denied`` is autouse, whatever the environment says). Tests that
deliver to the receiver ask for ``allow_private``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from alerts import recent_points
from alerts.transports import email as email_transport
from alerts.transports import http
from tests.alerts.receiver import Receiver
from tests.smtp import Inbox, SmtpServer


@pytest.fixture(autouse=True)
def private_denied(settings: Any) -> dict[str, Any]:
    settings.LABBOOK = {**settings.LABBOOK, "ALERTS_ALLOW_PRIVATE_WEBHOOKS": False}
    return settings.LABBOOK


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    """No test sees the newest points another kept (alerts.recent_points)."""
    recent_points.forget()
    yield
    recent_points.forget()


@pytest.fixture
def allow_private(settings: Any, private_denied: dict[str, Any]) -> dict[str, Any]:
    """Lets the guard pass loopback (the receiver); returns the live LABBOOK dict."""
    settings.LABBOOK = {**settings.LABBOOK, "ALERTS_ALLOW_PRIVATE_WEBHOOKS": True}
    return settings.LABBOOK


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def quick_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(http, "TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(email_transport, "TIMEOUT_SECONDS", 0.5)
    return 0.5


@pytest.fixture
def smtp(settings: Any) -> Iterator[Inbox]:
    """A real SMTP server on a free loopback port, with Django's SMTP backend pointed at it."""
    with SmtpServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = server.port
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        yield server.inbox


class FakeDNS:
    """Answers for chosen names only; every other name goes to the real resolver.

    ``answer(name, [...], [...])`` gives one answer per lookup in order, the last
    one repeating; ``None`` as an answer means "does not resolve".
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.answers: dict[str, list[list[str] | None]] = {}
        self.lookups: list[str] = []

    def answer(self, name: str, *answers: list[str] | None) -> None:
        self.answers[name] = list(answers)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[tuple]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(name)
        queue = self.answers[name]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [entry(address, int(port or 0)) for address in addresses]


def entry(address: str, port: int) -> tuple:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    """Replaces the resolver at the edge (socket.getaddrinfo), for rebinding-style names."""
    dns = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    return dns


@pytest.fixture
def hook(world: Any) -> Any:
    """An email destination of team acme (the shared destination of the alerting tests)."""
    from alerts import services
    from tracking import selectors

    team, role = selectors.team_get_for_user(world.owner.user, "acme")
    return services.destination_create(
        user=world.owner.user,
        team=team,
        role=role,
        kind="email",
        name="oncall",
        config={"addresses": ["oncall@example.com"]},
    )


def make_rule(world: Any, destination: Any, trigger: str, params=None, **fields) -> Any:
    """A rule on acme/mnist sending to ``destination`` at once (group_wait 0)."""
    from alerts import services
    from tracking import selectors

    project = selectors.project_get_for_user(world.owner.user, "acme/mnist")
    data = {"name": trigger, "trigger": trigger, "params": params or {}, "group_wait": 0}
    data = {**data, "destinations": [destination.pk], **fields}
    return services.rule_create(user=world.owner.user, project=project, data=data)
