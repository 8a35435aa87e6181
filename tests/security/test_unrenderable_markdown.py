"""Markdown that python-markdown cannot render never breaks a page or an API.

The security review crashed the renderer with a 4,001-character comment of
nested ``*`` (RecursionError): the thread's comments API then answered 500 for
everyone, and an editor could do the same to a report and its share link.
Rendering now shows such text escaped, as it is, and logs it.
"""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from reports_app import markup, services
from tests.conftest import World
from tracking import services as tracking_services

NESTED = "*" * 2000 + "<b>a</b>" + "*" * 2000  # nested emphasis, 4,008 characters

pytestmark = pytest.mark.django_db


def test_the_renderer_shows_what_it_cannot_render_as_escaped_text(caplog):
    with caplog.at_level(logging.WARNING, logger="reports_app.markup"):
        html = markup.to_html(NESTED)
    assert html.startswith('<pre class="markdown-unrendered">')
    assert "&lt;b&gt;a&lt;/b&gt;" in html and "<b>" not in html
    assert "could not be rendered (RecursionError" in caplog.text


def test_a_viewers_unrenderable_comment_leaves_the_thread_readable(world: World):
    run = tracking_services.run_create(user=world.editor.user, project=world.project, name="r")
    target = f"run:{run.pk}"
    created = world.viewer.client().post(
        "/api/v1/comments", {"target": target, "body": NESTED}, format="json"
    )
    assert created.status_code == 201, created.content
    for persona in (world.owner, world.viewer):
        listed = persona.client().get("/api/v1/comments", {"target": target})
        assert listed.status_code == 200, listed.content
        (item,) = listed.json()["results"] if "results" in listed.json() else listed.json()
        assert item["body_html"].startswith('<pre class="markdown-unrendered">')


def test_an_unrenderable_report_still_opens_and_so_does_its_share_link(world: World):
    report = services.report_create(
        user=world.owner.user, project=world.project, title="Deep", body=NESTED
    )
    client = Client()
    client.force_login(world.viewer.user)
    page = client.get(f"/reports/{report.pk}/")
    assert page.status_code == 200
    assert b"markdown-unrendered" in page.content
    _link, token = services.share_link_create(user=world.owner.user, report=report)
    shared = Client().get(f"/s/{token}")
    assert shared.status_code == 200
    assert b"markdown-unrendered" in shared.content
