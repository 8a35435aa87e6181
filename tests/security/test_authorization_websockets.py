"""Who may listen on which websocket: the routes of ``labbook.asgi``, not in the URL conf.

``SOCKETS`` holds a decision per route, and a route without one fails, as in
``test_authorization_matrix``. The sockets run through the real ASGI
application (origin check, session auth, URL router) with the persona's
session cookie, as a browser opens them.

* ``/ws/live/``: a stranger is closed with 4401; an outsider is told
  ``not_found`` for every run, project and discussion of acme and joins
  nothing; acme's members join them all, except the discussion of a private
  report, which is its author's alone.
* ``/ws/share/<token>/``: whoever holds a live link is let in, whoever they
  are; a revoked link is closed with 4404 for everybody.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from labbook.asgi import application, websocket_urlpatterns
from reports_app import selectors, services
from reports_app.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from tests.conftest import World
from tests.reports_app.test_live import fresh_layer, scenario, socket_headers
from tracking import selectors as tracking_selectors
from tracking import services as tracking_services

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["fresh_layer"]  # the autouse fixture: a new channel layer per test

PERSONAS = ("anonymous", "outsider", "viewer", "editor", "owner")

# What each persona gets from each route: "closed:<code>", "not_found" (connected,
# every subscription refused), "subscribed" (every subscription joined), "open".
SOCKETS: dict[str, dict[str, str]] = {
    "ws/live/": {
        "anonymous": f"closed:{CLOSE_UNAUTHENTICATED}",
        "outsider": "not_found",
        "viewer": "subscribed",
        "editor": "subscribed",
        "owner": "subscribed",
    },
    "ws/share/<str:token>/": dict.fromkeys(PERSONAS, "open"),
}


def test_it_has_a_decision_for_every_websocket_route() -> None:
    assert {str(route.pattern) for route in websocket_urlpatterns} == set(SOCKETS)


def _headers(world: World, persona: str) -> list[tuple[bytes, bytes]]:
    """A browser's: this site's origin, and the persona's session cookie."""
    return socket_headers(None if persona == "anonymous" else world.persona(persona))


def _targets(world: World) -> dict[str, list[Any]]:
    """A run, the project and both discussions (the run's and a report's) of acme."""
    owner = world.owner.user
    run = tracking_services.run_create(user=owner, project=world.project, name="r")
    project = tracking_selectors.project_get_for_user(owner, "acme/mnist")
    report = services.report_create(user=owner, project=project, title="R")
    return {
        "runs": [run.pk],
        "projects": ["acme/mnist"],
        "comments": [f"run:{run.pk}", f"report:{report.pk}"],
    }


def _refusals(targets: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = {"runs": "run", "projects": "project", "comments": "comments"}
    return [
        {"type": "error", "code": "not_found", keys[kind]: ident}
        for kind, idents in targets.items()
        for ident in idents
    ]


def _expected(outcome: str, targets: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The answers to one subscription to ``targets``: every one joined, or every one refused."""
    joined = {"runs": [], "projects": [], **targets}
    if outcome == "subscribed":
        return [{"type": "subscribed", **joined}]
    return [*_refusals(targets), {"type": "subscribed", **{kind: [] for kind in joined}}]


def _live(headers: list[tuple[bytes, bytes]], targets: dict[str, list[Any]]) -> list[dict]:
    """What ``/ws/live/`` answers a subscription to ``targets``: its close, or its messages."""

    async def body() -> list[dict]:
        socket = WebsocketCommunicator(application, "/ws/live/", headers=headers)
        assert (await socket.connect())[0]
        await socket.send_json_to({"subscribe": targets})
        answers = [await socket.receive_output()]
        while answers[-1]["type"] == "websocket.send" and '"subscribed"' not in answers[-1]["text"]:
            answers.append(await socket.receive_output())
        await socket.disconnect()
        return answers

    return async_to_sync(body)()


def _messages(answers: list[dict]) -> list[dict]:
    return [json.loads(answer["text"]) for answer in answers]


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_live_socket_lets_only_members_join_acme(world: World, persona: str) -> None:
    expected = SOCKETS["ws/live/"][persona]
    targets = _targets(world)
    answers = _live(
        socket_headers(world.persona(persona) if persona != "anonymous" else None), targets
    )
    if expected.startswith("closed:"):
        assert answers == [{"type": "websocket.close", "code": int(expected.split(":")[1])}]
    else:
        assert _messages(answers) == _expected(expected, targets)


# The discussion of the editor's private report: his alone, owners included.
PRIVATE_DISCUSSION = {
    "outsider": "not_found",
    "viewer": "not_found",
    "editor": "subscribed",
    "owner": "not_found",
}


@pytest.mark.parametrize("persona", list(PRIVATE_DISCUSSION))
def test_a_private_reports_discussion_is_its_authors_alone(world: World, persona: str) -> None:
    bob = world.editor.user
    project = tracking_selectors.project_get_for_user(bob, "acme/mnist")
    report = services.report_create(user=bob, project=project, title="R", visibility="private")
    targets = {"comments": [f"report:{report.pk}"]}
    answers = _live(socket_headers(world.persona(persona)), targets)
    assert _messages(answers) == _expected(PRIVATE_DISCUSSION[persona], targets)


def _share_token(world: World, *, revoked: bool) -> str:
    owner = world.owner.user
    project = tracking_selectors.project_get_for_user(owner, "acme/mnist")
    report = services.report_create(user=owner, project=project, title="R")
    report = selectors.report_get_for_user(owner, report.pk)
    link, token = services.share_link_create(report=report, user=owner)
    if revoked:
        services.share_link_revoke(link=link, user=owner)
    return token


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("revoked", [False, True], ids=["live-link", "revoked-link"])
def test_the_share_socket_opens_for_the_holder_of_a_live_link(
    world: World, persona: str, revoked: bool
) -> None:
    expected = f"closed:{CLOSE_NOT_FOUND}" if revoked else SOCKETS["ws/share/<str:token>/"][persona]
    token = _share_token(world, revoked=revoked)
    headers = _headers(world, persona)

    async def body() -> None:
        socket = WebsocketCommunicator(application, f"/ws/share/{token}/", headers=headers)
        assert (await socket.connect())[0]
        if expected == "open":
            await socket.send_json_to({"subscribe": {"runs": [1]}})  # the link chose already
            assert await socket.receive_json_from() == {"type": "subscribed"}
            await socket.disconnect()
        else:
            closed = await socket.receive_output()
            assert closed == {"type": "websocket.close", "code": int(expected.split(":")[1])}

    scenario(body)
