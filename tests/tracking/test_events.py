"""Domain events: deciders run inside the publishing transaction, subscribers after commit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import transaction

from tests.conftest import World
from tracking import events, services
from tracking.models import Run, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def registered() -> Iterator[list]:
    """Handlers registered by a test, removed after it."""
    added: list = []
    yield added
    for event_type, handler in added:
        events.unsubscribe(event_type, handler)


def decide(registered: list, handler) -> None:
    events.decide_with(events.RunStatusChanged, handler)
    registered.append((events.RunStatusChanged, handler))


def test_a_decider_writes_in_the_transaction_of_the_change(world: World, registered):
    """It sees the change before commit, and its own write commits with it."""
    seen = []

    def decider(event: events.RunStatusChanged) -> None:
        assert transaction.get_connection().in_atomic_block
        seen.append(Run.objects.get(pk=event.run_id).status)
        Run.objects.filter(pk=event.run_id).update(notes="decided")

    decide(registered, decider)
    run = services.run_create(user=world.owner.user, project=world.project, name="r")
    services.run_update(run=run, data={"status": RunStatus.FAILED})
    assert seen == [RunStatus.FAILED]
    assert Run.objects.get(pk=run.pk).notes == "decided"


def test_a_decision_rolls_back_with_the_change(world: World, registered):
    decide(registered, lambda e: Run.objects.filter(pk=e.run_id).update(notes="decided"))
    run = services.run_create(user=world.owner.user, project=world.project, name="r")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.run_update(run=run, data={"status": RunStatus.FAILED})
        raise RuntimeError("the request failed after the change")
    run.refresh_from_db()
    assert (run.status, run.notes) == (RunStatus.RUNNING, "")


def test_a_failing_decider_undoes_only_itself(world: World, registered, caplog):
    def broken(event: events.RunStatusChanged) -> None:
        Run.objects.filter(pk=event.run_id).update(notes="half-written")
        raise ValueError("a bug in a rule")

    decide(registered, broken)
    run = services.run_create(user=world.owner.user, project=world.project, name="r")
    services.run_update(run=run, data={"status": RunStatus.FAILED})
    run.refresh_from_db()
    assert (run.status, run.notes) == (RunStatus.FAILED, "")
    assert "a bug in a rule" in caplog.text


def test_subscribers_hear_only_after_commit(world: World, registered):
    heard = []
    events.subscribe(events.RunStatusChanged, heard.append)
    registered.append((events.RunStatusChanged, heard.append))
    run = services.run_create(user=world.owner.user, project=world.project, name="r")
    with transaction.atomic():
        services.run_update(run=run, data={"status": RunStatus.FAILED})
        assert heard == []
    assert [event.new for event in heard] == [RunStatus.FAILED]


def test_publishing_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match="outside a transaction"):
        events.publish(events.RunCreated(run_id=1, project_id=1))
