from __future__ import annotations

from tracking import services


def test_the_home_page_asks_anonymous_visitors_to_log_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    login = client.get(response["Location"])
    assert login.status_code == 200
    assert b'name="username"' in login.content
    assert b"csrfmiddlewaretoken" in login.content


def test_logging_in_shows_my_projects_and_runs_only(client, world):
    world.owner.user.set_password("correct horse battery")
    world.owner.user.save()
    services.run_create(user=world.owner.user, project=world.project, name="visible-run")
    rival_project = services.project_create(user=world.outsider.user, team_slug="rival", slug="x")
    services.run_create(user=world.outsider.user, project=rival_project, name="secret-run")

    response = client.post(
        "/login/", {"username": "alice", "password": "correct horse battery"}, follow=True
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "acme/mnist" in page
    assert "visible-run" in page
    assert "secret-run" not in page
    assert "rival/x" not in page


def test_a_wrong_password_says_so(client, world):
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"didn't match" in response.content


def test_changing_my_password_says_so_and_keeps_me_logged_in(client, world):
    world.owner.user.set_password("correct horse battery")
    world.owner.user.save()
    client.force_login(world.owner.user)
    form = {
        "old_password": "correct horse battery",
        "new_password1": "a much longer passphrase 42",
        "new_password2": "a much longer passphrase 42",
    }
    response = client.post("/password/", form, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert "Your password was changed." in response.content.decode()
    world.owner.user.refresh_from_db()
    assert world.owner.user.check_password("a much longer passphrase 42")
