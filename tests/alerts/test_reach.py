"""Who an alert would reach (``alerts.reach``), and the warnings saving and the pages show.

The same answer feeds delivery (the addresses "all team members" resolves
to), the message after saving a destination or a rule, and the warnings of
the destinations, rules and alerts pages.
"""

from __future__ import annotations

import pytest

from alerts import delivery, services
from alerts.models import AlertRule, Destination
from alerts.reach import Addresses, Reach, reach
from tests.conftest import World
from tracking import accounts, selectors

DESTINATIONS = "/settings/teams/acme/destinations/"
ALERTS = "/acme/mnist/alerts/"
RULES = "/acme/mnist/alerts/rules/"
NO_MEMBER = "no team member has an email address yet"


def _destination(world: World, name: str, config: dict, kind: str = "email") -> Destination:
    team, role = selectors.team_get_for_user(world.owner.user, "acme")
    return services.destination_create(
        user=world.owner.user, team=team, role=role, kind=kind, name=name, config=config
    )


def _members(world: World) -> Destination:
    return _destination(world, "everyone", {"team_members": True})


def _rule(world: World, *destinations: Destination, name: str = "failures", **data) -> AlertRule:
    project = selectors.project_get_for_user(world.owner.user, "acme/mnist")
    data |= {"name": name, "trigger": "run_failed", "destinations": [d.pk for d in destinations]}
    return services.rule_create(user=world.owner.user, project=project, data=data)


def _disable(world: World, destination: Destination) -> None:
    _, role = selectors.team_get_for_user(world.owner.user, "acme")
    services.destination_update(
        destination=destination, role=role, data={"enabled": False}, actor=world.owner.user
    )


def _give_email(world: World, persona: str, address: str) -> None:
    user = world.persona(persona).user
    accounts.profile_update(user=user, first_name="", last_name="", email=address)


# --- Who -------------------------------------------------------------------------------------


def test_it_reaches_the_listed_addresses(world):
    listed = _destination(world, "oncall", {"addresses": ["a@example.com", "b@example.com"]})
    assert reach(listed) == Reach(("a@example.com", "b@example.com"))


def test_an_email_destination_listing_no_address_reaches_nobody(world):
    # The services refuse an empty list; a config stored before that rule still says so.
    empty = Destination(team=world.team, kind="email", name="empty", config={"addresses": []})
    assert reach(empty) == Reach(nobody="it lists no email address")


def test_team_members_reach_nobody_until_one_has_an_address(world):
    everyone = _members(world)
    assert reach(everyone).recipients == ()
    assert NO_MEMBER in reach(everyone).nobody
    _give_email(world, "editor", "bob@example.com")
    _give_email(world, "outsider", "mallory@example.com")  # not a member of acme
    assert reach(everyone) == Reach(("bob@example.com",))


def test_a_webhook_reaches_its_host(world, allow_private):
    hook = _destination(
        world, "hook", {"url": "https://hooks.example.com/x", "secret": "s" * 20}, kind="webhook"
    )
    assert reach(hook) == Reach(("hooks.example.com",))


def test_a_rule_without_a_destination_reaches_nobody(world):
    assert reach(_rule(world)) == Reach(nobody="it sends to no destination")


def test_a_rule_reaches_nobody_when_none_of_its_destinations_does(world):
    listed = _destination(world, "oncall", {"addresses": ["oncall@example.com"]})
    _disable(world, listed)
    found = reach(_rule(world, _members(world), listed))
    assert found.recipients == ()
    assert found.nobody.startswith("none of its destinations reaches anyone (")
    assert f"everyone: {NO_MEMBER}" in found.nobody
    assert "oncall: disabled" in found.nobody


def test_a_rule_reaches_whoever_its_enabled_destinations_reach(world):
    _give_email(world, "viewer", "carol@example.com")
    listed = _destination(world, "oncall", {"addresses": ["carol@example.com", "x@example.com"]})
    found = reach(_rule(world, _members(world), listed))
    assert found == Reach(("carol@example.com", "x@example.com"))


def test_addresses_are_read_once_per_team(world, django_assert_num_queries):
    everyone = _members(world)
    addresses = Addresses()
    with django_assert_num_queries(1):
        for _ in range(3):
            reach(everyone, addresses)


def test_delivery_sends_team_members_to_the_same_addresses(world):
    _give_email(world, "owner", "alice@example.com")
    _give_email(world, "editor", "bob@example.com")
    everyone = _members(world)
    config = delivery.destination_config(everyone)
    assert config["resolved_addresses"] == list(reach(everyone).recipients)
    assert config["resolved_addresses"] == ["alice@example.com", "bob@example.com"]


