"""Nobody joins a team without saying yes (security review, issue 16 #6).

The finding: any user could create a team, add anyone to it by username or
email, then read that person's email address and their whole token audit
history (names, scopes, client addresses, older events included); the add
form also told which addresses had accounts. Now an owner invites; the
invitee accepts or declines; until then the team sees only what the owner
typed, and a team's audit log shows only the team's own events.

A later finding: users set their own email address without proving it, so an
invitation matched to accounts by address could be taken by anyone who set
that address. Now an invitation to an address is answered only through its
emailed link, by whichever account opens it.

Every test goes through the real pages and API, as the people involved would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from labbook.celery import app as celery_app
from tests.conftest import World, make_persona
from tracking import invitations, services
from tracking.models import INVITATION_TTL, Membership, Role, TeamInvitation

MEMBERS = "/settings/teams/acme/"
MINE = "/settings/invitations/"
DAVE_EMAIL = "dave@private.example"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
INVITATION_IDS = re.compile(r"/invitations/\d+/|data-invitation-id=\"\d+\"")
MOMENTS = re.compile(r"<time [^>]*>[^<]*</time>")  # the microsecond each was sent
LINK = re.compile(r"https?://[^/\s]+(/settings/invitations/link/lbi_[A-Za-z0-9_-]+/)")
# A token event as a row of the audit page, of its CSV, of its API.
TOKEN_EVENT = re.compile(r'data-action="token\.|,token\.created,|"action":"token\.')
FAST_HASHER = "django.contrib.auth.hashers.MD5PasswordHasher"


@pytest.fixture
def dave(world: World) -> Any:
    """Someone with an account, an address and a token history, in no team of alice's."""
    persona = make_persona("dave")
    get_user_model().objects.filter(pk=persona.user.pk).update(email=DAVE_EMAIL)
    persona.user.refresh_from_db()
    services.token_create(user=persona.user, name="dave's gpu box", ip="198.51.100.23")
    return persona


@pytest.fixture
def sent() -> Iterator[list]:
    """The outbox, with the invitation task run in-process when it is queued."""
    conf = celery_app.conf
    before = conf.task_always_eager, conf.task_eager_propagates
    conf.update(task_always_eager=True, task_eager_propagates=True)
    yield mail.outbox
    conf.update(task_always_eager=before[0], task_eager_propagates=before[1])


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """``with committed():`` runs what the block queued for after commit, as a commit would."""
    return partial(django_capture_on_commit_callbacks, execute=True)


