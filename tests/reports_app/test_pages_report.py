"""The report page, its share link and its offline export."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from reports_app import services
from reports_app.models import Report, ShareLink
from tests.conftest import World
from tracking import selectors
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest


def _project(world: World, persona: str = "owner"):
    return selectors.project_get_for_user(world.persona(persona).user, "acme/mnist")


def _report(world: World, body: str = "# Findings", persona: str = "owner", **fields) -> Report:
    return services.report_create(
        user=world.persona(persona).user,
        project=_project(world, persona),
        title="Findings",
        body=body,
        **fields,
    )


def _chart_report(world: World) -> tuple[Report, int]:
    run = tracking_services.run_create(user=world.owner.user, project=world.project, name="r1")
    metrics_ingest(run=run, points=[Point("loss", s, 1.0 / (s + 1), 10.0 + s) for s in range(5)])
    body = f"# Loss\n\nrun:{run.pk} is ours.\n\n```chart\nruns: [{run.pk}]\nmetrics: [loss]\n```"
    return _report(world, body), run.pk


def _config(page: str) -> dict:
    found = re.search(r'<script id="report-config" type="application/json">(.*?)</script>', page)
    return json.loads(found.group(1))


# --- The report page ---------------------------------------------------------------------


def test_a_viewer_reads_the_report_with_its_live_chart(client, world):
    report, run_id = _chart_report(world)
    client.force_login(world.viewer.user)
    response = client.get(f"/reports/{report.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<h1 id="r-loss">Loss</h1>' in page
    assert 'data-figure="0"' in page and "/static/plotly/plotly-strict.min.js" in page
    config = _config(page)
    assert config["live"] == {"runs": [run_id], "projects": []}
    assert config["figures"][0]["figure"]["data"][0]["meta"]["run"] == run_id
    assert config["blockUrl"] == f"/reports/{report.pk}/blocks/0" and config["share"] is None
    assert ">Edit<" not in page and ">Share<" not in page  # viewers read and comment
    assert ">History<" in page and ">Export<" in page


def test_editors_get_edit_and_owners_share(client, world):
    report = _report(world, persona="editor")
    client.force_login(world.editor.user)
    page = client.get(f"/reports/{report.pk}/").content.decode()
    assert ">Edit<" in page and ">Share<" in page  # the author shares
    client.force_login(world.owner.user)
    assert ">Share<" in client.get(f"/reports/{report.pk}/").content.decode()


@pytest.mark.parametrize("persona", ["outsider"])
def test_outsiders_get_404(client, world, persona):
    report = _report(world)
    client.force_login(world.persona(persona).user)
    assert client.get(f"/reports/{report.pk}/").status_code == 404
    assert client.get(f"/reports/{report.pk}/blocks/0").status_code == 404
    assert client.get(f"/reports/{report.pk}/export.html").status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client, world):
    report = _report(world)
    response = client.get(f"/reports/{report.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_private_report_is_404_for_teammates(client, world):
    report = _report(world, persona="editor", visibility="private")
    client.force_login(world.owner.user)
    assert client.get(f"/reports/{report.pk}/").status_code == 404


def test_a_chart_block_is_drawn_again_on_request(client, world):
    report, run_id = _chart_report(world)
    client.force_login(world.viewer.user)
    figure = client.get(f"/reports/{report.pk}/blocks/0").json()
    assert figure["block"] == 0 and figure["figure"]["data"][0]["meta"]["run"] == run_id
    assert client.get(f"/reports/{report.pk}/blocks/7").status_code == 404


# --- Share links --------------------------------------------------------------------------


def _link(world: World, report: Report, **fields) -> str:
    report = selectors_report(world, report)
    return services.share_link_create(report=report, user=world.owner.user, **fields)[1]


def selectors_report(world: World, report: Report) -> Report:
    from reports_app import selectors as report_selectors

    return report_selectors.report_get_for_user(world.owner.user, report.pk)


def test_anyone_with_the_link_reads_the_report_and_nothing_else(client, world):
    report, run_id = _chart_report(world)
    token = _link(world, report)
    response = client.get(f"/s/{token}")
    assert response.status_code == 200
    assert response["Referrer-Policy"] == "no-referrer"
    page = response.content.decode()
    assert "r1" in page and f"/runs/{run_id}" not in page  # runs named, never linked
    assert ">Edit<" not in page and "Comments" not in page
    config = _config(page)
    assert config["share"] == token and config["blockUrl"] == f"/s/{token}/blocks/0"
    assert client.get(f"/s/{token}/blocks/0").json()["block"] == 0
    assert client.get(f"/reports/{report.pk}/").status_code == 302  # the link opens one page
    assert client.get(f"/api/v1/runs/{run_id}").status_code == 401
    link = ShareLink.objects.get()
    assert link.access_count == 1 and link.last_accessed_at is not None


def test_a_link_can_hide_the_authors(client, world):
    report = _report(world, persona="editor")
    services.report_save(
        report=selectors_report(world, report), user=world.owner.user, revision=1, body="v2"
    )
    page = client.get(f"/s/{_link(world, report)}").content.decode()
    assert "bob" in page and "alice" in page
    hidden = client.get(f"/s/{_link(world, report, hide_authors=True)}").content.decode()
    assert "bob" not in hidden and "alice" not in hidden


def test_an_expired_revoked_or_made_up_link_is_404(client, world):
    report = _report(world)
    expiring = _link(world, report, expires_at=timezone.now() + timedelta(seconds=60))
    revoked = _link(world, report)
    ShareLink.objects.filter(expires_at__isnull=False).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    link = ShareLink.objects.get(token_hash=ShareLink.hash(revoked))
    link.report = selectors_report(world, report)
    services.share_link_revoke(link=link, user=world.owner.user)
    says = {
        expiring: "This share link has expired",
        revoked: "This share link was revoked",
        "s_made-up": "This share link does not exist",
    }
    for token, heading in says.items():
        page = client.get(f"/s/{token}")
        assert page.status_code == 404, token
        assert page["Referrer-Policy"] == "no-referrer"  # the token stays in this page
        text = page.content.decode()
        assert heading in text and "Ask the person who sent it for a new link" in text
        assert "Findings" not in text  # nothing of the report (its title) is shown
        assert "next=" not in text  # the login link does not carry the link's token
        assert client.get(f"/s/{token}/blocks/0").status_code == 404


# --- Export ---------------------------------------------------------------------------------


class _Fetches(HTMLParser):
    """Every URL the page's markup would load or link to (scripts' text is not markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action")]


def test_the_export_is_one_file_that_needs_nothing_from_outside(client, world):
    report, _run_id = _chart_report(world)
    client.force_login(world.viewer.user)
    response = client.get(f"/reports/{report.pk}/export.html")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="findings.html"'
    html = response.content.decode()
    fetches = _Fetches()
    fetches.feed(html)
    assert [url for url in fetches.urls if not url.startswith("#")] == []
    assert "Plotly" in html and ".report-body" in html  # plotly.js and the stylesheet inline
    config = _config(html)
    assert config["figures"][0]["live"] is False and config["live"]["runs"] == []


def test_a_title_full_of_markup_is_shown_as_text(client, world):
    report = _report(world)
    Report.objects.filter(pk=report.pk).update(
        title="<script>alert(1)</script><img src=x onerror=alert(2)>"
    )
    client.force_login(world.viewer.user)
    page = client.get(f"/reports/{report.pk}/").content.decode()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
