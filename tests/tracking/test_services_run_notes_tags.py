"""run_annotate and runs_tag: what people write about runs, one run or many at once."""

from __future__ import annotations

import pytest

from kernel.errors import ApplicationError
from tracking import services
from tracking.validation import MAX_TAGS


def _run(world, name="a", **fields):
    return services.run_create(user=world.owner.user, project=world.project, name=name, **fields)


def test_it_saves_notes_and_tags_without_marking_the_run_alive(world):
    run = _run(world, tags=["x"])
    seen = run.last_seen_at
    services.run_annotate(run=run, notes="  why  ", tags=["y", "y", "z"])
    run.refresh_from_db()
    assert run.notes == "why"
    assert services.run_tags(run) == ["y", "z"]
    assert run.last_seen_at == seen


def test_it_leaves_out_what_it_is_not_given(world):
    run = _run(world, notes="keep", tags=["keep"])
    services.run_annotate(run=run, tags=["new"])
    run.refresh_from_db()
    assert run.notes == "keep"
    services.run_annotate(run=run, notes="new")
    assert services.run_tags(run) == ["new"]


def test_it_adds_and_removes_tags_on_many_runs(world):
    a, b = _run(world, "a", tags=["old"]), _run(world, "b")
    services.runs_tag(runs=[a, b], add=["best"])
    services.runs_tag(runs=[a, b], add=["best"])  # twice: no duplicate, no error
    assert services.run_tags(a) == ["best", "old"] and services.run_tags(b) == ["best"]
    services.runs_tag(runs=[a, b], remove=["old", "best"])
    assert services.run_tags(a) == [] and services.run_tags(b) == []


def test_it_refuses_to_push_a_run_past_the_tag_limit_and_writes_nothing(world):
    full = _run(world, "full", tags=[f"t{i}" for i in range(MAX_TAGS)])
    other = _run(world, "other")
    with pytest.raises(ApplicationError) as error:
        services.runs_tag(runs=[other, full], add=["one-more"])
    assert error.value.field == "tag"
    assert services.run_tags(other) == []
    services.runs_tag(runs=[full], add=["t0"])  # already there: still at the limit, fine
