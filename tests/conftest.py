"""Shared personas: a team 'acme' with an owner, an editor and a viewer, and an outsider.

The outsider owns a team of their own ('rival'), so isolation tests prove a
member of *some* team still sees nothing of another.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from tracking import services
from tracking.models import Project, Role, Team


@dataclass
class Persona:
    name: str
    user: object
    token: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")
        return client


@dataclass
class World:
    team: Team
    rival: Team
    project: Project
    owner: Persona
    editor: Persona
    viewer: Persona
    outsider: Persona

    def persona(self, name: str) -> Persona:
        return getattr(self, name)


def make_persona(username: str) -> Persona:
    user, _ = services.user_get_or_create(username=username)
    _, raw = services.token_create(user=user, name=f"{username}'s laptop")
    return Persona(username, user, raw)


@pytest.fixture
def world(db) -> World:
    owner = make_persona("alice")
    editor = make_persona("bob")
    viewer = make_persona("carol")
    outsider = make_persona("mallory")
    team = services.team_create(slug="acme", owner=owner.user)
    services.membership_set(team=team, user=editor.user, role=Role.EDITOR)
    services.membership_set(team=team, user=viewer.user, role=Role.VIEWER)
    rival = services.team_create(slug="rival", owner=outsider.user)
    project = services.project_create(user=owner.user, team_slug="acme", slug="mnist")
    return World(team, rival, project, owner, editor, viewer, outsider)


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()
