"""Token scopes (full, read, ingest), expiry, and how a token is looked up.

The REST API and the MLflow API are called in process; the last tests run the
unmodified mlflow client and the SDK, as subprocesses, with an ingest token
against a real server, which proves the ingest scope holds what they need.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from tests.sdk.server import ROOT, LabbookServer, server_env
from tests.support import services_free
from tests.tracking.test_artifact_versions import log as log_artifact
from tracking import scopes, services
from tracking.models import ApiToken, Run, TokenScope

MLFLOW = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def token_for(user: Any, scope: str = TokenScope.FULL, **fields: Any) -> str:
    return services.token_create(user=user, name=f"{scope} token", scope=scope, **fields)[1]


def api(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def mlflow_get(raw: str, path: str, params: dict[str, Any] | None = None):
    return APIClient().get(f"{MLFLOW}/{path}", params or {}, HTTP_AUTHORIZATION=f"Bearer {raw}")


def mlflow_post(raw: str, path: str, body: dict[str, Any]):
    return APIClient().post(
        f"{MLFLOW}/{path}",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )


def artifact_put(raw: str, path: str, content: bytes = b"hello"):
    return APIClient().generic(
        "PUT",
        f"{ARTIFACTS}/{path}",
        content,
        content_type="application/octet-stream",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )


def assert_scope_refused(response, scope: str) -> dict[str, Any]:
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "insufficient_scope"
    assert f"'{scope}' scope" in error["message"]
    assert error["details"]["scope"] == scope
    return error


@pytest.fixture
def run(world) -> Run:
    return services.run_create(user=world.owner.user, project=world.project, name="base")


# --- Lookup ----------------------------------------------------------------------------------


def test_it_looks_a_token_up_by_its_hash_never_by_its_raw_value(world):
    raw = world.editor.token
    with CaptureQueriesContext(connection) as queries:
        token = services.token_authenticate(raw)
    assert token is not None and token.user == world.editor.user
    lookup = queries.captured_queries[0]["sql"]
    assert services.token_hash(raw) in lookup, "one indexed equality on the SHA-256 digest"
    assert all(raw not in q["sql"] and raw[:10] not in q["sql"] for q in queries.captured_queries)
    assert services.token_authenticate(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None


def test_scope_and_expiry_cost_no_query_beyond_the_token_lookup(world, django_assert_num_queries):
    client = api(token_for(world.owner.user, TokenScope.READ, expires_at=_in(days=1)))
    assert client.get("/api/v1/tokens").status_code == 200  # touches last_used_at once
    with django_assert_num_queries(2):  # the token (with its user), then the list
        assert client.get("/api/v1/tokens").status_code == 200


# --- The table ---------------------------------------------------------------------------------


def _view_names(resolver: URLResolver) -> set[str]:
    names: set[str] = set()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            names |= _view_names(pattern)
        elif isinstance(pattern, URLPattern):
            names.add(pattern.name or pattern.lookup_str)
    return names


def test_every_endpoint_the_scopes_name_is_routed():
    routed = _view_names(get_resolver())
    named = set(scopes.INGEST) | set(scopes.READ_POSTS)
    assert named - routed == set(), "a renamed view fell out of the scope table"


# --- read ----------------------------------------------------------------------------------------


def test_a_read_token_reads_everything_its_user_may_read(world, run):
    client = api(token_for(world.viewer.user, TokenScope.READ))
    for path in (
        "/api/v1/runs?project=acme/mnist",
        f"/api/v1/runs/{run.pk}",
        f"/api/v1/runs/{run.pk}/metrics",
        "/api/v1/projects",
        "/api/v1/reports",
        f"/api/v1/comments?target=run:{run.pk}",
        "/api/v1/alert-rules",
        "/api/v1/tokens",
    ):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/runs", {"project": "acme/mnist"}),
        ("patch", "/api/v1/runs/{run}", {"notes": "x"}),
        ("post", "/api/v1/runs/{run}/metrics", {"points": [{"key": "a", "step": 0, "value": 1}]}),
        ("post", "/api/v1/reports", {"project": "acme/mnist", "title": "t"}),
        ("post", "/api/v1/comments", {"target": "run:{run}", "body": "hi"}),
        ("post", "/api/v1/tokens", {"name": "wider", "scope": "full"}),
        ("delete", "/api/v1/tokens/1", None),
    ],
)
def test_a_read_token_cannot_write(world, run, method, path, body):
    client = api(token_for(world.owner.user, TokenScope.READ))
    path = path.format(run=run.pk)
    body = body and json.loads(json.dumps(body).replace("{run}", str(run.pk)))
    before = (Run.objects.count(), ApiToken.objects.count())
    error = assert_scope_refused(getattr(client, method)(path, body, format="json"), "read")
    assert "'full'" in error["message"]
    assert (Run.objects.count(), ApiToken.objects.count()) == before
    assert Run.objects.get(pk=run.pk).notes == ""


def test_a_read_token_searches_through_mlflow_but_logs_nothing(world, run):
    raw = token_for(world.owner.user, TokenScope.READ)
    found = mlflow_post(raw, "runs/search", {"experiment_ids": [str(run.project_id)]}).json()
    assert [r["info"]["run_id"] for r in found["runs"]] == [str(run.pk)]
    assert mlflow_post(raw, "experiments/search", {"max_results": 10}).status_code == 200
    assert mlflow_get(raw, "runs/get", {"run_id": run.pk}).status_code == 200
    refused = [
        mlflow_post(raw, "runs/create", {"experiment_id": str(run.project_id)}),
        mlflow_post(raw, "runs/log-metric", {"run_id": str(run.pk), "key": "a", "value": 1}),
        artifact_put(raw, f"{run.project_id}/{run.pk}/artifacts/notes.txt"),
    ]
    for response in refused:
        assert response.status_code == 403, response.content
        assert response.json()["error_code"] == "PERMISSION_DENIED"
        assert "'read' scope" in response.json()["message"]
    assert not run.metric_series.exists()


# --- ingest ---------------------------------------------------------------------------------------


HISTOGRAM = {"key": "w", "step": 0, "kind": "histogram", "counts": [1], "edges": [0, 1]}
LINE = {"number": 0, "text": "epoch 1"}


def test_an_ingest_token_logs_a_run_end_to_end_through_the_api(world):
    client = api(token_for(world.editor.user, TokenScope.INGEST))
    created = client.post("/api/v1/runs", {"project": "acme/ci", "name": "nightly"}, format="json")
    assert created.status_code == 201, created.content
    run_id = created.json()["id"]
    points = [{"key": "loss", "step": s, "value": 1 / (s + 1)} for s in range(3)]
    steps = [
        client.post(f"/api/v1/runs/{run_id}/metrics", {"points": points}, format="json"),
        client.post(f"/api/v1/runs/{run_id}/heartbeat"),
        client.patch(f"/api/v1/runs/{run_id}", {"summary": {"best": 0.3}}, format="json"),
        client.post(f"/api/v1/runs/{run_id}/alerts", {"title": "slow"}, format="json"),
        client.get(f"/api/v1/runs/{run_id}"),
        client.get(f"/api/v1/runs/{run_id}/metrics"),  # what sdk.init(resume=...) reads
        client.post(f"/api/v1/runs/{run_id}/media", {"items": [HISTOGRAM]}, format="json"),
        client.post(f"/api/v1/runs/{run_id}/console", {"lines": [LINE]}, format="json"),
        client.get(f"/api/v1/runs/{run_id}/console", {"tail": 1}),  # resume's line count
        client.patch(f"/api/v1/runs/{run_id}", {"status": "finished"}, format="json"),
    ]
    assert [r.status_code for r in steps] == [200, 200, 200, 201, 200, 200, 200, 200, 200, 200]
    version = log_artifact(client, Run.objects.get(pk=run_id), {"model.bin": b"weights"})
    assert version["version"] == "v0"
    assert Run.objects.get(pk=run_id).status == "finished"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/runs?project=acme/mnist"),
        ("get", "/api/v1/projects"),
        ("post", "/api/v1/projects"),
        ("get", "/api/v1/teams"),
        ("get", "/api/v1/runs/{run}/metrics/loss"),
        ("get", "/api/v1/runs/{run}/alerts"),
        ("get", "/api/v1/runs/{run}/artifacts"),
        ("get", "/api/v1/runs/{run}/media"),
        ("get", "/api/v1/runs/{run}/console.txt"),
        ("get", "/api/v1/runs/{run}/artifact-versions"),
        ("get", "/api/v1/projects/acme/mnist/artifacts"),
        ("delete", "/api/v1/runs/{run}"),
        ("get", "/api/v1/reports"),
        ("post", "/api/v1/reports"),
        ("get", "/api/v1/comments?target=run:{run}"),
        ("post", "/api/v1/comments"),
        ("get", "/api/v1/tokens"),
        ("post", "/api/v1/tokens"),
        ("get", "/api/v1/alert-rules"),
        ("post", "/api/v1/alert-rules"),
        ("get", "/api/v1/destinations"),
        ("get", "/api/v1/alerts"),
        ("post", "/api/v1/silences"),
    ],
)
def test_an_ingest_token_reads_no_lists_and_touches_nothing_but_runs(world, run, method, path):
    client = api(token_for(world.owner.user, TokenScope.INGEST))
    response = getattr(client, method)(path.format(run=run.pk), {}, format="json")
    assert_scope_refused(response, "ingest")


def test_an_ingest_token_logs_through_mlflow_but_cannot_search_or_download(world, run):
    raw = token_for(world.owner.user, TokenScope.INGEST)
    experiment = str(run.project_id)
    found = mlflow_get(raw, "experiments/get-by-name", {"experiment_name": "acme/mnist"})
    assert found.json()["experiment"]["experiment_id"] == experiment
    created = mlflow_post(raw, "runs/create", {"experiment_id": experiment})
    run_id = created.json()["run"]["info"]["run_id"]
    metric = {"key": "loss", "value": 0.5, "timestamp": 0, "step": 0}
    assert mlflow_post(raw, "runs/log-batch", {"run_id": run_id, "metrics": [metric]}).json() == {}
    assert mlflow_get(raw, "runs/get", {"run_id": run_id}).status_code == 200
    upload = f"{experiment}/{run_id}/artifacts/model.txt"
    assert artifact_put(raw, upload).status_code == 200
    refused = [
        mlflow_post(raw, "runs/search", {"experiment_ids": [experiment]}),
        mlflow_post(raw, "experiments/search", {"max_results": 10}),
        mlflow_get(raw, "metrics/get-history", {"run_id": run_id, "metric_key": "loss"}),
        APIClient().get(f"{ARTIFACTS}/{upload}", HTTP_AUTHORIZATION=f"Bearer {raw}"),
        mlflow_post(raw, "runs/delete", {"run_id": run_id}),
    ]
    for response in refused:
        assert response.status_code == 403, response.content
        assert "'ingest' scope" in response.json()["message"]


def test_a_scope_never_widens_what_the_user_may_do(world, run):
    client = api(token_for(world.viewer.user, TokenScope.INGEST))
    response = client.post(f"/api/v1/runs/{run.pk}/metrics", {"points": []}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"  # the role, not the scope
    outsider = api(token_for(world.outsider.user, TokenScope.INGEST))
    assert outsider.get(f"/api/v1/runs/{run.pk}").status_code == 404


# --- Expiry -------------------------------------------------------------------------------------


def _in(**delta: float):
    return timezone.now() + timedelta(**delta)


def _expire(raw: str) -> None:
    """Age the token past its expiry (time travel; creating one in the past is refused)."""
    token = ApiToken.objects.get(key_hash=services.token_hash(raw))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))


def test_an_expired_token_gets_401_token_expired(world):
    raw = token_for(world.owner.user, expires_at=_in(hours=1))
    client = api(raw)
    assert client.get("/api/v1/projects").status_code == 200
    _expire(raw)
    response = client.get("/api/v1/projects")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "token_expired"
    assert "expired on" in error["message"] and raw[:10] in error["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert api(raw + "x").get("/api/v1/projects").json()["error"]["code"] == "invalid_token"


def test_an_expired_token_is_told_so_by_the_mlflow_api(world, run):
    raw = token_for(world.owner.user, expires_at=_in(hours=1))
    _expire(raw)
    response = mlflow_get(raw, "runs/get", {"run_id": run.pk})
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert "expired on" in response.json()["message"]


def test_an_expired_token_is_not_marked_as_used(world):
    raw = token_for(world.owner.user, expires_at=_in(hours=1))
    _expire(raw)
    api(raw).get("/api/v1/projects")
    assert ApiToken.objects.get(key_hash=services.token_hash(raw)).last_used_at is None


# --- Creating scoped tokens through the API ---------------------------------------------------


def test_it_creates_a_scoped_expiring_token_through_the_api(world):
    client = world.owner.client()
    expires = _in(days=30).replace(microsecond=0)
    body = {"name": "ci", "scope": "ingest", "expires_at": expires.isoformat()}
    created = client.post("/api/v1/tokens", body, format="json")
    assert created.status_code == 201, created.content
    answer = created.json()
    assert (answer["scope"], answer["expires_at"][:19]) == ("ingest", expires.isoformat()[:19])
    listed = {t["name"]: t for t in client.get("/api/v1/tokens").json()}
    assert listed["ci"]["scope"] == "ingest" and listed["alice's laptop"]["scope"] == "full"
    assert listed["alice's laptop"]["expires_at"] is None
    ingest = api(answer["token"])
    assert ingest.post("/api/v1/runs", {"project": "acme/x"}, format="json").status_code == 201
    assert ingest.get("/api/v1/tokens").status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scope": "admin"}, "scope"),
        ({"name": "x", "scope": ["read"]}, "scope"),
        ({"name": "x", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "x", "expires_at": "2027-02-30T00:00:00Z"}, "expires_at"),
        ({"name": "x", "expires_at": 1767225600}, "expires_at"),
        ({"name": "x", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "expires": "2030-01-01T00:00:00Z"}, "expires"),
    ],
)
def test_it_refuses_a_bad_scope_or_expiry_naming_the_field(world, body, field):
    response = world.owner.client().post("/api/v1/tokens", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert ApiToken.objects.filter(user=world.owner.user).count() == 1


# --- The settings page -------------------------------------------------------------------------

TOKENS = "/settings/tokens/"


@pytest.fixture
def logged_in(client, world):
    client.force_login(world.owner.user)
    return client


def test_the_page_creates_a_token_with_the_chosen_scope_and_expiry(logged_in, world):
    form = {"name": "nightly ci", "scope": "ingest", "expires_in": "30"}
    response = logged_in.post(TOKENS, form, follow=True)
    assert response.status_code == 200
    token = ApiToken.objects.get(name="nightly ci")
    assert token.scope == TokenScope.INGEST
    assert _in(days=29, hours=23) < token.expires_at < _in(days=30, minutes=1)
    row = response.content.decode().split(f'data-token-id="{token.pk}"')[1].split("</tr>")[0]
    assert 'data-scope="ingest"' in row and "Ingest only" in row
    assert "in 4\xa0weeks" in row


def test_the_page_lists_scope_expiry_and_an_expired_token(logged_in, world):
    raw = token_for(world.owner.user, TokenScope.READ, expires_at=_in(hours=2))
    _expire(raw)
    page = logged_in.get(TOKENS).content.decode()
    expired = ApiToken.objects.get(key_hash=services.token_hash(raw))
    row = page.split(f'data-token-id="{expired.pk}"')[1].split("</tr>")[0]
    assert "Read only" in row and "pill-expired" in row and "ago" in row
    laptop = ApiToken.objects.get(name="alice's laptop")
    row = page.split(f'data-token-id="{laptop.pk}"')[1].split("</tr>")[0]
    assert "Full access" in row and "no expiry" in row and "pill-active" in row


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"name": "x", "scope": "root", "expires_in": ""}, "scope"),
        ({"name": "x", "scope": "read", "expires_in": "9999"}, "expires_in"),
    ],
)
def test_the_page_shows_a_bad_choice_next_to_its_field(logged_in, world, form, field):
    response = logged_in.post(TOKENS, form)
    assert response.status_code == 400
    page = response.content.decode()
    assert f'id="token-{"expires" if field == "expires_in" else field}-error"' in page
    assert not ApiToken.objects.filter(name="x").exists()


def test_a_token_never_opens_a_web_page(world, client):
    response = client.get(TOKENS, HTTP_AUTHORIZATION=f"Bearer {world.owner.token}")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- Real clients with an ingest token ----------------------------------------------------------


@pytest.fixture(scope="module")
@services_free
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    with LabbookServer(tmp_path_factory.mktemp("scopes") / "home") as running:
        yield running


def server_token(server: LabbookServer, scope: str) -> str:
    with server.client() as http:
        created = http.post("/api/v1/tokens", json={"name": f"{scope} job", "scope": scope})
        return created.raise_for_status().json()["token"]


def python(source: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *(["-c", source] if source else []), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.subprocess
def test_the_mlflow_client_logs_a_whole_run_with_an_ingest_token(server, tmp_path):
    raw = server_token(server, "ingest")
    env = {**server_env(server.home), "MLFLOW_TRACKING_URI": server.url}
    env.update(MLFLOW_TRACKING_TOKEN=raw, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    env.update(MLFLOW_DISABLE_TELEMETRY="true", EXPERIMENT="lab/ci-ingest", STEPS="20")
    done = python("", env, str(ROOT / "examples" / "train_with_mlflow.py"))
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = int(done.stdout.strip().splitlines()[-1])
    stored = server.run(run_id)
    assert (stored["status"], stored["project"]) == ("finished", "lab/ci-ingest")
    assert server.metric_keys(run_id) == {"train/loss": 20, "train/acc": 20}
    with server.client() as http:
        listed = http.get(f"/api/v1/runs/{run_id}/artifacts").json()["artifacts"]
    assert {a["path"] for a in listed} == {"model_card.md", "labels.json"}
    search = "import mlflow; mlflow.search_runs(experiment_names=['lab/ci-ingest'])"
    refused = python(search, env)
    assert refused.returncode != 0 and "'ingest' scope" in refused.stderr


@pytest.mark.subprocess
def test_the_sdk_logs_and_resumes_a_run_with_an_ingest_token(server, tmp_path):
    raw = server_token(server, "ingest")
    env = {**server_env(server.home), "LABBOOK_URL": server.url, "LABBOOK_TOKEN": raw}
    env.update(LABBOOK_SPOOL_DIR=str(tmp_path / "spool"), LABBOOK_FLUSH_SECONDS="0.2")
    source = """
