"""A Slack incoming-webhook URL is a secret: anyone holding it posts to the channel.

The security review read Slack URLs through the API as a viewer and with a
read-only token. They are now shown with their key masked, to everyone, as a
webhook's secret is; a client sending the config back as shown keeps the URL.
"""

from __future__ import annotations

import pytest

from alerts.models import Destination
from tests.conftest import World
from tracking import services
from tracking.models import TokenScope

pytestmark = pytest.mark.django_db

URL = "https://93.184.216.34/services/T01ABC/B02DEF/xoxbSuperSecretKey42"
SHOWN = "https://93.184.216.34/services/T01ABC/B02DEF/********"


def test_no_one_reads_a_slack_urls_key_and_saving_it_as_shown_keeps_it(world: World):
    body = {"team": "acme", "kind": "slack", "name": "chan", "config": {"url": URL}}
    created = world.owner.client().post("/api/v1/destinations", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["config"] == {"url": SHOWN}
    _, raw = services.token_create(user=world.viewer.user, name="ro", scope=TokenScope.READ)
    for headers in ({}, {"HTTP_AUTHORIZATION": f"Bearer {raw}"}):
        client = world.viewer.client()
        if headers:
            client.credentials(**headers)
        listed = client.get("/api/v1/destinations")
        assert listed.status_code == 200
        assert "xoxbSuperSecretKey42" not in listed.content.decode()
        assert listed.json()[0]["config"]["url"] == SHOWN
    path = f"/api/v1/destinations/{created.json()['id']}"
    renamed = world.owner.client().patch(
        path, {"name": "renamed", "config": {"url": SHOWN}}, format="json"
    )
    assert renamed.status_code == 200, renamed.content
    assert Destination.objects.get().config == {"url": URL}
    assert "xoxbSuperSecretKey42" not in renamed.content.decode()
