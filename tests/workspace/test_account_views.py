"""The profile page and the "Add your email" banner (``workspace.account_views``)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.conftest import World
from tracking import accounts

PROFILE = "/settings/profile/"
DISMISS = "/settings/profile/email-banner"
BANNER = "Add your email so alerts can reach you"


def _login(client, world: World, persona: str = "owner"):
    client.force_login(world.persona(persona).user)
    return client


def _page(response, status: int = 200) -> str:
    assert response.status_code == status
    return response.content.decode()


def _field_error(page: str, error_id: str) -> str:
    return page.split(f'id="{error_id}">')[1].split("</p>")[0]


def _give_email(world: World, persona: str, address: str) -> None:
    user = world.persona(persona).user
    accounts.profile_update(user=user, first_name="", last_name="", email=address)


# --- The profile page --------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_login(client, world):
    response = client.get(PROFILE)
    assert (response.status_code, response["Location"]) == (302, f"/login/?next={PROFILE}")


def test_it_is_in_the_user_menu_and_the_settings_menu(client, world):
    home = _page(_login(client, world).get("/"))
    menu = home.split('class="menu user-menu"')[1].split("</details>")[0]
    assert f'href="{PROFILE}"' in menu
    page = _page(client.get(PROFILE))
    assert f'<a href="{PROFILE}" aria-current="page">Profile</a>' in page
    assert 'href="/password/"' in page.split('id="password-title"')[1]


def test_it_shows_the_users_own_values(client, world):
    accounts.profile_update(
        user=world.owner.user, first_name="Alice", last_name="Liddell", email="alice@example.com"
    )
    page = _page(_login(client, world).get(PROFILE))
    assert 'name="first_name" value="Alice"' in page
    assert 'name="last_name" value="Liddell"' in page
    assert 'name="email" value="alice@example.com"' in page


def test_it_saves_the_profile(client, world):
    _login(client, world)
    posted = {"first_name": "Alice", "last_name": "Liddell", "email": "alice@example.com"}
    response = client.post(PROFILE, posted, follow=True)
    assert response.redirect_chain == [(PROFILE, 302)]
    assert "Your profile was saved." in _page(response)
    alice = User.objects.get(pk=world.owner.user.pk)
    assert (alice.first_name, alice.last_name, alice.email) == ("Alice", "Liddell", posted["email"])


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("not-an-address", "&#x27;not-an-address&#x27; is not a valid email address."),
        ("BOB@example.com", "Another account uses this address: use your own."),
    ],
)
def test_it_shows_a_bad_address_next_to_the_field(client, world, address, message):
    _give_email(world, "editor", "bob@example.com")
    _login(client, world)
    page = _page(client.post(PROFILE, {"first_name": "Alice", "email": address}), 400)
    assert _field_error(page, "profile-email-error") == message
    assert f'value="{address}"' in page and 'value="Alice"' in page  # what was typed comes back
    assert 'aria-invalid="true" autofocus' in page.split('id="profile-email"')[1].split(">")[0]
    assert User.objects.get(pk=world.owner.user.pk).first_name == ""


def test_it_changes_only_the_users_own_account(client, world):
    _login(client, world, "viewer").post(PROFILE, {"email": "carol@example.com"})
    emails = dict(User.objects.values_list("username", "email"))
    assert emails == {"alice": "", "bob": "", "carol": "carol@example.com", "mallory": ""}


# --- The email banner --------------------------------------------------------------------------


def test_a_user_without_an_address_sees_the_banner_on_every_page(client, world):
    _login(client, world)
    for url in ("/", "/acme/", "/acme/mnist/", "/settings/tokens/", PROFILE, "/alerts/"):
        page = _page(client.get(url))
        assert BANNER in page, url
        assert f'<a href="{PROFILE}">add it on your profile</a>' in page, url


def test_a_user_with_an_address_sees_no_banner(client, world):
    _give_email(world, "owner", "alice@example.com")
    assert BANNER not in _page(_login(client, world).get("/"))


def test_the_banner_goes_once_the_address_is_saved(client, world):
    _login(client, world)
    assert BANNER in _page(client.get("/"))
    client.post(PROFILE, {"email": "alice@example.com"})
    assert BANNER not in _page(client.get("/"))


def test_dismissing_hides_the_banner_for_the_session_only(client, world):
    _login(client, world)
    response = client.post(DISMISS, HTTP_REFERER="http://testserver/acme/?x=1")
    assert (response.status_code, response["Location"]) == (302, "http://testserver/acme/?x=1")
    assert BANNER not in _page(client.get("/"))
    assert BANNER not in _page(client.get("/acme/"))
    client.logout()
    assert BANNER in _page(_login(client, world).get("/"))  # a new session asks again


@pytest.mark.parametrize("referer", [None, "https://evil.example/", "//evil.example/"])
def test_dismissing_goes_home_unless_it_came_from_this_site(client, world, referer):
    headers = {"HTTP_REFERER": referer} if referer else {}
    response = _login(client, world).post(DISMISS, **headers)
    assert (response.status_code, response["Location"]) == (302, "/")


def test_dismissing_takes_a_post(client, world):
    assert _login(client, world).get(DISMISS).status_code == 405
    assert BANNER in _page(client.get("/"))


def test_the_banner_costs_no_query(client, world, django_assert_max_num_queries):
    def queries() -> tuple[int, bool]:
        with django_assert_max_num_queries(40) as captured:
            page = _page(client.get("/acme/"))
        return len(captured), BANNER in page

    _login(client, world, "editor")
    with_banner = queries()
    _give_email(world, "editor", "bob@example.com")
    without_banner = queries()
    assert (with_banner[1], without_banner[1]) == (True, False)
    assert with_banner[0] == without_banner[0]