def _as(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def _invite(client: Client, world: World, member: str, role: str = "viewer") -> Any:
    return _as(client, world.owner.user).post(MEMBERS, {"member": member, "role": role})


def _invitation(member: str) -> TeamInvitation:
    return TeamInvitation.objects.get(invited_as=member.lower())


def _team_sees(client: Client, world: World) -> str:
    """Everything acme's owner can read about the team: pages, API, audit log (CSV too)."""
    _as(client, world.owner.user)
    pages = [client.get(url).content.decode() for url in (MEMBERS, "/acme/")]
    pages.append(client.get("/settings/teams/acme/audit/").content.decode())
    pages.append(client.get("/settings/teams/acme/audit.csv").getvalue().decode())
    api = world.owner.client()
    for url in ("/api/v1/teams/acme/audit-events", "/api/v1/teams/acme/invitations"):
        pages.append(api.get(url, {"page_size": 200}).content.decode())
    return "\n".join(pages)


def _same_but_typed(page: str, typed: str) -> str:
    page = CSRF.sub("", page).replace(typed, "TYPED")
    return MOMENTS.sub("WHEN", INVITATION_IDS.sub("ID", page))


# --- Before acceptance, the team learns nothing ------------------------------------------------


@pytest.mark.parametrize("typed", ["dave", DAVE_EMAIL])
def test_it_shows_the_team_nothing_of_an_invitee_before_they_accept(client, world, dave, typed):
    assert _invite(client, world, typed).status_code == 302
    seen = _team_sees(client, world)
    if typed == "dave":
        assert DAVE_EMAIL not in seen  # the address behind the username stays hidden
    assert "dave&#x27;s gpu box" not in seen and "dave's gpu box" not in seen
    assert "198.51.100.23" not in seen and not TOKEN_EVENT.search(seen)
    assert not Membership.objects.filter(user=dave.user).exists()
    assert not AuditEvent.objects.filter(team=world.team, actor=dave.user).exists()


def test_a_teams_log_never_shows_a_members_token_history_even_after_they_join(client, world, dave):
    _invite(client, world, "dave")
    _as(client, dave.user).post(f"{MINE}{_invitation('dave').pk}/accept")
    services.token_create(user=dave.user, name="dave's laptop", ip="198.51.100.24")
    seen = _team_sees(client, world)
    assert "gpu box" not in seen and "laptop" not in seen and "198.51.100." not in seen
    assert AuditEvent.objects.filter(team=world.team, actor=dave.user).exists()  # he joined


@pytest.mark.parametrize(
    ("existing", "missing"), [("dave", "ghost"), (DAVE_EMAIL, "ghost@private.example")]
)
def test_the_form_answers_alike_whether_or_not_an_account_exists(
    client, world, dave, existing, missing
):
    answers = []
    for typed in (existing, missing):
        response = _invite(client, world, typed)
        page = client.get(response["Location"]).content.decode()
        assert f"Invitation sent to {typed}." in page
        answers.append((response.status_code, response["Location"], _same_but_typed(page, typed)))
        # Withdrawn, so the second answer lists one invitation too.
        invitations.invitation_revoke(invitation=_invitation(typed), actor=world.owner.user)
    assert answers[0] == answers[1]


@pytest.mark.parametrize(
    ("existing", "missing"), [("dave", "ghost"), (DAVE_EMAIL, "ghost@private.example")]
)
def test_the_api_answers_alike_whether_or_not_an_account_exists(world, dave, existing, missing):
    api = world.owner.client()
    answers = []
    for typed in (existing, missing):
        response = api.post(
            "/api/v1/teams/acme/invitations", {"member": typed, "role": "editor"}, format="json"
        )
        body = response.json()
        assert body["invited_as"] == typed
        moments = ("id", "invited_as", "created_at", "expires_at")  # differ by the moment only
        answers.append((response.status_code, {k: v for k, v in body.items() if k not in moments}))
    assert answers[0] == answers[1] == (201, {"role": "editor", "invited_by": "alice"})
    listed = str(api.get("/api/v1/teams/acme/invitations").json())
    assert existing in listed and missing in listed
    assert (DAVE_EMAIL in listed) == (existing == DAVE_EMAIL)  # only when alice typed it


def test_an_unknown_name_and_a_known_one_both_queue_their_email(
    client, world, dave, sent, committed
):
    for typed in ("dave", "ghost"):
        with committed() as callbacks:
            _invite(client, world, typed)
        assert len(callbacks) == 1  # the same work either way; the task finds no address
    assert [message.to for message in sent] == [[DAVE_EMAIL]]


# --- Accepting ----------------------------------------------------------------------------------


def test_the_invitee_accepts_through_the_emailed_link_after_logging_in(
    client, world, dave, sent, committed, settings
):
    settings.PASSWORD_HASHERS = [FAST_HASHER]
    dave.user.set_password("correct horse battery")
    dave.user.save(update_fields=["password"])
    with committed():
        _invite(client, world, "Dave@Private.Example", role="editor")
    (message,) = sent
    assert message.to == [DAVE_EMAIL] and "acme" in message.subject
    link = LINK.search(message.body)[1]
    assert link in message.alternatives[0][0]
    assert "keep the link to yourself" in message.body  # whoever opens it may answer
    client.logout()
    to_login = client.get(link)
    assert to_login.status_code == 302 and urlsplit(to_login["Location"]).path == "/login/"
    back = client.post(
        to_login["Location"], {"username": "dave", "password": "correct horse battery"}
    )
    assert (back.status_code, back["Location"]) == (302, link)
    before = _state()
    offer = client.get(link)
    assert offer.status_code == 200 and offer["Cache-Control"].startswith("max-age=0")
    page = offer.content.decode()
    assert "Join acme" in page and 'pill-editor">editor' in page and "alice invited you" in page
    assert "You are logged in as <strong>dave</strong>" in page and "Accept as dave" in page
    assert page.count(f'<form method="post" action="{link}">') == 2  # Accept and Decline
    assert f'action="{MINE}{_invitation(DAVE_EMAIL).pk}/' not in page  # not by id
    assert _state() == before, "GET on the link changed something"
    joined = client.post(link, {"answer": "accept"})
    assert (joined.status_code, joined["Location"]) == (302, "/acme/")
    assert Membership.objects.get(team=world.team, user=dave.user).role == Role.EDITOR
    assert "dave" in _as(Client(), world.owner.user).get(MEMBERS).content.decode()
    accepted = AuditEvent.objects.get(action=AuditAction.INVITATION_ACCEPTED)
    assert (accepted.actor_name, accepted.target_repr) == ("dave", DAVE_EMAIL)
    assert accepted.data == {"role": "editor", "via": "emailed link"}


def _state() -> tuple:
    return (
        list(TeamInvitation.objects.values()),
        list(Membership.objects.values()),
        AuditEvent.objects.count(),
    )


def test_my_settings_list_my_invitations_to_my_username_with_their_buttons(client, world, dave):
    _invite(client, world, "dave")
    _invite(client, world, DAVE_EMAIL, role="editor")  # his address: answered by its link only
    page = _as(client, dave.user).get(MINE).content.decode()
    rows = re.findall(r'<tr data-invitation-id="(\d+)">', page)
    assert rows == [str(_invitation("dave").pk)]
    for pk in rows:
        assert f'action="{MINE}{pk}/accept"' in page and f'action="{MINE}{pk}/decline"' in page
    assert "answer it through the link in its email" in page
    assert (
        re.findall(
            r'<tr data-invitation-id="', _as(client, world.viewer.user).get(MINE).content.decode()
        )
        == []
    )


def test_get_on_the_accept_and_decline_addresses_changes_nothing(client, world, dave):
    _invite(client, world, "dave")
    before = _state()
    _as(client, dave.user)
    for action in ("accept", "decline"):
        assert client.get(f"{MINE}{_invitation('dave').pk}/{action}").status_code == 405
    assert _state() == before


# --- Closed invitations, the wrong user ---------------------------------------------------------


def test_a_declined_invitation_names_nobody_and_cannot_be_accepted(
    client, world, dave, sent, committed
):
    with committed():
        _invite(client, world, DAVE_EMAIL)
    link = LINK.search(sent[0].body)[1]
    _as(client, dave.user)
    declined = client.post(link, {"answer": "decline"})
    assert (declined.status_code, declined["Location"]) == (302, MINE)
    event = AuditEvent.objects.get(action=AuditAction.INVITATION_DECLINED)
    assert (event.actor_id, event.actor_name, event.ip, event.target_repr) == (
        None,
        "invitee",
        None,
        DAVE_EMAIL,  # what alice typed
    )
    refused = client.post(link, {"answer": "accept"})
    assert refused.status_code == 409
    assert "This invitation was declined." in refused.content.decode()
    assert not Membership.objects.filter(user=dave.user).exists()


@pytest.mark.parametrize(
    ("close", "message"),
    [
        ("revoke", "This invitation was withdrawn by the team&#x27;s owners."),
        ("expire", "This invitation has expired: ask an owner of the team for a new one."),
        ("use", "This invitation was already accepted."),
    ],
)
def test_a_closed_invitation_says_why_on_the_link_and_on_accept(
    client, world, dave, sent, committed, close, message
):
    with committed():
        _invite(client, world, "dave")
    link = LINK.search(sent[0].body)[1]
    invitation = _invitation("dave")
    if close == "revoke":
        revoked = client.post(f"{MEMBERS}invitations/{invitation.pk}/revoke")
        assert revoked.status_code == 302
    elif close == "expire":
        past = timezone.now() - timedelta(seconds=1)
        TeamInvitation.objects.filter(pk=invitation.pk).update(expires_at=past)  # time passes
    else:
        _as(client, dave.user).post(f"{MINE}{invitation.pk}/accept")
    _as(client, dave.user)
    before = _state()
    by_link = client.post(link, {"answer": "accept"})
    for response in (client.get(link), by_link, client.post(f"{MINE}{invitation.pk}/accept")):
        assert response.status_code == 409
        assert message in response.content.decode()
        assert 'action="/settings/invitations/' not in response.content.decode().split("<main")[1]
    assert _state() == before
    api = dave.client().post(f"/api/v1/invitations/{invitation.pk}/accept")
    assert api.status_code == 409 and api.json()["error"]["code"].startswith("invitation_")


def test_the_link_tells_another_account_it_is_not_theirs_and_shows_nothing(
    client, world, dave, sent, committed
):
    with committed():
        _invite(client, world, "dave", role="owner")
    link = LINK.search(sent[0].body)[1]
    assert "keep the link to yourself" not in sent[0].body  # only dave may answer this one
    invitation = _invitation("dave")
    before = _state()
    for persona in (world.outsider, world.viewer):
        _as(client, persona.user)
        response = client.get(link)
        assert response.status_code == 403
        page = response.content.decode()
        main = page.split('class="settings-main"')[1]  # the nav lists the viewer's own teams
        assert "sent to someone else" in main and "acme" not in main
        for answer in ("accept", "decline"):
            refused = client.post(link, {"answer": answer})
            assert refused.status_code == 403
            assert "acme" not in refused.content.decode().split('class="settings-main"')[1]
        assert client.post(f"{MINE}{invitation.pk}/accept").status_code == 404
        assert client.post(f"{MINE}{invitation.pk}/decline").status_code == 404
        api = persona.client().post(f"/api/v1/invitations/{invitation.pk}/accept")
        assert api.status_code == 404
    assert client.get("/settings/invitations/link/lbi_nothing/").status_code == 404
    assert _state() == before


# --- An invitation to an email address: its link only ------------------------------------------


def test_setting_an_invited_address_neither_shows_nor_answers_its_invitation(
    client, world, sent, committed
):
    """The attack: mallory sets her address to one alice invited, then tries every door."""
    invited = "newcomer@lab.example"
    with committed():
        _invite(client, world, invited, role="editor")
    link = LINK.search(sent[0].body)[1]
    invitation = _invitation(invited)
    mallory = world.outsider
    _as(client, mallory.user)
    profile = {"first_name": "", "last_name": "", "email": "NewComer@Lab.example"}
    assert client.post("/settings/profile/", profile).status_code == 302
    mallory.user.refresh_from_db()
    assert mallory.user.email.lower() == invited
    before = _state()
    assert "data-invitation-id" not in client.get(MINE).content.decode()
    assert mallory.client().get("/api/v1/invitations").json() == []
    for answer in ("accept", "decline"):
        assert client.post(f"{MINE}{invitation.pk}/{answer}").status_code == 404
        api = mallory.client().post(f"/api/v1/invitations/{invitation.pk}/{answer}")
        assert api.status_code == 404
    assert _state() == before
    # Whoever got the email answers it, as whichever account they are logged in as.
    erin = make_persona("erin")  # no address at all
    assert "Accept as erin" in _as(client, erin.user).get(link).content.decode()
    assert client.post(link, {"answer": "accept"}).status_code == 302
    assert Membership.objects.get(team=world.team, user=erin.user).role == Role.EDITOR
    assert not Membership.objects.filter(team=world.team, user=mallory.user).exists()
    accepted = AuditEvent.objects.get(action=AuditAction.INVITATION_ACCEPTED)
    assert (accepted.actor_name, accepted.data["via"]) == ("erin", "emailed link")


def test_the_link_names_the_account_that_would_join_and_lets_them_switch(
    client, world, dave, sent, committed
):
    with committed():
        _invite(client, world, DAVE_EMAIL)
    link = LINK.search(sent[0].body)[1]
    page = _as(client, world.outsider.user).get(link).content.decode()
    main = page.split('class="settings-main"')[1]
    assert "You are logged in as <strong>mallory</strong>" in main and "Accept as mallory" in main
    assert "Join acme" in main and "alice invited you" in main
    assert f'<input type="hidden" name="next" value="{link}">' in main  # Log out, then back here
    out = client.post("/logout/", {"next": link})
    assert (out.status_code, out["Location"]) == (302, link)
    assert urlsplit(client.get(link)["Location"]).path == "/login/"
    assert _as(client, dave.user).post(link, {"answer": "accept"}).status_code == 302
    assert Membership.objects.filter(team=world.team, user=dave.user).exists()
    assert not Membership.objects.filter(team=world.team, user=world.outsider.user).exists()


def test_a_member_who_accepts_an_address_link_is_told_and_it_stays_open(
    client, world, sent, committed
):
    with committed():
        _invite(client, world, "lab@else.example")
    link = LINK.search(sent[0].body)[1]
    before = _state()
    refused = _as(client, world.viewer.user).post(link, {"answer": "accept"})
    page = refused.content.decode()
    assert refused.status_code == 409 and "You are already a member of acme." in page
    assert 'value="decline"' in page  # still open: decline, or log out and accept as another
    assert _state() == before


def test_a_link_answer_other_than_accept_or_decline_changes_nothing(
    client, world, dave, sent, committed
):
    with committed():
        _invite(client, world, DAVE_EMAIL)
    link = LINK.search(sent[0].body)[1]
    _as(client, dave.user)
    before = _state()
    for body in ({}, {"answer": "yes"}, {"answer": ["accept", "decline"]}):
        response = client.post(link, body)
        assert response.status_code == 400
        assert "Press Accept or Decline." in response.content.decode()
    assert _state() == before


# --- The owners' side ------------------------------------------------------------------------


def test_only_owners_see_and_revoke_pending_invitations(client, world, dave):
    _invite(client, world, "dave")
    invitation = _invitation("dave")
    for persona, status in ((world.editor, 403), (world.viewer, 403), (world.outsider, 404)):
        page = _as(client, persona.user).get(MEMBERS)
        assert "Pending invitations" not in page.content.decode()
        assert client.post(f"{MEMBERS}invitations/{invitation.pk}/revoke").status_code == status
        assert persona.client().get("/api/v1/teams/acme/invitations").status_code == status
    assert _invitation("dave").state == "pending"
    assert "Pending invitations" in _as(client, world.owner.user).get(MEMBERS).content.decode()


def test_it_refuses_a_second_invitation_and_an_existing_member_by_what_owners_see(client, world):
    assert _invite(client, world, "ghost").status_code == 302
    again = _invite(client, world, "ghost")
    assert again.status_code == 400 and "already has a pending invitation" in again.content.decode()
    carol = _invite(client, world, "carol")
    assert (
        carol.status_code == 400 and "carol is already a member of acme." in carol.content.decode()
    )


def test_an_expired_invitation_makes_way_for_a_new_one(client, world, dave):
    _invite(client, world, "dave")
    TeamInvitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert 'Pending invitations <span class="muted">0' in client.get(MEMBERS).content.decode()
    assert _invite(client, world, "dave").status_code == 302
    fresh = TeamInvitation.objects.get(invited_as="dave", revoked_at__isnull=True)
    assert fresh.expires_at - fresh.created_at == INVITATION_TTL


def test_the_api_invites_lists_accepts_and_declines(world, dave):
    api = world.owner.client()
    url = "/api/v1/teams/acme/invitations"
    first = api.post(url, {"member": "dave", "role": "viewer"}, format="json").json()
    second = api.post(url, {"member": DAVE_EMAIL, "role": "editor"}, format="json").json()
    rival = world.outsider.client().post(
        "/api/v1/teams/rival/invitations", {"member": "dave", "role": "editor"}, format="json"
    )
    mine = dave.client().get("/api/v1/invitations").json()
    assert [(item["team"], item["role"], item["invited_by"]) for item in mine] == [
        ("rival", "editor", "mallory"),
        ("acme", "viewer", "alice"),  # not the one to his address: its link answers that
    ]
    for answer in ("accept", "decline"):
        by_id = dave.client().post(f"/api/v1/invitations/{second['id']}/{answer}")
        assert by_id.status_code == 404
    declined = dave.client().post(f"/api/v1/invitations/{rival.json()['id']}/decline")
    assert declined.status_code == 204
    joined = dave.client().post(f"/api/v1/invitations/{first['id']}/accept")
    assert joined.status_code == 200 and joined.json()["role"] == "viewer"
    assert dave.client().get("/api/v1/invitations").json() == []
    accepted = AuditEvent.objects.get(action=AuditAction.INVITATION_ACCEPTED)
    assert accepted.data == {"role": "viewer"}  # by id, not through the link
    third = api.post(url, {"member": "ghost", "role": "viewer"}, format="json").json()
    assert api.delete(f"{url}/{third['id']}").status_code == 204
    again = api.delete(f"{url}/{third['id']}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invitation_revoked"
    bad = api.post(url, {"member": "bob", "role": "viewer"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "member"
