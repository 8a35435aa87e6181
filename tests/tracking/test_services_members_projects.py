"""Services and selectors behind the settings pages: members, tokens, renaming, deleting."""

from __future__ import annotations

import pytest

from kernel.errors import ApplicationError, NotFound
from tests.conftest import World
from tracking import selectors, services
from tracking.ingest import Point, metrics_ingest
from tracking.models import (
    Membership,
    MetricPoint,
    MetricRollup,
    MetricSeries,
    Project,
    Role,
    Run,
    RunTag,
)


def _role(world: World, user) -> str | None:
    return (
        Membership.objects.filter(team=world.team, user=user).values_list("role", flat=True).first()
    )


# --- Members -------------------------------------------------------------------------


def test_it_adds_a_member_with_a_role(world):
    dave, _ = services.user_get_or_create(username="dave")
    services.membership_add(team=world.team, user=dave, role=Role.VIEWER)
    assert _role(world, dave) == Role.VIEWER


def test_it_refuses_to_add_a_member_twice(world):
    with pytest.raises(ApplicationError) as error:
        services.membership_add(team=world.team, user=world.viewer.user, role=Role.OWNER)
    assert (error.value.code, error.value.field) == ("already_exists", "member")
    assert _role(world, world.viewer.user) == Role.VIEWER


def test_it_refuses_an_unknown_role(world):
    dave, _ = services.user_get_or_create(username="dave")
    with pytest.raises(ApplicationError) as error:
        services.membership_add(team=world.team, user=dave, role="admin")
    assert error.value.field == "role"
    assert _role(world, dave) is None


def test_it_changes_a_role(world):
    membership = selectors.membership_get(world.team, world.viewer.user.pk)
    services.membership_role_change(membership=membership, role=Role.OWNER)
    assert _role(world, world.viewer.user) == Role.OWNER


def test_it_demotes_an_owner_when_another_owner_remains(world):
    services.membership_set(team=world.team, user=world.editor.user, role=Role.OWNER)
    membership = selectors.membership_get(world.team, world.owner.user.pk)
    services.membership_role_change(membership=membership, role=Role.VIEWER)
    assert _role(world, world.owner.user) == Role.VIEWER


def test_it_never_demotes_the_last_owner(world):
    membership = selectors.membership_get(world.team, world.owner.user.pk)
    with pytest.raises(ApplicationError) as error:
        services.membership_role_change(membership=membership, role=Role.EDITOR)
    assert error.value.code == "last_owner"
    assert "alice is the last owner of acme" in error.value.message
    assert _role(world, world.owner.user) == Role.OWNER


def test_it_removes_a_member(world):
    services.membership_remove(team=world.team, user=world.editor.user)
    assert _role(world, world.editor.user) is None


def test_it_never_removes_the_last_owner(world):
    with pytest.raises(ApplicationError) as error:
        services.membership_remove(team=world.team, user=world.owner.user)
    assert error.value.code == "last_owner"
    assert _role(world, world.owner.user) == Role.OWNER


def test_it_removes_an_owner_when_another_owner_remains(world):
    services.membership_set(team=world.team, user=world.viewer.user, role=Role.OWNER)
    services.membership_remove(team=world.team, user=world.owner.user)
    assert _role(world, world.owner.user) is None


def test_it_says_not_found_when_removing_a_non_member(world):
    with pytest.raises(NotFound):
        services.membership_remove(team=world.team, user=world.outsider.user)


def test_it_requires_an_owner(world):
    services.require_owner(Role.OWNER)
    for role in (Role.EDITOR, Role.VIEWER, None):
        with pytest.raises(ApplicationError) as error:
            services.require_owner(role)
        assert error.value.status == 403


def test_it_lists_owners_first_then_editors_then_viewers(world):
    zed, _ = services.user_get_or_create(username="zed")
    services.membership_add(team=world.team, user=zed, role=Role.OWNER)
    names = [m.user.username for m in selectors.team_memberships(world.team)]
    assert names == ["alice", "zed", "bob", "carol"]


def test_it_finds_no_member_outside_the_team(world):
    with pytest.raises(NotFound):
        selectors.membership_get(world.team, world.outsider.user.pk)
    with pytest.raises(NotFound):
        selectors.membership_get(world.team, 2**70)


# --- Tokens ------------------------------------------------------------------------------


def test_it_finds_only_my_own_tokens(world):
    mine, _ = services.token_create(user=world.owner.user, name="ci")
    theirs, _ = services.token_create(user=world.outsider.user, name="theirs")
    assert selectors.token_get_for_user(world.owner.user, mine.pk) == mine
    with pytest.raises(NotFound):
        selectors.token_get_for_user(world.owner.user, theirs.pk)
    names = [token.name for token in selectors.tokens_for_user(world.owner.user)]
    assert names == ["ci", "alice's laptop"]


# --- Projects ------------------------------------------------------------------------------------


def test_it_renames_a_project_and_edits_its_description(world):
    services.project_update(project=world.project, slug="mnist-v2", description="  Digits.  ")
    project = Project.objects.get(pk=world.project.pk)
    assert (project.slug, project.description) == ("mnist-v2", "Digits.")
    assert world.project.full_name == "acme/mnist-v2"


@pytest.mark.parametrize("slug", ["", "-leading-dash", "has space", "a/b", "x" * 101])
def test_it_validates_a_new_name_as_project_create_does(world, slug):
    with pytest.raises(ApplicationError) as created:
        services.project_create(user=world.owner.user, team_slug="acme", slug=slug)
    with pytest.raises(ApplicationError) as renamed:
        services.project_update(project=world.project, slug=slug)
    assert renamed.value.field == created.value.field == "name"
    assert renamed.value.message == created.value.message
    assert Project.objects.get(pk=world.project.pk).slug == "mnist"


def test_it_refuses_a_name_taken_in_the_team(world):
    services.project_create(user=world.owner.user, team_slug="acme", slug="cifar")
    with pytest.raises(ApplicationError) as error:
        services.project_update(project=world.project, slug="cifar", description="new")
    assert (error.value.code, error.value.field) == ("already_exists", "name")
    assert world.project.slug == "mnist"  # the object is left as it was
    assert Project.objects.get(pk=world.project.pk).description == ""


def test_it_allows_a_name_used_by_another_team(world):
    services.project_create(user=world.outsider.user, team_slug="rival", slug="cifar")
    services.project_update(project=world.project, slug="cifar")
    assert Project.objects.get(pk=world.project.pk).full_name == "acme/cifar"


def test_it_deletes_a_project_with_its_runs_and_metrics(world):
    runs = [
        services.run_create(user=world.owner.user, project=world.project, name=n, tags=["t"])
        for n in ("a", "b")
    ]
    for run in runs:
        metrics_ingest(run=run, points=[Point("loss", step, 1.0, 1.0) for step in range(40)])
    other = services.project_create(user=world.owner.user, team_slug="acme", slug="kept")
    kept = services.run_create(user=world.owner.user, project=other, name="kept")
    metrics_ingest(run=kept, points=[Point("loss", 0, 1.0, 1.0)])

    assert services.project_delete(project=world.project) == 2

    assert not Project.objects.filter(pk=world.project.pk).exists()
    assert list(Run.objects.all()) == [kept]
    assert not RunTag.objects.exclude(run=kept).exists()
    assert list(MetricSeries.objects.values_list("run_id", flat=True)) == [kept.pk]
    assert MetricPoint.objects.count() == 1
    assert not MetricRollup.objects.exclude(series__run=kept).exists()
