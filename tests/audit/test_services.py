"""The audit log's own rules: snapshots, who the actor is, the address, and append-only rows."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.test import RequestFactory

from audit.models import AppendOnlyError, AuditAction, AuditEvent
from audit.services import audit_record, changed_fields
from tests.conftest import World
from tracking import services
from tracking.models import Team


def _event(world: World, **fields) -> AuditEvent:
    defaults = {
        "action": AuditAction.MEMBER_ADDED,
        "actor": world.owner.user,
        "team": world.team,
        "target": world.viewer.user,
        "data": {"role": "viewer"},
    }
    return audit_record(**{**defaults, **fields})


def _row(event: AuditEvent) -> dict:
    return AuditEvent.objects.filter(pk=event.pk).values().get()


def test_it_records_names_as_they_are_now(world):
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.9")
    event = _event(world, request=request)
    row = _row(event)
    assert row["team_id"] == world.team.pk and row["team_slug"] == "acme"
    assert row["actor_id"] == world.owner.user.pk and row["actor_name"] == "alice"
    assert (row["target_type"], row["target_id"]) == ("user", str(world.viewer.user.pk))
    assert row["target_repr"] == "carol"
    assert row["data"] == {"role": "viewer"}
    assert row["ip"] == "203.0.113.9"
    assert row["action"] == "member.added"


def test_it_calls_a_change_without_a_person_system_and_a_visitor_anonymous(world):
    assert _event(world, actor=None).actor_name == "system"
    visitor = _event(world, actor=AnonymousUser(), ip="2001:db8::1")
    assert (visitor.actor_id, visitor.actor_name, visitor.ip) == (None, "anonymous", "2001:db8::1")


def test_it_keeps_no_address_that_is_not_one(world):
    request = RequestFactory().get("/", REMOTE_ADDR="unix:/run/labbook.sock")
    assert _event(world, request=request).ip is None
    assert _event(world, ip="999.1.1.1").ip is None


def test_it_refuses_an_action_it_does_not_know(world):
    with pytest.raises(ValueError, match=r"project\.deleted"):
        _event(world, action="project.deleted")
    assert not AuditEvent.objects.filter(action="project.deleted").exists()


def test_it_refuses_a_target_it_cannot_name_without_its_str(world):
    # A project is not an audit target: no event may fall back on an object's __str__.
    with pytest.raises(KeyError):
        _event(world, target=world.project)


@pytest.mark.parametrize("key", ["secret", "token", "raw_token", "Password"])
def test_it_refuses_data_that_names_a_secret(world, key):
    with pytest.raises(ValueError, match="no secrets"):
        _event(world, data={key: "x"})


def test_it_names_the_fields_that_changed_never_their_values():
    before = {"name": "a", "config": {"secret": "old"}, "enabled": True}
    after = {"name": "a", "config": {"secret": "new"}, "enabled": False}
    assert changed_fields(before, after) == ["config", "enabled"]


# --- Append-only --------------------------------------------------------------------------------


def test_it_refuses_to_change_a_saved_event(world):
    event = _event(world)
    before = _row(event)
    event.data = {"role": "owner"}
    with pytest.raises(AppendOnlyError, match="append-only"):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.save(update_fields=["data"])
    assert _row(event) == before


def test_it_refuses_to_delete_an_event(world):
    event = _event(world)
    with pytest.raises(AppendOnlyError, match="deleting an audit event"):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_its_querysets_refuse_update_and_delete(world):
    event = _event(world)
    before = _row(event)
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(actor_name="mallory")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError), transaction.atomic():  # bulk_update spoils its block
        AuditEvent.objects.bulk_update([event], ["actor_name"])
    assert _row(event) == before


def test_a_new_event_with_an_old_events_id_is_refused_not_written_over(world):
    event = _event(world)
    before = _row(event)
    forged = AuditEvent(pk=event.pk, action=AuditAction.TOKEN_REVOKED, actor_name="mallory")
    with pytest.raises(IntegrityError), transaction.atomic():
        forged.save()
    assert _row(event) == before


def test_an_event_outlives_its_team_and_its_actor(world):
    event = _event(world)
    team = Team.objects.get(slug="acme")
    team.delete()  # no service deletes teams: this is what an administrator would do
    get_user_model().objects.get(username="alice").delete()
    row = _row(event)
    assert (row["team_id"], row["team_slug"]) == (None, "acme")
    assert (row["actor_id"], row["actor_name"]) == (None, "alice")


def test_a_service_that_fails_after_its_checks_writes_no_event(world):
    with pytest.raises(Exception, match="last owner"):
        services.membership_remove(team=world.team, user=world.owner.user, actor=world.owner.user)
    assert not AuditEvent.objects.filter(action=AuditAction.MEMBER_REMOVED).exists()
