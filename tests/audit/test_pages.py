"""The audit log page and its CSV download: owners only, filter, keyset paging, no inline script."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditAction
from audit.services import audit_record
from tests.conftest import World
from tests.sdk.server import LabbookServer, manage
from tracking import invitations, services
from tracking.models import Role
from workspace import audit_pages as pages

PAGE = "/settings/teams/acme/audit/"
CSV = "/settings/teams/acme/audit/events.csv"
ROW = re.compile(r'<tr data-event-id="(\d+)" data-action="([a-z_.]+)">')


def _login(client, world: World, persona: str = "owner"):
    client.force_login(world.persona(persona).user)
    return client


def _page(client, url: str = PAGE, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.content[:300]
    return response.content.decode()


def _rows(page: str) -> list[tuple[int, str]]:
    return [(int(pk), action) for pk, action in ROW.findall(page)]


def _link(page: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
    return found and found[1].replace("&amp;", "&")


def _csv(response) -> list[dict[str, str]]:
    assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def _roles(world: World, count: int) -> None:
    """``count`` role changes of bob in acme, done by alice (editor and viewer in turn)."""
    for n in range(count):
        role = Role.VIEWER if n % 2 == 0 else Role.EDITOR
        services.membership_set(team=world.team, user=world.editor.user, role=role)


@pytest.mark.parametrize(
    ("persona", "status"), [("editor", 403), ("viewer", 403), ("outsider", 404)]
)
def test_only_owners_read_the_log(client, world, persona, status):
    for url in (PAGE, CSV):
        assert _login(client, world, persona).get(url).status_code == status
    assert _login(client, world).get(PAGE).status_code == 200


def test_it_sends_anonymous_visitors_to_login(client, world):
    for url in (PAGE, CSV):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_it_shows_who_did_what_to_what_from_where(client, world):
    dave, _ = services.user_get_or_create(username="dave")
    _login(client, world)
    services.membership_add(team=world.team, user=dave, role="viewer", actor=world.owner.user)
    client.post(f"/settings/teams/acme/members/{dave.pk}/role", {"role": "editor"})
    page = _page(client)
    newest = page.split('data-action="member.role_changed">')[1].split("</tr>")[0]
    assert "alice" in newest and "Member&#x27;s role changed" in newest and "dave" in newest
    assert "role: viewer → editor" in newest and "<code>127.0.0.1</code>" in newest
    assert [action for _, action in _rows(page)][:2] == ["member.role_changed", "member.added"]
    assert '<span class="muted">system</span>' in page  # the fixture's own memberships


def test_it_shows_no_token_events_not_even_of_members(client, world):
    # A token is its user's: the team's owners see neither its name nor its client address.
    _, mine = services.token_create(user=world.viewer.user, name="carol's ci", ip="192.0.2.7")
    page = _page(_login(client, world))
    assert "carol&#x27;s ci" not in page and "192.0.2.7" not in page and mine not in page
    assert "API token created" not in page.split("<tbody>")[1]
    csv = client.get(CSV)
    assert not [row for row in _csv(csv) if row["action"].startswith("token.")]


def test_it_filters_by_action_and_pages_keep_the_filter(client, world):
    _roles(world, 60)
    invitations.invitation_create(team=world.team, invitee="in-between", role="viewer", actor=None)
    _roles(world, 5)
    _login(client, world)
    first = _page(client, f"{PAGE}?action=member.role_changed")
    assert {action for _, action in _rows(first)} == {"member.role_changed"}
    assert len(_rows(first)) == 50 and _link(first, "prev") is None
    older = _link(first, "next")
    assert older.startswith("?") and "action=member.role_changed" in older
    second = _page(client, PAGE + older)
    assert len(_rows(second)) == 15 and _link(second, "next") is None
    ids = [pk for pk, _ in _rows(first) + _rows(second)]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 65  # newest first, each once
    back = _page(client, PAGE + _link(second, "prev"))
    assert _rows(back) == _rows(first)
    assert 'value="member.role_changed" selected' in first
    assert 'href="/settings/teams/acme/audit/events.csv?action=member.role_changed"' in first


def test_the_page_costs_the_same_queries_for_few_and_many_events(client, world):
    _login(client, world)
    _page(client)  # the session and the user are cached after the first request

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            _page(client)
        return len(captured)

    few = queries()
    _roles(world, 70)
    assert queries() == few


def test_a_bad_filter_or_page_is_an_error_not_a_crash(client, world):
    _login(client, world)
    page = _page(client, f"{PAGE}?action=team.deleted", status=400)
    assert 'id="audit-action-error"' in page and "Action must be one of" in page
    for cursor in ("bm9wZQ", "cD1nYXJiYWdl"):  # not a cursor; a cursor at "garbage"
        assert _login(client, world).get(f"{PAGE}?cursor={cursor}").status_code == 404
    assert client.get(f"{CSV}?action=team.deleted").status_code == 400


def test_the_settings_nav_links_the_log_for_owners_only(client, world):
    nav = _page(_login(client, world), "/settings/tokens/").split('<nav class="settings-nav"')[1]
    assert f'href="{PAGE}"' in nav and 'href="/settings/teams/rival/audit/"' not in nav
    viewer_nav = _page(_login(client, world, "viewer"), "/settings/tokens/")
    assert "/audit/" not in viewer_nav
    assert 'aria-current="page">Audit log' in _page(_login(client, world))


class _Scripts(HTMLParser):
    """Inline scripts and event-handler attributes: the CSP forbids both."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [name for name, _ in attrs]
        if tag == "script" and "src" not in names:
            self.inline.append("<script>")
        self.inline += [name for name in names if name.startswith("on")]


