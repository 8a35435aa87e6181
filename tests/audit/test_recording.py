"""Every recorded action, done the way a team does it (the API, the pages): one event each.

Each test checks the actor, the team, the target and the details; refused and
rolled-back changes leave no event; no event ever holds a token, a share
link's token, a webhook's secret or URL.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from alerts import services as alert_services
from alerts.models import AlertRule, Destination
from audit.models import AuditAction, AuditEvent
from reports_app import selectors as report_selectors
from reports_app import services as report_services
from reports_app.models import ShareLink
from tests.conftest import World
from tests.sdk.server import LabbookServer
from tracking import selectors, services
from tracking.models import ApiToken, Membership, Role, TeamInvitation

WEBHOOK_SECRET = "a-webhook-secret-of-32-characters!"
WEBHOOK_URL = "https://hooks.example.com/labbook/very-private-path"
A = AuditAction


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def _one(action: str, **filters: str) -> AuditEvent:
    events = [e for e in _events(action) if all(getattr(e, k) == v for k, v in filters.items())]
    assert len(events) == 1, [(e.action, e.target_repr) for e in events]
    return events[0]


def _everything_recorded() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)


def _login(client, world: World, persona: str):
    client.force_login(world.persona(persona).user)
    return client


def _report(world: World, persona: str = "owner", **fields):
    user = world.persona(persona).user
    project = selectors.project_get_for_user(user, "acme/mnist")
    report = report_services.report_create(
        user=user, project=project, title=fields.pop("title", "Findings"), **fields
    )
    return report_selectors.report_get_for_user(user, report.pk)


# --- Tokens ------------------------------------------------------------------------------------


def test_it_records_a_token_made_and_revoked_through_the_api(world):
    client = world.owner.client()
    created = client.post("/api/v1/tokens", {"name": "ci", "scope": "read"}, format="json")
    assert created.status_code == 201
    event = _one(A.TOKEN_CREATED, target_repr="ci")
    assert (event.actor_id, event.actor_name, event.team_id, event.team_slug) == (
        world.owner.user.pk,
        "alice",
        None,  # a token is the user's, not a team's
        "",
    )
    assert (event.target_type, event.target_id, event.target_repr) == (
        "token",
        str(created.json()["id"]),
        "ci",
    )
    assert event.data == {"scope": "read", "expires_at": None}
    assert event.ip == "127.0.0.1"
    assert client.delete(f"/api/v1/tokens/{created.json()['id']}").status_code == 204
    assert client.delete(f"/api/v1/tokens/{created.json()['id']}").status_code == 204  # again
    assert _one(A.TOKEN_REVOKED).target_id == str(created.json()["id"])
    assert created.json()["token"] not in _everything_recorded()


def test_it_records_a_token_made_and_revoked_on_the_settings_page(client, world):
    _login(client, world, "editor")
    client.post("/settings/tokens/", {"name": "laptop", "expires_in": "30"})
    token = ApiToken.objects.get(user=world.editor.user, name="laptop")
    event = _one(A.TOKEN_CREATED, target_repr="laptop")
    assert (event.actor_name, event.data["scope"]) == ("bob", "full")
    assert event.data["expires_at"] == token.expires_at.isoformat()
    page = client.get("/settings/tokens/").content.decode()  # shows the raw token once
    raw = page.split('id="new-token-value" class="token-value" value="')[1].split('"')[0]
    assert client.post(f"/settings/tokens/{token.pk}/revoke").status_code == 302
    assert (_one(A.TOKEN_REVOKED).actor_name, _one(A.TOKEN_REVOKED).ip) == ("bob", "127.0.0.1")
    assert raw.startswith("lb_") and raw not in _everything_recorded()


def test_a_refused_token_writes_no_event(world):
    before = AuditEvent.objects.count()  # the personas' own tokens are in the log already
    client = world.owner.client()
    assert client.post("/api/v1/tokens", {"name": ""}, format="json").status_code == 400
    theirs = ApiToken.objects.get(user=world.outsider.user)
    assert client.delete(f"/api/v1/tokens/{theirs.pk}").status_code == 404
    assert AuditEvent.objects.count() == before


# --- Members -----------------------------------------------------------------------------------


def test_it_records_an_invitation_accepted_then_a_role_given_and_removed(client, world):
    dave, _ = services.user_get_or_create(username="dave")
    _login(client, world, "owner")
    response = client.post("/settings/teams/acme/", {"member": "dave", "role": "viewer"})
    assert response.status_code == 302
    invited = _one(A.INVITATION_CREATED)
    assert (invited.actor_name, invited.team_slug, invited.target_type) == (
        "alice",
        "acme",
        "invitation",
    )
    assert (invited.target_repr, invited.data, invited.ip) == (
        "dave",
        {"role": "viewer"},
        "127.0.0.1",
    )
    assert not AuditEvent.objects.filter(action=A.MEMBER_ADDED, target_id=str(dave.pk)).exists()
    invitation = TeamInvitation.objects.get(team=world.team)
    client.force_login(dave)
    client.post(f"/settings/invitations/{invitation.pk}/accept")
    accepted = _one(A.INVITATION_ACCEPTED)
    assert (accepted.actor_name, accepted.target_repr, accepted.team_id) == (
        "dave",
        "dave",
        world.team.pk,
    )
    added = _one(A.MEMBER_ADDED, target_repr="dave")
    assert (added.actor_name, added.team_slug, added.target_type) == ("dave", "acme", "user")
    assert (added.target_id, added.data) == (str(dave.pk), {"role": "viewer"})
    _login(client, world, "owner")
    client.post(f"/settings/teams/acme/members/{dave.pk}/role", {"role": "editor"})
    changed = _one(A.MEMBER_ROLE_CHANGED)
    assert (changed.actor_name, changed.target_repr) == ("alice", "dave")
    assert changed.data == {"old_role": "viewer", "new_role": "editor"}
    client.post(f"/settings/teams/acme/members/{dave.pk}/remove", {"confirm": "yes"})
    removed = _one(A.MEMBER_REMOVED)
    assert (removed.actor_name, removed.target_repr, removed.data) == (
        "alice",
        "dave",
        {"role": "editor"},
    )
    assert removed.ip == "127.0.0.1" and removed.team_id == world.team.pk


def test_a_member_who_leaves_is_both_actor_and_target(client, world):
    _login(client, world, "viewer")
    client.post(f"/settings/teams/acme/members/{world.viewer.user.pk}/remove", {"confirm": "yes"})
    assert Membership.objects.filter(user=world.viewer.user, team=world.team).exists()  # 403
    services.membership_remove(team=world.team, user=world.viewer.user, actor=world.viewer.user)
    event = _one(A.MEMBER_REMOVED)
    assert (event.actor_name, event.target_repr) == ("carol", "carol")


def test_the_teams_creator_and_the_command_lines_members_are_recorded(world):
    team = services.team_create(slug="lab", owner=world.editor.user)
    services.membership_set(team=team, user=world.viewer.user, role=Role.VIEWER)
    services.membership_set(team=team, user=world.viewer.user, role=Role.VIEWER)  # no change
    owner, viewer = AuditEvent.objects.filter(team=team, action=A.MEMBER_ADDED).order_by("id")
    assert (owner.actor_name, owner.target_repr, owner.data) == ("bob", "bob", {"role": "owner"})
    assert (viewer.actor_name, viewer.target_repr) == ("system", "carol")


@pytest.mark.parametrize(
    ("persona", "url", "data"),
    [
        ("editor", "/settings/teams/acme/", {"member": "mallory", "role": "viewer"}),
        ("owner", "/settings/teams/acme/", {"member": "carol", "role": "viewer"}),  # a member
        ("owner", "/settings/teams/acme/", {"member": "mallory", "role": "admin"}),
        ("viewer", "/settings/teams/acme/members/{bob}/role", {"role": "owner"}),
        ("owner", "/settings/teams/acme/members/{bob}/role", {"role": "boss"}),
        ("owner", "/settings/teams/acme/members/{alice}/role", {"role": "viewer"}),  # last owner
        ("owner", "/settings/teams/acme/members/{alice}/remove", {"confirm": "yes"}),  # last owner
        ("editor", "/settings/teams/acme/members/{bob}/remove", {"confirm": "yes"}),
    ],
)
def test_a_refused_membership_change_writes_no_event(client, world, persona, url, data):
    before = AuditEvent.objects.count()
    ids = {"alice": world.owner.user.pk, "bob": world.editor.user.pk}
    response = _login(client, world, persona).post(url.format(**ids), data)
    assert response.status_code in (400, 403)
    assert AuditEvent.objects.count() == before


# --- Share links -------------------------------------------------------------------------------


def test_it_records_a_share_link_made_and_revoked_through_the_api(world):
    report = _report(world)
    client = world.owner.client()
    expires = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    created = client.post(
        f"/api/v1/reports/{report.pk}/share-links",
        {"expires_at": expires.isoformat(), "embeddable": True},
        format="json",
    )
    assert created.status_code == 201
    event = _one(A.SHARE_LINK_CREATED)
    assert (event.actor_name, event.team_slug, event.target_type) == ("alice", "acme", "share_link")
    assert (event.target_id, event.target_repr) == (
        str(created.json()["id"]),
        "link to report “Findings”",
    )
    assert event.data == {
        "report_id": report.pk,
        "expires_at": expires.isoformat(),
        "hide_authors": False,
        "embeddable": True,
    }
    assert client.delete(f"/api/v1/share-links/{created.json()['id']}").status_code == 204
    assert client.delete(f"/api/v1/share-links/{created.json()['id']}").status_code == 204
    assert _one(A.SHARE_LINK_REVOKED).target_id == str(created.json()["id"])
    token = created.json()["token"]
    assert token not in _everything_recorded() and token[:8] not in _everything_recorded()


def test_it_records_a_share_link_made_and_revoked_on_the_share_page(client, world):
    report = _report(world)
    _login(client, world, "owner")
    assert client.post(f"/reports/{report.pk}/share", {"hide_authors": "on"}).status_code == 302
    link = ShareLink.objects.get()
    assert _one(A.SHARE_LINK_CREATED).data["hide_authors"] is True
    client.post(f"/reports/{report.pk}/share", {"revoke": str(link.pk)})
    event = _one(A.SHARE_LINK_REVOKED)
    assert (event.actor_name, event.target_id, event.ip) == ("alice", str(link.pk), "127.0.0.1")


def test_a_private_reports_title_stays_out_of_the_log(world):
    report = _report(world, "editor", title="Bob's secret plans", visibility="private")
    report_services.share_link_create(report=report, user=world.editor.user)
    assert _one(A.SHARE_LINK_CREATED).target_repr == f"link to private report #{report.pk}"
    report_services.report_delete(report=report, user=world.editor.user)
    assert "secret plans" not in _everything_recorded()


def test_an_opened_share_link_is_recorded_once_per_address_per_ten_minutes(client, world):
    report = _report(world)
    _, token = report_services.share_link_create(report=report, user=world.owner.user)
    for _ in range(3):
        assert client.get(f"/s/{token}").status_code == 200
    event = _one(A.SHARE_LINK_ACCESSED)
    assert (event.actor_id, event.actor_name, event.ip) == (None, "anonymous", "127.0.0.1")
    assert (event.team_slug, event.target_repr) == ("acme", "link to report “Findings”")
    assert ShareLink.objects.get().access_count == 3  # every opening still counts
    _login(client, world, "viewer").get(f"/s/{token}", REMOTE_ADDR="198.51.100.7")
    other = _events(A.SHARE_LINK_ACCESSED)[-1]
    assert (other.actor_name, other.ip) == ("carol", "198.51.100.7")
    assert token not in _everything_recorded()


def test_an_opening_after_ten_quiet_minutes_is_recorded_again(client, world):
    report = _report(world)
    link, token = report_services.share_link_create(report=report, user=world.owner.user)
    # The opening of 11 minutes ago, as the log would hold it (no clock to turn forward).
    AuditEvent.objects.create(
        action=A.SHARE_LINK_ACCESSED,
        actor_name="anonymous",
        team=world.team,
        target_type="share_link",
        target_id=str(link.pk),
        ip="127.0.0.1",
        created_at=timezone.now() - timedelta(minutes=11),
    )
    client.get(f"/s/{token}")
    assert len(_events(A.SHARE_LINK_ACCESSED)) == 2


def test_a_link_that_does_not_open_records_nothing(client, world):
    report = _report(world)
    link, token = report_services.share_link_create(report=report, user=world.owner.user)
    report_services.share_link_revoke(link=link, user=world.owner.user)
    assert client.get(f"/s/{token}").status_code == 404
    assert client.get("/s/s_made-up").status_code == 404
    assert not _events(A.SHARE_LINK_ACCESSED)


@pytest.mark.django_db(transaction=True)
def test_many_openings_at_once_from_one_address_record_one_event(world):
    if connection.vendor == "sqlite":
        pytest.skip("in-memory SQLite has no concurrent writers: the server test covers SQLite")
    report = _report(world)
    _, token = report_services.share_link_create(report=report, user=world.owner.user)
    link = report_selectors.share_link_active(ShareLink.hash(token))
    start = threading.Barrier(8)

    def open_link() -> None:
        try:
            start.wait()
            report_services.share_link_touch(link, actor=None, ip="192.0.2.1")
        finally:
            connection.close()

    threads = [threading.Thread(target=open_link) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ShareLink.objects.get().access_count == 8
    assert len(_events(A.SHARE_LINK_ACCESSED)) == 1


# --- Alert rules and destinations --------------------------------------------------------------


def test_it_records_a_destination_made_changed_and_deleted_through_the_api(world):
    client = world.owner.client()
    body = {
        "kind": "webhook",
        "name": "hook",
        "config": {"url": WEBHOOK_URL, "secret": WEBHOOK_SECRET},
    }
    created = client.post("/api/v1/destinations", {"team": "acme", **body}, format="json")
    assert created.status_code == 201
    pk = created.json()["id"]
    event = _one(A.DESTINATION_CREATED)
    assert (event.actor_name, event.team_slug, event.target_type, event.target_id) == (
        "alice",
        "acme",
        "destination",
        str(pk),
    )
    assert (event.target_repr, event.data) == ("hook", {"kind": "webhook"})
    client.patch(f"/api/v1/destinations/{pk}", {"name": "hook"}, format="json")  # no change
    assert not _events(A.DESTINATION_UPDATED)
    new_config = {"url": WEBHOOK_URL + "2", "secret": WEBHOOK_SECRET + "2"}
    client.patch(
        f"/api/v1/destinations/{pk}", {"config": new_config, "enabled": False}, format="json"
    )
    assert _one(A.DESTINATION_UPDATED).data == {"kind": "webhook", "changed": ["config", "enabled"]}
    assert client.delete(f"/api/v1/destinations/{pk}").status_code == 204
    deleted = _one(A.DESTINATION_DELETED)
    assert (deleted.actor_name, deleted.target_repr, deleted.target_id) == (
        "alice",
        "hook",
        str(pk),
    )
    recorded = _everything_recorded()
    assert WEBHOOK_SECRET not in recorded and "very-private-path" not in recorded


def test_it_records_destination_changes_made_on_the_pages(client, world):
    team, role = selectors.team_get_for_user(world.owner.user, "acme")
    destination = alert_services.destination_create(
        user=world.owner.user,
        team=team,
        role=role,
        kind="email",
        name="mail",
        config={"addresses": ["oncall@example.com"]},
    )
    base = f"/settings/teams/acme/destinations/{destination.pk}"
    _login(client, world, "editor").post(f"{base}/enabled", {"enabled": "0"})
    assert _one(A.DESTINATION_UPDATED).data["changed"] == ["enabled"]
    client.post(f"{base}/delete")
    assert (_one(A.DESTINATION_DELETED).actor_name, Destination.objects.count()) == ("bob", 0)


def test_it_records_a_rule_made_changed_and_deleted_through_the_api(world):
    client = world.editor.client()
    body = {"project": "acme/mnist", "name": "failures", "trigger": "run_failed"}
    pk = client.post("/api/v1/alert-rules", body, format="json").json()["id"]
    event = _one(A.ALERT_RULE_CREATED)
    assert (event.actor_name, event.team_slug, event.target_type, event.target_id) == (
        "bob",
        "acme",
        "alert_rule",
        str(pk),
    )
    assert (event.target_repr, event.data) == (
        "failures",
        {"project": "acme/mnist", "trigger": "run_failed"},
    )
    client.patch(f"/api/v1/alert-rules/{pk}", {"name": "failures"}, format="json")
    assert not _events(A.ALERT_RULE_UPDATED)
    client.patch(f"/api/v1/alert-rules/{pk}", {"name": "crashes", "group_wait": 0}, format="json")
    assert _one(A.ALERT_RULE_UPDATED).data["changed"] == ["group_wait", "name"]
    assert client.delete(f"/api/v1/alert-rules/{pk}").status_code == 204
    deleted = _one(A.ALERT_RULE_DELETED)
    assert (deleted.actor_name, deleted.target_repr) == ("bob", "crashes")
    assert AlertRule.objects.count() == 0


def test_it_records_a_rule_made_changed_and_deleted_on_the_pages(client, world):
    _login(client, world, "owner")
    rules = "/acme/mnist/alerts/rules/"
    fields = {"name": "done", "trigger": "run_finished", "group_wait": "30", "enabled": "on"}
    assert client.post(f"{rules}new", fields).status_code == 302
    rule = AlertRule.objects.get()
    assert _one(A.ALERT_RULE_CREATED).target_id == str(rule.pk)
    client.post(f"{rules}{rule.pk}/", {**fields, "name": "finished"})
    assert _one(A.ALERT_RULE_UPDATED).data["changed"] == ["name"]
    client.post(f"{rules}{rule.pk}/delete")
    assert _one(A.ALERT_RULE_DELETED).ip == "127.0.0.1"


def test_a_viewers_alerting_changes_are_refused_and_write_no_event(world):
    client = world.viewer.client()
    body = {"project": "acme/mnist", "name": "x", "trigger": "run_failed"}
    assert client.post("/api/v1/alert-rules", body, format="json").status_code == 403
    email = {"kind": "email", "name": "x", "config": {"addresses": ["a@example.com"]}}
    assert (
        client.post("/api/v1/destinations", {"team": "acme", **email}, format="json").status_code
        == 403
    )
    bad = {"project": "acme/mnist", "name": "x", "trigger": "no_such_trigger"}
    assert world.owner.client().post("/api/v1/alert-rules", bad, format="json").status_code == 400
    assert not AuditEvent.objects.filter(action__regex=r"^(alert_rule|destination)\.").exists()


# --- Reports -----------------------------------------------------------------------------------


def test_it_records_a_deleted_report(world):
    report = _report(world, "editor", title="Old notes")
    assert world.viewer.client().delete(f"/api/v1/reports/{report.pk}").status_code == 403
    assert not _events(A.REPORT_DELETED)
    assert world.owner.client().delete(f"/api/v1/reports/{report.pk}").status_code == 204
    event = _one(A.REPORT_DELETED)
    assert (event.actor_name, event.team_slug, event.target_type, event.target_id) == (
        "alice",
        "acme",
        "report",
        str(report.pk),
    )
    assert event.target_repr == "report “Old notes”"
    assert event.data == {"project": "acme/mnist", "visibility": "team"}


# --- One transaction ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_has_its_event_and_a_rolled_back_one_has_none(world):
    dave, _ = services.user_get_or_create(username="dave")
    services.membership_add(team=world.team, user=dave, role=Role.VIEWER, actor=world.owner.user)
    assert _one(A.MEMBER_ADDED, target_repr="dave").actor_name == "alice"
    with pytest.raises(RuntimeError), transaction.atomic():
        services.membership_role_change(
            membership=Membership.objects.get(user=dave), role=Role.EDITOR, actor=world.owner.user
        )
        raise RuntimeError("the request failed after the change")
    assert Membership.objects.get(user=dave).role == Role.VIEWER
    assert not _events(A.MEMBER_ROLE_CHANGED)


# --- A real server: concurrent openings of a public link ---------------------------------------


@pytest.mark.subprocess
def test_a_busy_public_link_is_recorded_once_by_a_real_server(tmp_path):
    with LabbookServer(tmp_path / "home") as server, server.client() as api:
        api.post("/api/v1/projects", json={"team": "lab", "name": "demo"}).raise_for_status()
        report = api.post("/api/v1/reports", json={"project": "lab/demo", "title": "Open"})
        link = api.post(f"/api/v1/reports/{report.json()['id']}/share-links", json={}).json()
        statuses: list[int] = []

        def open_link() -> None:
            statuses.append(api.get(f"/s/{link['token']}").status_code)

        threads = [threading.Thread(target=open_link) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events = api.get("/api/v1/teams/lab/audit-events?action=share_link.accessed").json()
    assert statuses == [200] * 12
    assert [(e["actor"], e["ip"], e["target_id"]) for e in events["results"]] == [
        ("anonymous", "127.0.0.1", str(link["id"]))
    ]
