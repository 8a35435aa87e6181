from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from tracking import services
from tracking.models import ApiToken


def test_it_answers_401_without_a_token(anonymous):
    response = anonymous.get("/api/v1/projects")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_answers_401_for_a_bad_token(world):
    client = APIClient()
    for header in ("Bearer lb_nope", "Bearer", "Bearer a b", "Bearer \xe9"):
        client.credentials(HTTP_AUTHORIZATION=header)
        response = client.get("/api/v1/projects")
        assert response.status_code == 401, header
        assert response.json()["error"]["code"] == "invalid_token"


def test_a_revoked_token_stops_working(world):
    client = world.editor.client()
    assert client.get("/api/v1/projects").status_code == 200
    token = ApiToken.objects.get(user=world.editor.user)
    services.token_revoke(token=token)
    assert client.get("/api/v1/projects").status_code == 401


def test_a_token_of_a_deactivated_user_stops_working(world):
    world.editor.user.is_active = False
    world.editor.user.save(update_fields=["is_active"])
    assert world.editor.client().get("/api/v1/projects").status_code == 401


def test_tokens_are_stored_hashed(world):
    token = ApiToken.objects.get(user=world.owner.user)
    assert world.owner.token not in {token.key_hash, token.prefix, token.name}
    assert token.key_hash == services.token_hash(world.owner.token)
    assert world.owner.token.startswith(token.prefix)


def test_it_records_last_use_without_writing_on_every_request(world):
    token = ApiToken.objects.get(user=world.owner.user)
    assert token.last_used_at is None
    client = world.owner.client()
    client.get("/api/v1/projects")
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    client.get("/api/v1/projects")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(hours=1))
    client.get("/api/v1/projects")
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first - timedelta(minutes=5)


def test_it_creates_lists_and_revokes_my_tokens(world):
    client = world.viewer.client()
    created = client.post("/api/v1/tokens", {"name": "ci"}, format="json")
    assert created.status_code == 201
    raw = created.json()["token"]
    assert raw.startswith("lb_")
    listed = client.get("/api/v1/tokens").json()
    assert sorted(t["name"] for t in listed) == ["carol's laptop", "ci"]
    assert all("token" not in t for t in listed)

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert other.get("/api/v1/projects").status_code == 200
    assert client.delete(f"/api/v1/tokens/{created.json()['id']}").status_code == 204
    assert other.get("/api/v1/projects").status_code == 401


def test_i_cannot_revoke_someone_elses_token(world):
    theirs = ApiToken.objects.get(user=world.owner.user)
    response = world.outsider.client().delete(f"/api/v1/tokens/{theirs.pk}")
    assert response.status_code == 404
    assert ApiToken.objects.get(pk=theirs.pk).revoked_at is None


def test_session_login_works_for_the_api(world, client):
    world.owner.user.set_password("s3cret-pass!")
    world.owner.user.save()
    assert client.login(username="alice", password="s3cret-pass!")
    assert client.get("/api/v1/projects").status_code == 200