from tracking import sdk
run = sdk.init(project="lab/ci-sdk", config={"lr": 0.1})
for step in range(5):
    run.log({"loss": 1 / (step + 1)})
run.alert("slow epoch")
run.summary["best"] = 0.2
run.finish()
again = sdk.init(project="lab/ci-sdk", resume=run.id)
again.log({"loss": 0.1})
again.finish()
print(run.id)
try:
    sdk.Api().runs("lab/ci-sdk")
except Exception as error:
    print(error)
"""
    done = python(source, env)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id, refusal = done.stdout.strip().splitlines()[-2:]
    assert server.history(int(run_id), "loss")[0] == [0, 1, 2, 3, 4, 5]
    assert server.run(int(run_id))["summary"]["best"] == 0.2
    assert refusal.startswith("403") and "'ingest' scope" in refusal
    assert not list((tmp_path / "spool").glob("*/*")), "nothing was left to spool"


@pytest.mark.subprocess
def test_the_server_answers_a_read_token_with_json_even_for_a_refused_upload(server):
    raw = server_token(server, "read")
    response = httpx.put(
        f"{server.url}{ARTIFACTS}/1/1/artifacts/x.txt",
        content=b"x",
        headers={"Authorization": f"Bearer {raw}"},
        trust_env=False,
    )
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
