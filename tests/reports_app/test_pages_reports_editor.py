"""The report authoring pages: list, new, editor, history, one revision, diff and sharing.

Every page is checked for every persona (owner, editor, viewer, outsider,
anonymous); every POST is also sent by the roles that may not make it,
which must be refused and change nothing.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from reports_app import revision_diff, selectors, services
from reports_app.models import Report, ReportRevision, ShareLink
from tests.conftest import World
from tracking import selectors as tracking_selectors
from tracking import services as tracking_services
from tracking.ingest import Point, metrics_ingest

LIST = "/acme/mnist/reports/"
NEW = "/acme/mnist/reports/new"
NEW_URL = re.compile(r'id="new-link-url" class="token-value" value="([^"]+)"')


def _login(client, world: World, persona: str):
    client.force_login(world.persona(persona).user)
    return client


def _report(world: World, *, persona: str = "owner", **fields) -> Report:
    user = world.persona(persona).user
    project = tracking_selectors.project_get_for_user(user, "acme/mnist")
    fields = {"title": "Findings", "body": "Hello", **fields}
    return services.report_create(user=user, project=project, **fields)


def _save(world: World, report: Report, *, persona: str = "owner", **fields) -> Report:
    user = world.persona(persona).user
    found = selectors.report_get_for_user(user, report.pk)
    return services.report_save(report=found, user=user, revision=found.revision, **fields)


def _get(client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response
    return response.content.decode()


def _config(page: str, element_id: str) -> dict:
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page)
    assert found, f"no {element_id} in the page"
    return json.loads(found.group(1))


def _urls(report: Report) -> list[str]:
    base = f"/reports/{report.pk}"
    return [f"{base}/edit", f"{base}/revisions/", f"{base}/revisions/1", f"{base}/diff"]


# --- Anonymous visitors and outsiders -----------------------------------------------------


def test_it_sends_anonymous_visitors_to_login_from_every_page(client, world):
    report = _report(world)
    for url in [LIST, NEW, *_urls(report), f"/reports/{report.pk}/share"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/")
    response = client.post(f"/reports/{report.pk}/revisions/1", {"revision": "1"})
    assert response.status_code == 302
    assert ReportRevision.objects.count() == 1


def test_it_hides_every_page_from_outsiders(client, world):
    report = _report(world)
    _login(client, world, "outsider")
    for url in [LIST, NEW, *_urls(report), f"/reports/{report.pk}/share", "/reports/999/edit"]:
        assert client.get(url).status_code == 404, url
    assert client.post(NEW, {"title": "Mine now"}).status_code == 404
    assert client.post(f"/reports/{report.pk}/share").status_code == 404
    assert Report.objects.count() == 1
    assert ShareLink.objects.count() == 0


def test_it_hides_a_private_report_from_teammates(client, world):
    report = _report(world, title="Secret plan", visibility="private")
    _login(client, world, "editor")
    assert "Secret plan" not in _get(client, LIST)
    for url in [*_urls(report), f"/reports/{report.pk}/share"]:
        assert client.get(url).status_code == 404, url


# --- The list -----------------------------------------------------------------------------


def test_it_lists_the_projects_reports_for_a_viewer_without_a_new_button(client, world):
    report = _report(world, title="Learning-rate sweep")
    _save(world, report, persona="editor", body="More")
    _report(world, title="Only mine", visibility="private")
    page = _get(_login(client, world, "viewer"), LIST)
    assert f'href="/reports/{report.pk}/">Learning-rate sweep</a>' in page
    assert ">r2</a>" in page
    assert "alice" in page  # the author
    assert "Only mine" not in page
    assert "New report" not in page
    assert "1 report" in page


def test_it_offers_editors_a_new_report_button(client, world):
    page = _get(_login(client, world, "editor"), LIST)
    assert 'href="/acme/mnist/reports/new"' in page
    assert "No reports in acme/mnist yet" in page


def test_it_marks_private_reports_for_their_author(client, world):
    _report(world, title="Draft thoughts", visibility="private")
    page = _get(_login(client, world, "owner"), LIST)
    assert "Draft thoughts" in page
    assert ">private</span>" in page


def test_it_searches_titles_and_text(client, world):
    _report(world, title="Dropout ablation", body="nothing special")
    _report(world, title="Optimizers", body="AdamW beats SGD with dropout off")
    _report(world, title="Unrelated", body="tokenizers")
    _login(client, world, "viewer")
    page = _get(client, LIST + "?q=dropout")
    assert "Dropout ablation" in page and "Optimizers" in page
    assert "Unrelated" not in page
    assert "2 reports matching" in page
    assert "No report mentions" in _get(client, LIST + "?q=nothing-like-this")


def test_it_paginates_by_30(client, world):
    for i in range(32):
        _report(world, title=f"Report {i:02d}")
    _login(client, world, "viewer")
    first = _get(client, LIST)
    assert first.count('<tr data-report-id="') == 30
    assert "Page 1 of 2" in first
    assert 'href="?page=2"' in first
    assert _get(client, LIST + "?page=2").count('<tr data-report-id="') == 2


# session, user, project, count, reports, teams in the top bar
LIST_QUERIES = 6


def _list_queries(client, django_assert_max_num_queries) -> int:
    with django_assert_max_num_queries(LIST_QUERIES) as queries:
        assert client.get(LIST, {"q": "Report"}).status_code == 200
    return len(queries)


def test_it_costs_the_same_queries_for_3_and_30_reports(
    client, world, django_assert_max_num_queries
):
    _login(client, world, "viewer")
    for i in range(3):
        _report(world, title=f"Report {i}")
    few = _list_queries(client, django_assert_max_num_queries)
    for i in range(3, 30):
        _report(world, title=f"Report {i}", persona="editor")
    assert _list_queries(client, django_assert_max_num_queries) == few


# --- New report ---------------------------------------------------------------------------


def test_it_refuses_viewers_a_new_report_and_writes_nothing(client, world):
    _login(client, world, "viewer")
    assert client.get(NEW).status_code == 403
    assert client.post(NEW, {"title": "Sneaky", "visibility": "team"}).status_code == 403
    assert Report.objects.count() == 0
    assert ReportRevision.objects.count() == 0


def test_it_creates_a_report_and_opens_the_editor(client, world):
    _login(client, world, "editor")
    assert 'name="title"' in _get(client, NEW)
    response = client.post(NEW, {"title": "Why val loss spikes", "visibility": "private"})
    report = Report.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/reports/{report.pk}/edit"
    assert (report.title, report.visibility, report.author) == (
        "Why val loss spikes",
        "private",
        world.editor.user,
    )
    assert report.revisions.count() == 1


def test_it_shows_the_form_again_for_a_blank_title(client, world):
    _login(client, world, "owner")
    response = client.post(NEW, {"title": "  ", "visibility": "team"})
    assert response.status_code == 400
    assert 'id="report-title-error"' in response.content.decode()
    assert Report.objects.count() == 0


# --- The editor ---------------------------------------------------------------------------


def test_it_gives_the_editor_what_it_needs(client, world):
    report = _report(world, body="# Results\n\nrun:1")
    page = _get(_login(client, world, "editor"), f"/reports/{report.pk}/edit")
    config = _config(page, "editor-config")
    assert config["report"] == report.pk
    assert config["revision"] == 1
    assert config["body"] == "# Results\n\nrun:1"
    assert config["project"] == "acme/mnist"
    assert config["draft"] is None
    assert config["csrf"]
    assert config["urls"]["preview"] == f"/api/v1/reports/{report.pk}/preview"
    assert config["urls"]["metrics"] == "/api/v1/runs/0/metrics"
    assert config["visibility"] is None  # an editor does not choose who sees alice's report
    assert 'id="editor-visibility"' not in page
    for control in ('data-md="bold"', 'data-md="table"', 'data-builder-open="chart"', "data-save"):
        assert control in page
    assert "labbook/editor.js" in page and "plotly/plotly-strict.min.js" in page


def test_it_lets_the_author_choose_the_visibility(client, world):
    report = _report(world)
    page = _get(_login(client, world, "owner"), f"/reports/{report.pk}/edit")
    assert 'id="editor-visibility"' in page
    assert _config(page, "editor-config")["visibility"] == "team"


def test_it_refuses_the_editor_to_viewers(client, world):
    report = _report(world)
    assert client.get(f"/reports/{report.pk}/edit").status_code == 302
    _login(client, world, "viewer")
    assert client.get(f"/reports/{report.pk}/edit").status_code == 403


def test_it_offers_a_draft_that_differs_from_the_report(client, world):
    report = _report(world, body="Saved text")
    found = selectors.report_get_for_user(world.editor.user, report.pk)
    services.draft_save(
        report=found, user=world.editor.user, title="Findings", body="Typed", base_revision=1
    )
    draft = _config(
        _get(_login(client, world, "editor"), f"/reports/{report.pk}/edit"), "editor-config"
    )["draft"]
    assert (draft["body"], draft["revision"]) == ("Typed", 1)
    services.draft_save(
        report=found, user=world.editor.user, title="Findings", body="Saved text", base_revision=1
    )
    page = _get(client, f"/reports/{report.pk}/edit")
    assert _config(page, "editor-config")["draft"] is None  # discarded: nothing to offer


def test_it_keeps_report_text_out_of_the_pages_markup(client, world):
    report = _report(world, title="<script>alert(1)</script>", body="</textarea><script>x</script>")
    page = _get(_login(client, world, "owner"), f"/reports/{report.pk}/edit")
    assert "<script>alert(1)" not in page
    assert "</textarea><script>x" not in page


# --- History ------------------------------------------------------------------------------


def test_it_lists_revisions_for_a_viewer_without_restore_buttons(client, world):
    report = _report(world, body="one")
    _save(world, report, persona="editor", body="two")
    page = _get(_login(client, world, "viewer"), f"/reports/{report.pk}/revisions/")
    assert page.count('<tr data-revision="') == 2
    assert "bob" in page and "alice" in page
    assert f'href="/reports/{report.pk}/revisions/1"' in page
    assert (
        'name="from" value="1" form="compare" aria-label="Compare from revision 1" checked' in page
    )
    assert 'name="to" value="2" form="compare" aria-label="Compare to revision 2" checked' in page
    assert "Restore" not in page


def test_it_offers_editors_to_restore_old_revisions(client, world):
    report = _report(world, body="one")
    _save(world, report, body="two")
    page = _get(_login(client, world, "editor"), f"/reports/{report.pk}/revisions/")
    assert f'action="/reports/{report.pk}/revisions/1"' in page
    assert f'action="/reports/{report.pk}/revisions/2"' not in page  # the newest is current
    assert 'name="revision" value="2"' in page


def test_it_shows_one_revision_drawn_with_frozen_charts(client, world):
    run = tracking_services.run_create(user=world.owner.user, project=world.project, name="a")
    metrics_ingest(run=run, points=[Point("loss", s, 1.0 / (s + 1), 1.0) for s in range(3)])
    chart = f"```chart\nruns: [{run.pk}]\nmetrics: [loss]\n```"
    report = _report(world, title="Old title", body=f"# First take\n\n{chart}")
    _save(world, report, title="New title", body="# Second take")
    page = _get(_login(client, world, "viewer"), f"/reports/{report.pk}/revisions/1")
    assert "<h1>Old title</h1>" in page
    assert "First take" in page and "Second take" not in page
    assert 'data-figure="0"' in page
    config = _config(page, "report-config")
    assert [figure["live"] for figure in config["figures"]] == [False]  # drawn once, no socket
    assert config["live"] == {"runs": [], "projects": []}
    assert "labbook/live.js" not in page
    assert "Restore" not in page


def test_it_answers_404_for_a_revision_that_does_not_exist(client, world):
    report = _report(world)
    _login(client, world, "owner")
    assert client.get(f"/reports/{report.pk}/revisions/7").status_code == 404
    assert client.get(f"/reports/{report.pk}/diff?from=1&to=9").status_code == 404


def test_it_restores_a_revision_as_a_new_one(client, world):
    report = _report(world, title="v1", body="first")
    _save(world, report, title="v2", body="second")
    _login(client, world, "editor")
    response = client.post(f"/reports/{report.pk}/revisions/1", {"revision": "2"})
    assert response.status_code == 302
    assert response["Location"] == f"/reports/{report.pk}/"
    report.refresh_from_db()
    assert (report.revision, report.title, report.body) == (3, "v1", "first")
    newest = report.revisions.get(number=3)
    assert (newest.restored_from, newest.author) == (1, world.editor.user)
    history = _get(client, f"/reports/{report.pk}/revisions/")
    assert "restored from 1" in history


def test_it_refuses_a_viewer_restoring_and_writes_nothing(client, world):
    report = _report(world, body="first")
    _save(world, report, body="second")
    _login(client, world, "viewer")
    assert client.post(f"/reports/{report.pk}/revisions/1", {"revision": "2"}).status_code == 403
    report.refresh_from_db()
    assert (report.revision, report.body) == (2, "second")


def test_it_restores_nothing_when_someone_saved_in_between(client, world):
    report = _report(world, body="first")
    _save(world, report, body="second")
    _save(world, report, persona="editor", body="third")  # after the page showed revision 2
    _login(client, world, "owner")
    response = client.post(f"/reports/{report.pk}/revisions/1", {"revision": "2"}, follow=True)
    assert "Nothing was restored" in response.content.decode()
    report.refresh_from_db()
    assert (report.revision, report.body) == (3, "third")


# --- Diff ---------------------------------------------------------------------------------


def _diff_world(world: World) -> Report:
    report = _report(world, title="Sweep", body="intro\nkeep\nlr is 0.1\nold ending\n")
    _save(world, report, title="Sweep results", body="intro\nkeep\nlr is 0.3\nnew line\n")
    return report


def test_it_shows_added_and_removed_lines_side_by_side(client, world):
    report = _diff_world(world)
    page = _get(_login(client, world, "viewer"), f"/reports/{report.pk}/diff")
    assert "revision 1 → 2" in page  # newest-but-one to newest by default
    assert 'data-diff-view="side"' in page
    assert "lr is 0.<del>1</del>" in page and "lr is 0.<ins>3</ins>" in page
    assert "old ending" in page and "new line" in page
    assert '<span class="diff-count diff-added">+2</span>' in page
    assert '<span class="diff-count diff-removed">\u22122</span>' in page  # a minus sign
    assert "<ins> results</ins>" in page  # the title changed too


def test_it_shows_the_same_changes_inline(client, world):
    report = _diff_world(world)
    page = _get(
        _login(client, world, "viewer"), f"/reports/{report.pk}/diff?from=1&to=2&view=inline"
    )
    assert 'data-diff-view="inline"' in page
    rows = re.findall(r'<tr class="(removed|added|same)">', page)
    assert rows == ["same", "same", "removed", "removed", "added", "added"]
    assert 'href="?from=1&amp;to=2"' in page  # back to side by side


def test_it_escapes_markup_in_diffs(client, world):
    report = _report(world, body="<img src=x onerror=alert(1)>")
    _save(world, report, body="<img src=y onerror=alert(2)>")
    page = _get(_login(client, world, "owner"), f"/reports/{report.pk}/diff")
    assert "<img" not in page
    assert "&lt;img src=" in page


def test_it_says_when_two_revisions_have_the_same_text(client, world):
    report = _report(world, body="same")
    _save(world, report, title="Renamed")
    page = _get(_login(client, world, "owner"), f"/reports/{report.pk}/diff")
    assert "only the title changed" in page


def test_it_folds_long_unchanged_stretches():
    old = "\n".join(f"line {i}" for i in range(40))
    new = old.replace("line 20", "line twenty")
    diff = revision_diff.diff(old, new)
    assert [row.kind for row in diff.rows].count("skip") == 2
    assert sum(row.skipped for row in diff.rows) == 40 - 1 - 2 * revision_diff.CONTEXT
    assert (diff.added, diff.removed) == (1, 1)


# --- Sharing ------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["editor", "viewer"])
def test_it_refuses_the_share_dialog_to_other_members(client, world, persona):
    report = _report(world)
    _login(client, world, persona)
    assert client.get(f"/reports/{report.pk}/share").status_code == 403
    assert client.post(f"/reports/{report.pk}/share", {"hide_authors": "on"}).status_code == 403
    assert ShareLink.objects.count() == 0


def test_it_lets_an_editor_share_their_own_report(client, world):
    report = _report(world, persona="editor")
    _login(client, world, "editor")
    assert client.post(f"/reports/{report.pk}/share", {}).status_code == 302
    assert ShareLink.objects.filter(report=report).count() == 1


def test_it_creates_a_link_and_shows_it_once(client, world):
    report = _report(world, title="Shared findings")
    _login(client, world, "owner")
    response = client.post(f"/reports/{report.pk}/share", {"hide_authors": "on"})
    assert response.status_code == 302
    assert response["Location"] == f"/reports/{report.pk}/share"
    page = _get(client, f"/reports/{report.pk}/share")
    url = NEW_URL.search(page).group(1)
    assert url.startswith("http://testserver/s/s_")
    assert "it will not be shown again" in page
    link = ShareLink.objects.get()
    assert link.hide_authors and link.created_by == world.owner.user
    assert f"<code>/s/{link.prefix}…</code>" in page
    assert ">active</span>" in page
    again = _get(client, f"/reports/{report.pk}/share")
    assert NEW_URL.search(again) is None  # shown once
    client.logout()
    shared = _get(client, url.removeprefix("http://testserver"))
    assert "Shared findings" in shared


def test_it_revokes_a_link(client, world):
    report = _report(world)
    link, token = services.share_link_create(
        report=selectors.report_get_for_user(world.owner.user, report.pk), user=world.owner.user
    )
    _login(client, world, "owner")
    response = client.post(f"/reports/{report.pk}/share", {"revoke": str(link.pk)}, follow=True)
    page = response.content.decode()
    assert "Revoked the link" in page
    assert ">revoked</span>" in page
    link.refresh_from_db()
    assert link.revoked_at is not None
    assert client.get(f"/s/{token}").status_code == 404


def test_it_does_not_revoke_another_reports_link(client, world):
    mine, other = _report(world), _report(world, title="Other")
    link, _ = services.share_link_create(
        report=selectors.report_get_for_user(world.owner.user, other.pk), user=world.owner.user
    )
    _login(client, world, "owner")
    assert client.post(f"/reports/{mine.pk}/share", {"revoke": str(link.pk)}).status_code == 404
    assert client.post(f"/reports/{mine.pk}/share", {"revoke": "x"}).status_code == 404
    link.refresh_from_db()
    assert link.revoked_at is None


def test_it_reads_the_expiry_in_the_browsers_zone(client, world):
    report = _report(world)
    _login(client, world, "owner")
    when = (timezone.now() + timedelta(days=3)).replace(second=0, microsecond=0)
    local = when + timedelta(hours=2)  # a browser at UTC+2 reports an offset of -120
    data = {"expires_at": local.strftime("%Y-%m-%dT%H:%M"), "tz_offset": "-120"}
    assert client.post(f"/reports/{report.pk}/share", data).status_code == 302
    assert ShareLink.objects.get().expires_at == when


@pytest.mark.parametrize("expires_at", ["2001-01-01T10:00", "not a date", "2030-13-45T99:00"])
def test_it_refuses_a_past_or_unreadable_expiry(client, world, expires_at):
    report = _report(world)
    _login(client, world, "owner")
    response = client.post(f"/reports/{report.pk}/share", {"expires_at": expires_at})
    assert response.status_code == 400
    assert 'id="link-expires-error"' in response.content.decode()
    assert ShareLink.objects.count() == 0


def test_it_shows_expired_links_as_expired(client, world):
    report = _report(world)
    link, _ = services.share_link_create(
        report=selectors.report_get_for_user(world.owner.user, report.pk),
        user=world.owner.user,
        expires_at=timezone.now() + timedelta(minutes=1),
    )
    ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    page = _get(_login(client, world, "owner"), f"/reports/{report.pk}/share")
    assert ">expired</span>" in page
    assert 'name="revoke"' not in page
