"""GET /api/v1/teams/<team>/audit-events: owners only, keyset pages, filters, constant queries."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from tests.conftest import World
from tracking import services
from tracking.models import Role

URL = "/api/v1/teams/acme/audit-events"


def _roles(world: World, count: int) -> None:
    for n in range(count):
        role = Role.VIEWER if n % 2 == 0 else Role.EDITOR
        services.membership_set(team=world.team, user=world.editor.user, role=role)


def _get(world: World, url: str = URL, persona: str = "owner", status: int = 200, **params):
    response = world.persona(persona).client().get(url, params)
    assert response.status_code == status, response.content[:300]
    return response.json()


def _all_pages(world: World, **params) -> list[dict]:
    """Every event, following ``next`` from the first page."""
    page = _get(world, **params)
    events = page["results"]
    while page["next"]:
        page = _get(world, page["next"].removeprefix("http://testserver"))
        events += page["results"]
    return events


@pytest.mark.parametrize(
    ("persona", "status", "code"),
    [
        ("editor", 403, "permission_denied"),
        ("viewer", 403, "permission_denied"),
        ("outsider", 404, "not_found"),
    ],
)
def test_only_owners_read_the_log(world, persona, status, code):
    assert _get(world, persona=persona, status=status)["error"]["code"] == code
    assert (
        _get(world, "/api/v1/teams/nope/audit-events", status=404)["error"]["code"] == "not_found"
    )


def test_anonymous_callers_are_told_to_authenticate(anonymous, world):
    response = anonymous.get(URL)
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_it_answers_a_page_of_events_newest_first(world):
    dave, _ = services.user_get_or_create(username="dave")
    services.membership_add(team=world.team, user=dave, role=Role.VIEWER, actor=world.owner.user)
    page = _get(world)
    assert set(page) == {"next", "previous", "results"}
    newest = page["results"][0]
    assert newest == {
        "id": newest["id"],
        "created_at": newest["created_at"],
        "action": "member.added",
        "team": "acme",
        "actor": "alice",
        "target_type": "user",
        "target_id": str(dave.pk),
        "target_repr": "dave",
        "data": {"role": "viewer"},
        "ip": None,
    }
    assert [e["id"] for e in page["results"]] == sorted(
        (e["id"] for e in page["results"]), reverse=True
    )


def test_it_shows_no_token_events_not_even_of_members(world):
    # A token is its user's, not the team's: its name, scope and client address are no
    # business of the owners of every team the user is in (security review 16 #6).
    _, raw = services.token_create(user=world.editor.user, name="bob's ci", ip="192.0.2.4")
    assert _all_pages(world, action="token.created") == []
    everything = str(_get(world, page_size=200))
    assert "bob's ci" not in everything and "192.0.2.4" not in everything
    assert raw not in everything


def test_pages_follow_each_other_without_gaps_or_repeats(world):
    _roles(world, 23)
    everything = _all_pages(world)
    ids = [event["id"] for event in everything]
    assert ids == sorted(set(ids), reverse=True)
    assert len(ids) == AuditEvent.objects.filter(team=world.team).count()
    small = _get(world, page_size=5)
    assert len(small["results"]) == 5 and small["previous"] is None
    second = _get(world, small["next"].removeprefix("http://testserver"))
    assert [e["id"] for e in second["results"]] == ids[5:10]
    assert "page_size=5" in second["previous"]


def test_a_new_event_does_not_shift_the_page_a_reader_is_on(world):
    _roles(world, 6)
    first = _get(world, page_size=3)
    _roles(world, 2)  # written while the reader looks at page one
    second = _get(world, first["next"].removeprefix("http://testserver"))
    ids = [e["id"] for e in first["results"] + second["results"]]
    assert ids == sorted(set(ids), reverse=True)
    assert second["results"][0]["id"] < first["results"][-1]["id"]


def test_it_filters_by_action_and_moment(world):
    _roles(world, 3)
    changed = _all_pages(world, action="member.role_changed")
    assert [e["action"] for e in changed] == ["member.role_changed"] * 3
    assert changed[0]["data"] == {"old_role": "editor", "new_role": "viewer"}
    oldest = AuditEvent.objects.filter(action=AuditAction.MEMBER_ROLE_CHANGED).order_by("id")[0]
    before = (oldest.created_at + timedelta(microseconds=1)).isoformat()
    assert [e["id"] for e in _all_pages(world, action="member.role_changed", before=before)] == [
        oldest.pk
    ]
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert len(_all_pages(world, before=future)) == len(_all_pages(world))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"action": "team.deleted"}, "action"),
        ({"action": "member.added\x00"}, "action"),
        ({"before": "yesterday"}, "before"),
        ({"before": "2026-02-30T00:00:00Z"}, "before"),
        ({"before": "9999-12-31T23:59:59-14:00"}, "before"),
        ({"before": "0001-01-01T00:00:00+14:00"}, "before"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(world, params, field):
    error = _get(world, status=400, **params)["error"]
    assert (error["code"], error["field"]) == ("invalid", field)


@pytest.mark.parametrize(
    "position",
    ["", "p=garbage", "p=2026-13-45T00:00:00", "p=9999-12-31T23:59:59-14:00", "p=%00", "o=-3"],
)
def test_a_made_up_cursor_is_not_found(world, position):
    cursor = "bm9wZQ" if not position else base64.b64encode(position.encode()).decode()
    assert _get(world, cursor=cursor, status=404)["error"]["code"] == "not_found"


def test_the_query_count_does_not_grow_with_the_events(world):
    client = world.owner.client()

    def queries(**params) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL, params).status_code == 200
        return len(captured)

    queries()  # the token's first use is written down (last_used_at): not every time
    few = queries()
    _roles(world, 120)
    assert queries() == few
    assert queries(action="member.role_changed", page_size=200) == few


def test_a_read_only_token_of_an_owner_reads_the_log(world):
    _, raw = services.token_create(user=world.owner.user, name="auditor", scope="read")
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(URL).status_code == 200
    assert client.post(URL, {}, format="json").status_code == 403  # read scope: no writes at all
    assert world.owner.client().post(URL, {}, format="json").status_code == 405


def test_the_schema_documents_the_endpoint(client):
    schema = client.get("/api/schema/").content.decode()
    path = schema.split("/api/v1/teams/{team}/audit-events:")[1].split("\n  /")[0]
    assert "name: action" in path and "name: before" in path and "name: cursor" in path
    assert "'403':" in path and "PaginatedAuditEventList" in path