# --- When saved --------------------------------------------------------------------------------


def _login(client, world: World, persona: str = "owner"):
    client.force_login(world.persona(persona).user)
    return client


def _flash_warnings(page: str) -> list[str]:
    return [part.split("</p>")[0] for part in page.split('class="flash flash-warning">')[1:]]


def test_saving_a_rule_without_a_destination_warns_and_saves(client, world):
    _login(client, world)
    posted = {"name": "quiet", "trigger": "run_failed", "run_failed.statuses": "failed"}
    response = client.post(f"{RULES}new", {**posted, "group_wait": "0"}, follow=True)
    assert response.redirect_chain == [(RULES, 302)]
    page = response.content.decode()
    assert "Saved the rule quiet." in page
    assert _flash_warnings(page) == ["The rule quiet reaches nobody: it sends to no destination."]
    assert AlertRule.objects.filter(name="quiet").exists()


def test_saving_a_rule_that_reaches_someone_does_not_warn(client, world):
    listed = _destination(world, "oncall", {"addresses": ["oncall@example.com"]})
    _login(client, world)
    posted = {"name": "loud", "trigger": "run_failed", "run_failed.statuses": "failed"}
    response = client.post(
        f"{RULES}new", {**posted, "group_wait": "0", "destinations": [listed.pk]}, follow=True
    )
    assert "Saved the rule loud." in response.content.decode()
    assert _flash_warnings(response.content.decode()) == []


def test_adding_a_team_members_destination_nobody_can_get_warns(client, world):
    _login(client, world)
    posted = {"kind": "email", "name": "everyone", "team_members": "1"}
    page = client.post(DESTINATIONS, posted, follow=True).content.decode()
    assert "Added the destination everyone." in page
    [warning] = _flash_warnings(page)
    assert warning == f"The destination everyone reaches nobody: {NO_MEMBER}."
    assert Destination.objects.filter(name="everyone").exists()


def test_editing_a_destination_warns_until_a_member_has_an_address(client, world):
    everyone = _members(world)
    edit = f"{DESTINATIONS}{everyone.pk}/"
    posted = {"name": "everyone", "team_members": "1"}
    _login(client, world)
    assert len(_flash_warnings(client.post(edit, posted, follow=True).content.decode())) == 1
    _give_email(world, "viewer", "carol@example.com")
    assert _flash_warnings(client.post(edit, posted, follow=True).content.decode()) == []


# --- On the pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["owner", "viewer"])
def test_the_pages_warn_about_what_reaches_nobody(client, world, persona):
    listed = _destination(world, "oncall", {"addresses": ["oncall@example.com"]})
    _rule(world, _members(world), name="silent")
    _rule(world, listed, name="heard")
    _login(client, world, persona)
    destinations = client.get(DESTINATIONS).content.decode()
    assert destinations.count("data-reaches-nobody") == 1
    assert f"Reaches nobody: {NO_MEMBER}" in destinations
    rules = client.get(RULES).content.decode()
    assert rules.count("data-reaches-nobody") == 1
    row = rules.split("data-reaches-nobody>")[1].split("</p>")[0]
    assert row.startswith("Reaches nobody: none of its destinations reaches anyone (everyone: ")
    alerts = client.get(ALERTS).content.decode()
    notice = alerts.split('class="notice reach-notice" data-reaches-nobody>')[1].split("</div>")[0]
    assert "The alerts of this rule reach nobody" in notice
    assert ">silent</a>" in notice and "heard" not in notice


def test_the_alerts_page_says_nothing_when_every_enabled_rule_reaches_someone(client, world):
    listed = _destination(world, "oncall", {"addresses": ["oncall@example.com"]})
    _rule(world, listed)
    _rule(world, name="off", enabled=False)  # no destination, but it never fires
    assert AlertRule.objects.count() == 2
    assert "data-reaches-nobody" not in _login(client, world).get(ALERTS).content.decode()


def test_the_warnings_cost_the_same_queries_for_1_and_10_rules(
    client, world, django_assert_max_num_queries
):
    everyone = _members(world)
    _login(client, world)

    def queries(url: str) -> int:
        with django_assert_max_num_queries(30) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    _rule(world, everyone, name="rule 0")
    few = {url: queries(url) for url in (RULES, ALERTS)}
    for number in range(1, 10):
        more = _destination(world, f"d{number}", {"team_members": True})
        _rule(world, everyone, more, name=f"rule {number}")
    assert {url: queries(url) for url in (RULES, ALERTS)} == few
