"""Sessions: a CSRF token on every form, refused posts without one, and login throttling."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from alerts.models import AlertRule
from reports_app.models import Comment, ShareLink
from tests.conftest import World
from tests.sdk.server import ROOT, LabbookServer, manage
from tests.security import site
from tests.security.site import Site
from tests.support import require_redis
from tracking.models import ApiToken
from workspace import login_throttle

PASSWORD = "correct-horse-battery-staple"
TEMPLATES = ROOT / "templates"


@pytest.fixture
def pages(world: World, django_capture_on_commit_callbacks) -> Site:
    return site.build(world, django_capture_on_commit_callbacks)


# --- CSRF ----------------------------------------------------------------------------------


def _rendered(client: Client, world: World, pages: Site) -> Iterator[tuple[str, object]]:
    yield "/login/", Client().get("/login/")
    client.force_login(world.owner.user)
    for url in pages.member_pages:
        yield url, client.get(url)


def test_every_post_form_of_every_page_carries_the_csrf_token(client, world, pages):
    checked = 0
    for url, response in _rendered(client, world, pages):
        assert response.status_code == 200, url
        for form in site.parse(response.content.decode()).forms:
            if form.method == "post":
                assert len(form.fields.get("csrfmiddlewaretoken", "")) == 64, (url, form)
                checked += 1
    assert checked > 30  # the pages showed their forms (edit, revoke, delete...)


def test_the_pages_cover_every_template_with_a_post_form(client, world, pages):
    with_forms = {
        path.relative_to(TEMPLATES).as_posix()
        for path in TEMPLATES.rglob("*.html")
        if re.search(r'<form[^>]*method="post"', path.read_text())
    }
    rendered = {
        template.name
        for _, response in _rendered(client, world, pages)
        for template in response.templates
    }
    assert with_forms - rendered == set()


def _csrf_client(user=None) -> Client:
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def _token(client: Client, url: str) -> str:
    page = client.get(url).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_a_login_without_the_token_is_refused(world):
    world.owner.user.set_password(PASSWORD)
    world.owner.user.save(update_fields=["password"])
    client = _csrf_client()
    form = {"username": "alice", "password": PASSWORD}
    assert client.post("/login/", form).status_code == 403
    assert "_auth_user_id" not in client.session
    token = _token(client, "/login/")
    assert client.post("/login/", {**form, "csrfmiddlewaretoken": token}).status_code == 302


@pytest.mark.parametrize(
    ("page", "url", "form", "created"),
    [
        ("/settings/tokens/", "/settings/tokens/", {"name": "ci"}, ApiToken.objects),
        ("/reports/{report}/share", "/reports/{report}/share", {}, ShareLink.objects),
        (
            "/acme/mnist/alerts/rules/new",
            "/acme/mnist/alerts/rules/new",
            {"name": "fails", "trigger": "run_failed"},
            AlertRule.objects,
        ),
    ],
)
def test_a_form_posted_without_the_token_is_refused_and_writes_nothing(
    world, pages, page, url, form, created
):
    client = _csrf_client(world.owner.user)
    url = url.format(report=pages.report_id)
    before = created.count()
    response = client.post(url, form)
    assert response.status_code == 403
    assert created.count() == before
    token = _token(client, page.format(report=pages.report_id))
    assert client.post(url, {**form, "csrfmiddlewaretoken": token}).status_code != 403


def test_a_comment_posted_without_the_token_is_refused(world, pages):
    client = _csrf_client(world.owner.user)
    body = {"target": f"run:{pages.run_id}", "body": "Looks good"}
    refused = client.post("/api/v1/comments", body, content_type="application/json")
    assert refused.status_code == 403 and Comment.objects.count() == 0
    token = _token(client, f"/acme/mnist/runs/{pages.run_id}")  # the comment form's token
    accepted = client.post(
        "/api/v1/comments", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 201 and Comment.objects.count() == 1


# --- Login throttling ------------------------------------------------------------------------


@pytest.fixture
def alice(world: World):
    world.owner.user.set_password(PASSWORD)
    world.owner.user.save(update_fields=["password"])
    return world.owner.user


@pytest.fixture
def forget_failures() -> Iterator[list[tuple[str, str]]]:
    """(username, address) pairs a test used: their counters are dropped afterwards.

    With REDIS_URL the cache outlives the test run, so nothing may stay locked.
    """
    used: list[tuple[str, str]] = []
    yield used
    for username, address in used:
        login_throttle.reset(username=username, address=address)


def _log_in(username: str, password: str, address: str) -> object:
    return Client().post(
        "/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def _fail(username: str, address: str, times: int) -> None:
    for _ in range(times):
        response = _log_in(username, "wrong", address)
        assert response.status_code == 200 and b"didn't match" in response.content


def test_it_locks_a_username_out_after_too_many_wrong_passwords(alice, forget_failures):
    forget_failures.append(("alice", "192.0.2.1"))
    _fail("alice", "192.0.2.1", times=5)
    response = _log_in("alice", PASSWORD, "192.0.2.1")  # the right one, too late
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert b"Wait 5 minutes" in response.content
    assert 299 <= int(response["Retry-After"]) <= 300
    assert "_auth_user_id" not in response.wsgi_request.session


def test_the_lockout_holds_from_every_address_and_for_any_case(alice, forget_failures):
    forget_failures += [("alice", "192.0.2.2"), ("alice", "192.0.2.3")]
    _fail("alice", "192.0.2.2", times=3)
    _fail("ALICE", "192.0.2.3", times=2)
    assert _log_in("alice", PASSWORD, "192.0.2.3").status_code == 429
    assert _log_in("Alice ", PASSWORD, "192.0.2.3").status_code == 429


def test_other_users_still_log_in(alice, world, forget_failures):
    forget_failures += [("alice", "192.0.2.4"), ("bob", "192.0.2.5")]
    world.editor.user.set_password(PASSWORD)
    world.editor.user.save(update_fields=["password"])
    _fail("alice", "192.0.2.4", times=5)
    assert _log_in("bob", PASSWORD, "192.0.2.5").status_code == 302


def test_an_address_trying_many_usernames_is_locked_out(alice, settings, forget_failures):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 3
    names = ["root", "admin", "guest"]
    forget_failures += [(name, "198.51.100.9") for name in [*names, "alice"]]
    for name in names:
        _fail(name, "198.51.100.9", times=1)
    assert _log_in("alice", PASSWORD, "198.51.100.9").status_code == 429
    assert _log_in("alice", PASSWORD, "198.51.100.10").status_code == 302


def test_a_right_password_forgets_the_earlier_failures(alice, forget_failures):
    forget_failures.append(("alice", "192.0.2.6"))
    for _ in range(2):
        _fail("alice", "192.0.2.6", times=4)
        assert _log_in("alice", PASSWORD, "192.0.2.6").status_code == 302


def test_the_login_works_again_once_the_lockout_is_over(alice, settings, forget_failures):
    settings.LOGIN_LOCKOUT_SECONDS = 2
    forget_failures.append(("alice", "192.0.2.7"))
    for _ in range(5):  # as the login page counts them, without five slow password hashes
        login_throttle.record_failure(username="alice", address="192.0.2.7")
    assert _log_in("alice", PASSWORD, "192.0.2.7").status_code == 429
    time.sleep(2.2)
    response = _log_in("alice", PASSWORD, "192.0.2.7")
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_admin_login_is_throttled_too(world, forget_failures):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    forget_failures.append(("root", "192.0.2.8"))
    form = {"username": "root", "password": PASSWORD, "next": "/admin/"}
    client = Client(REMOTE_ADDR="192.0.2.8")
    assert client.post("/admin/login/", form).status_code == 302  # the right password works
    client.logout()
    _fail("root", "192.0.2.8", times=5)
    response = client.post("/admin/login/", form)
    assert response.status_code == 200  # the admin's own form error
    assert "_auth_user_id" not in client.session and admin.is_superuser


@pytest.mark.parametrize(
    "username", ["a\x00b", "x" * 10_000, "ünïcødé 名前", "", "   ", "%00' OR 1=1 --"]
)
def test_odd_usernames_get_the_login_form_back(world, username, forget_failures):
    forget_failures.append((username, "192.0.2.9"))
    response = _log_in(username, "whatever", "192.0.2.9")
    assert response.status_code == 200
    assert b'name="username"' in response.content


# --- Across web processes ---------------------------------------------------------------------


SET_PASSWORD = """
from django.contrib.auth import get_user_model
user = get_user_model().objects.get(username="rosa")
user.set_password({!r})
user.save(update_fields=["password"])
"""


def _server_log_in(server: LabbookServer, username: str, password: str) -> httpx.Response:
    """The login form as a browser sends it: its CSRF cookie and token, then the post."""
    with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as browser:
        page = browser.get("/login/").text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = {"username": username, "password": password, "csrfmiddlewaretoken": token}
        return browser.post("/login/", data=form)


@pytest.mark.subprocess
def test_a_lockout_on_one_web_process_holds_on_another(tmp_path, forget_failures):
    env = {"REDIS_URL": require_redis()}
    forget_failures.append(("rosa", "127.0.0.1"))
    home = tmp_path / "home"
    with LabbookServer(home, env=env) as a, LabbookServer(home, env=env) as b:
        manage(home, "createtoken", "rosa", "--team", "lab")
        manage(home, "shell", "--no-imports", "-c", SET_PASSWORD.format(PASSWORD))
        assert _server_log_in(b, "rosa", PASSWORD).status_code == 302
        for _ in range(5):
            assert _server_log_in(a, "rosa", "wrong").status_code == 200
        locked = _server_log_in(b, "rosa", PASSWORD)
    assert locked.status_code == 429 and "Too many failed logins" in locked.text
