"""The user's own account (``tracking.accounts``): names, and an address no other account has."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from kernel.errors import ApplicationError
from tracking import accounts


def _update(user, **fields) -> User:
    values = {"first_name": "", "last_name": "", "email": "", **fields}
    return accounts.profile_update(user=user, **values)


def _refused(user, **fields) -> ApplicationError:
    with pytest.raises(ApplicationError) as refused:
        _update(user, **fields)
    return refused.value


def test_it_saves_names_and_address_trimmed(world):
    alice = world.owner.user
    _update(alice, first_name=" Alice ", last_name="Liddell", email=" alice@example.com ")
    alice = User.objects.get(pk=alice.pk)
    assert (alice.first_name, alice.last_name, alice.email) == (
        "Alice",
        "Liddell",
        "alice@example.com",
    )


def test_it_clears_the_address_when_left_empty(world):
    _update(world.owner.user, email="alice@example.com")
    _update(world.owner.user, email="  ")
    assert User.objects.get(pk=world.owner.user.pk).email == ""


@pytest.mark.parametrize("address", ["alice", "alice@", "a b@example.com", "alice@@example.com"])
def test_it_refuses_an_invalid_address(world, address):
    error = _refused(world.owner.user, email=address)
    assert (error.field, error.message) == ("email", f"{address!r} is not a valid email address.")


def test_it_refuses_another_accounts_address_whatever_its_case(world):
    _update(world.editor.user, email="Bob@Example.com")
    error = _refused(world.owner.user, first_name="Alice", email="bob@example.COM")
    assert (error.field, error.message) == (
        "email",
        "Another account uses this address: use your own.",
    )
    alice = User.objects.get(pk=world.owner.user.pk)
    assert (alice.first_name, alice.email) == ("", "")  # nothing of a refused save is kept
    assert world.owner.user.first_name == ""


def test_a_user_may_save_their_own_address_again_in_another_case(world):
    _update(world.editor.user, email="bob@example.com")
    _update(world.editor.user, email="BOB@example.com")
    assert User.objects.get(pk=world.editor.user.pk).email == "BOB@example.com"


@pytest.mark.parametrize(("field", "limit"), [("first_name", 150), ("last_name", 150)])
def test_it_bounds_the_names_by_their_columns(world, field, limit):
    _update(world.owner.user, **{field: "x" * limit})
    error = _refused(world.owner.user, **{field: "x" * (limit + 1)})
    assert (error.field, error.message) == (field, f"At most {limit} characters.")


def test_it_bounds_the_address_by_its_column(world):
    error = _refused(world.owner.user, email="a" * 245 + "@example.com")
    assert (error.field, error.message) == ("email", "At most 254 characters.")