def test_the_page_has_no_inline_script(client, world):
    audit_record(
        action=AuditAction.REPORT_DELETED,
        actor=world.owner.user,
        team=world.team,
        data={"project": "<script>alert(1)</script>"},
    )
    parser = _Scripts()
    parser.feed(_page(_login(client, world)))
    assert parser.inline == []


# --- CSV ---------------------------------------------------------------------------------------


def test_the_csv_holds_every_event_of_the_filter_newest_first(client, world):
    _roles(world, 3)
    _login(client, world)
    response = client.get(f"{CSV}?action=member.role_changed")
    assert response["Content-Disposition"].startswith('attachment; filename="acme-audit-')
    rows = _csv(response)
    assert [row["action"] for row in rows] == ["member.role_changed"] * 3
    assert rows[0]["data"] == '{"new_role": "viewer", "old_role": "editor"}'
    assert rows[0]["actor"] == "system" and rows[0]["team"] == "acme" and rows[0]["target"] == "bob"
    assert rows[0]["when"] > rows[-1]["when"]
    everything = _csv(client.get(CSV))
    assert {"member.added", "member.role_changed"} <= {row["action"] for row in everything}


def test_the_csv_defuses_spreadsheet_formulas(client, world):
    invitations.invitation_create(
        team=world.team, invitee='=HYPERLINK("http://evil")', role="viewer", actor=None
    )
    rows = _csv(_login(client, world).get(CSV))
    assert rows[0]["target"] == '\'=HYPERLINK("http://evil")'


@pytest.mark.subprocess
def test_a_real_server_streams_a_long_log_in_one_piece(tmp_path):
    """uvicorn, the embedded default: more events than one database read, sent as they are read."""
    count = 2 * pages.CSV_CHUNK + 50
    server = LabbookServer(tmp_path / "home")
    manage(server.home, "shell", "-c", SEED.format(count=count, password=PASSWORD))
    with server, httpx.Client(base_url=server.url, trust_env=False, timeout=60) as browser:
        login = browser.get("/login/")
        form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)[1]
        credentials = {"username": "sdk-tester", "password": PASSWORD}
        browser.post("/login/", data={**credentials, "csrfmiddlewaretoken": form_token})
        with browser.stream("GET", "/settings/teams/lab/audit/events.csv") as response:
            assert response.status_code == 200, response.read()[:300]
            assert "content-length" not in response.headers  # streamed, not read whole
            lines = list(response.iter_lines())
    rows = list(csv.DictReader(lines))
    ids = [int(row["id"]) for row in rows]
    assert ids == sorted(set(ids), reverse=True)  # newest first; no seam repeats or skips one
    assert sum(row["data"] == '{"seed": 1}' for row in rows) == count


PASSWORD = "a-long-password-for-the-test"
# Run by ``manage.py shell`` in the server's home: a password to log in with, and the events.
SEED = """
from django.contrib.auth import get_user_model
from django.db import transaction
from audit.services import audit_record
from tracking.models import Team
user = get_user_model().objects.get(username="sdk-tester")
user.set_password("{password}")
user.save()
team = Team.objects.get(slug="lab")
with transaction.atomic():
    for _ in range({count}):
        audit_record(action="member.added", actor=user, team=team, target=user, data={{"seed": 1}})
"""
