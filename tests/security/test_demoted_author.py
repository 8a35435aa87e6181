"""Permissions follow the current role: an author demoted to viewer keeps no more than a viewer.

The review found a demoted author still creating share links for their
report and deleting it.
"""

from __future__ import annotations

import pytest

from reports_app import services as report_services
from reports_app.models import Report, ShareLink, Visibility
from tests.conftest import World
from tracking import services
from tracking.models import Role

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("visibility", [Visibility.TEAM, Visibility.PRIVATE])
def test_an_author_demoted_to_viewer_can_no_longer_share_edit_or_delete(world: World, visibility):
    report = report_services.report_create(
        user=world.editor.user, project=world.project, title="Mine", body="x", visibility=visibility
    )
    client = world.editor.client()
    base = f"/api/v1/reports/{report.pk}"
    assert client.post(f"{base}/share-links", {}, format="json").status_code == 201
    services.membership_set(team=world.team, user=world.editor.user, role=Role.VIEWER)

    assert client.post(f"{base}/share-links", {}, format="json").status_code == 403
    revision = Report.objects.get(pk=report.pk).revision
    edit = {"title": "Still mine?", "revision": revision}
    assert client.patch(base, edit, format="json").status_code in (403, 404)
    assert client.delete(base).status_code in (403, 404)
    assert ShareLink.objects.filter(report=report).count() == 1
    assert Report.objects.get(pk=report.pk).title == "Mine"

    services.membership_set(team=world.team, user=world.editor.user, role=Role.EDITOR)
    assert client.post(f"{base}/share-links", {}, format="json").status_code == 201
