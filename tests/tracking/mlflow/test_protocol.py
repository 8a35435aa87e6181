"""MLflow's tracking REST protocol, request by request, in process (``tracking.mlflow``).

Requests are shaped as the mlflow client's ``rest_store`` sends them: POST with
a JSON body, GET with a query string, ``Authorization: Bearer <token>``. The
real client against a live server is ``test_client.py``; this file pins the
rules one call at a time: who may do what, the wire conventions, the
experiment naming rule, run and metric semantics and MLflow's limits.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tracking import services
from tracking.mlflow.convert import from_millis
from tracking.models import MetricPoint, Project, Role, Run, RunStatus

API = "/api/2.0/mlflow"
AJAX = "/ajax-api/2.0/mlflow"
T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC


@dataclass
class Caller:
    """One persona speaking MLflow's protocol through Django's test client."""

    client: Client
    headers: dict[str, str]

    def post(self, path: str, body: Any = None, *, content_type: str = "application/json"):
        return self.client.post(
            f"{API}/{path}", {} if body is None else body, content_type=content_type, **self.headers
        )

    def get(self, path: str, params: dict[str, Any] | None = None):
        return self.client.get(f"{API}/{path}", params or {}, **self.headers)


def bearer(user) -> dict[str, str]:
    _, raw = services.token_create(user=user, name="mlflow")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def speak(world, client):
    def caller(persona: str) -> Caller:
        return Caller(client, bearer(world.persona(persona).user))

    return caller


@pytest.fixture
def owner(speak) -> Caller:
    return speak("owner")


@pytest.fixture
def viewer(speak) -> Caller:
    return speak("viewer")


@pytest.fixture
def outsider(speak) -> Caller:
    return speak("outsider")


def ok(response) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    return response.json()


def error(response, status: int, code: str) -> str:
    """The message of an MLflow error answer, after checking its status and code."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error_code"] == code, body
    return body["message"]


def create_run(caller: Caller, experiment_id: Any, **body: Any) -> str:
    answer = ok(caller.post("runs/create", {"experiment_id": str(experiment_id), **body}))
    return answer["run"]["info"]["run_id"]


def log_batch(caller: Caller, run_id: str, **body: Any):
    return caller.post("runs/log-batch", {"run_id": run_id, **body})


def metric(key: str, value: Any, *, step: int = 0, timestamp: int = T0_MS) -> dict[str, Any]:
    return {"key": key, "value": value, "timestamp": timestamp, "step": step}


def pairs(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in mapping.items()]


def as_dict(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: item["value"] for item in items}


def get_run(caller: Caller, run_id: str) -> dict[str, Any]:
    return ok(caller.get("runs/get", {"run_id": run_id}))["run"]


def history(caller: Caller, run_id: str, key: str, **params: Any) -> dict[str, Any]:
    return ok(caller.get("metrics/get-history", {"run_id": run_id, "metric_key": key, **params}))


def steps(caller: Caller, run_id: str, key: str) -> list[tuple[int, Any]]:
    return [(m["step"], m["value"]) for m in history(caller, run_id, key)["metrics"]]


def search_runs(caller: Caller, experiment_ids: list, **body: Any) -> list[str]:
    body = {"experiment_ids": [str(e) for e in experiment_ids], **body}
    return [run["info"]["run_id"] for run in ok(caller.post("runs/search", body)).get("runs", [])]


def search_experiments(caller: Caller, **body: Any) -> list[str]:
    return [e["name"] for e in ok(caller.post("experiments/search", body)).get("experiments", [])]


def stored(run_id: str) -> tuple:
    """Everything a write could change on a run, to prove a refused one changed nothing."""
    run = Run.objects.get(pk=run_id)
    points = MetricPoint.objects.filter(series__run=run).order_by("series__key", "step")
    return (
        run.name,
        run.notes,
        run.status,
        run.config,
        run.metadata,
        run.git,
        run.ended_at,
        run.deleted_at,
        sorted(tag.name for tag in run.tag_rows.all()),
        list(points.values_list("series__key", "step", "value", "timestamp")),
    )


@pytest.fixture
def run_id(world, owner) -> str:
    """A run of acme/mnist with a param, a tag and a metric, logged the MLflow way."""
    run_id = create_run(owner, world.project.pk, run_name="base", start_time=T0_MS)
    answer = log_batch(
        owner,
        run_id,
        metrics=[metric("loss", 0.5)],
        params=pairs({"lr": "0.1"}),
        tags=pairs({"team": "vision"}),
    )
    assert ok(answer) == {}
    return run_id


@pytest.fixture
def rival_run(world) -> Run:
    project = services.project_create(user=world.outsider.user, team_slug="rival", slug="secret")
    return services.run_create(user=world.outsider.user, project=project, name="theirs")


# --- Auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "runs/get?run_id=1"), ("post", "runs/log-batch"), ("post", "experiments/search")],
)
def test_without_a_token_the_answer_is_401_unauthenticated(world, client, method, path):
    response = getattr(client, method)(f"{API}/{path}", content_type="application/json")
    assert "MLFLOW_TRACKING_TOKEN" in error(response, 401, "UNAUTHENTICATED")


def test_a_revoked_token_is_refused(world, client, run_id):
    token, raw = services.token_create(user=world.owner.user, name="old laptop")
    caller = Caller(client, {"HTTP_AUTHORIZATION": f"Bearer {raw}"})
    assert get_run(caller, run_id)["info"]["run_id"] == run_id
    services.token_revoke(token=token)
    error(caller.get("runs/get", {"run_id": run_id}), 401, "UNAUTHENTICATED")


def test_http_basic_with_the_token_as_password_is_accepted(world, client, run_id):
    _, raw = services.token_create(user=world.owner.user, name="basic")

    def basic(password: str) -> Caller:
        encoded = base64.b64encode(f"anyone:{password}".encode()).decode()
        return Caller(client, {"HTTP_AUTHORIZATION": f"Basic {encoded}"})

    assert get_run(basic(raw), run_id)["info"]["run_name"] == "base"
    error(basic(raw + "x").get("runs/get", {"run_id": run_id}), 401, "UNAUTHENTICATED")


def refusal(client, authorization: str | None) -> tuple[str, str]:
    """What the REST API and the MLflow API answer the same ``Authorization``: their messages."""
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    rest = client.get("/api/v1/projects", **headers)
    assert rest.status_code == 401, rest.content
    mlflow = client.get(f"{API}/experiments/search", {"max_results": 10}, **headers)
    return rest.json()["error"]["message"], error(mlflow, 401, "UNAUTHENTICATED")


def basic_auth(password: str) -> str:
    return "Basic " + base64.b64encode(f"anyone:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    ["Bearer lb_made-up", "Bearer not-a-labbook-token", basic_auth("lb_made-up")],
    ids=["made-up", "foreign", "basic"],
)
def test_a_wrong_token_is_told_it_is_not_valid_not_to_send_one(world, client, authorization):
    rest, mlflow = refusal(client, authorization)
    assert mlflow.startswith("The token is not valid or was revoked.")
    if authorization.startswith("Bearer"):  # the REST API takes no HTTP Basic
        assert mlflow.startswith(rest)
    setting = "PASSWORD" if authorization.startswith("Basic") else "TOKEN"
    assert f"Check MLFLOW_TRACKING_{setting}" in mlflow
    assert "Send a Labbook API token" not in mlflow


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "runs/get"),
        ("GET", "metrics/get-history"),
        ("POST", "experiments/create"),
        ("POST", "runs/create"),
        ("POST", "runs/log-batch"),
        ("POST", "runs/search"),
        ("POST", "runs/set-tag"),
    ],
)
def test_every_endpoint_tells_a_wrong_token_it_is_not_valid(world, client, method, path):
    """Before the arguments are read: a bad body gets the 401 too, never a 400 about it."""
    headers = {"HTTP_AUTHORIZATION": "Bearer lb_made-up"}
    rest = client.get("/api/v1/projects", **headers).json()["error"]["message"]
    if method == "GET":
        answer = client.get(f"{API}/{path}", {"run_id": 1}, **headers)
    else:
        answer = client.post(
            f"{API}/{path}", {"run_id": 31}, content_type="application/json", **headers
        )
    message = error(answer, 401, "UNAUTHENTICATED")
    assert message.startswith(rest) and rest == "The token is not valid or was revoked."


def test_a_revoked_token_and_a_deactivated_users_token_are_told_they_are_not_valid(world, client):
    revoked, raw_revoked = services.token_create(user=world.owner.user, name="old laptop")
    services.token_revoke(token=revoked)
    _, raw_inactive = services.token_create(user=world.editor.user, name="left")
    world.editor.user.is_active = False
    world.editor.user.save(update_fields=["is_active"])
    for raw in (raw_revoked, raw_inactive):
        rest, mlflow = refusal(client, f"Bearer {raw}")
        assert mlflow.startswith(rest) and "not valid or was revoked" in mlflow


def test_an_expired_token_is_told_when_it_expired_as_the_rest_api_tells_it(world, client):
    token, raw = services.token_create(
        user=world.owner.user, name="ci", expires_at=timezone.now() + timedelta(hours=1)
    )
    type(token).objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    rest, mlflow = refusal(client, f"Bearer {raw}")
    assert mlflow == rest
    assert "expired on" in mlflow and raw[:10] in mlflow


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer   ", "Basic !!not-base64!!", basic_auth(""), "Token lb_abc"],
    ids=["empty-bearer", "blank-bearer", "bad-basic", "no-password", "other-scheme"],
)
def test_a_header_without_a_token_says_how_to_send_one(world, client, authorization):
    _, mlflow = refusal(client, authorization)
    assert mlflow.startswith("The Authorization header carries no token")
    assert "MLFLOW_TRACKING_TOKEN" in mlflow and "MLFLOW_TRACKING_PASSWORD" in mlflow


def test_no_header_at_all_is_told_to_send_a_token(world, client):
    rest, mlflow = refusal(client, None)
    assert mlflow == "Send a Labbook API token: MLFLOW_TRACKING_TOKEN=<token>."
    assert "not valid" not in mlflow and "not valid" not in rest


# --- Team membership ----------------------------------------------------------------------


def test_an_outsider_gets_404_for_another_teams_run_and_experiment(world, owner, outsider, run_id):
    before = stored(run_id)
    project = world.project.pk
    requests = [
        outsider.get("runs/get", {"run_id": run_id}),
        outsider.get("metrics/get-history", {"run_id": run_id, "metric_key": "loss"}),
        log_batch(outsider, run_id, metrics=[metric("loss", 9.0, step=5)]),
        outsider.post("runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"}),
        outsider.post("runs/update", {"run_id": run_id, "status": "KILLED"}),
        outsider.post("runs/delete", {"run_id": run_id}),
        outsider.post("runs/search", {"experiment_ids": [str(project)]}),
        outsider.get("experiments/get", {"experiment_id": project}),
        outsider.post("experiments/delete", {"experiment_id": str(project)}),
        outsider.post("runs/create", {"experiment_id": str(project)}),
    ]
    for response in requests:
        error(response, 404, "RESOURCE_DOES_NOT_EXIST")
    assert stored(run_id) == before
    assert Run.objects.filter(project=world.project).count() == 1


def test_a_member_of_one_team_finds_nothing_of_another(world, owner, rival_run):
    project = str(rival_run.project_id)
    requests = [
        owner.get("runs/get", {"run_id": str(rival_run.pk)}),
        owner.get("experiments/get", {"experiment_id": project}),
        owner.get("experiments/get-by-name", {"experiment_name": "rival/secret"}),
        owner.post("runs/search", {"experiment_ids": [str(world.project.pk), project]}),
    ]
    for response in requests:
        error(response, 404, "RESOURCE_DOES_NOT_EXIST")
    assert search_experiments(owner, view_type="ALL") == ["acme/mnist"]


def test_a_viewer_reads_runs_history_and_search(world, viewer, run_id):
    assert get_run(viewer, run_id)["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    assert steps(viewer, run_id, "loss") == [(0, 0.5)]
    assert search_runs(viewer, [world.project.pk]) == [run_id]


VIEWER_WRITES = [
    ("runs/create", lambda world, run_id: {"experiment_id": str(world.project.pk)}),
    (
        "runs/log-batch",
        lambda world, run_id: {
            "run_id": run_id,
            "metrics": [metric("loss", 0.1, step=3)],
            "params": pairs({"seed": "1"}),
            "tags": pairs({"x": "y"}),
        },
    ),
    ("runs/log-metric", lambda world, run_id: {"run_id": run_id, **metric("acc", 1.0)}),
    ("runs/log-parameter", lambda world, run_id: {"run_id": run_id, "key": "a", "value": "b"}),
    ("runs/set-tag", lambda world, run_id: {"run_id": run_id, "key": "team", "value": "audio"}),
    ("runs/delete-tag", lambda world, run_id: {"run_id": run_id, "key": "team"}),
    ("runs/update", lambda world, run_id: {"run_id": run_id, "status": "KILLED"}),
    ("runs/delete", lambda world, run_id: {"run_id": run_id}),
    ("experiments/delete", lambda world, run_id: {"experiment_id": str(world.project.pk)}),
    (
        "experiments/set-experiment-tag",
        lambda world, run_id: {"experiment_id": str(world.project.pk), "key": "k", "value": "v"},
    ),
]


@pytest.mark.parametrize(("path", "body"), VIEWER_WRITES, ids=[w[0] for w in VIEWER_WRITES])
def test_every_write_by_a_viewer_is_403_and_writes_nothing(world, viewer, run_id, path, body):
    before = stored(run_id)
    error(viewer.post(path, body(world, run_id)), 403, "PERMISSION_DENIED")
    assert stored(run_id) == before
    assert Run.objects.count() == 1
    world.project.refresh_from_db()
    assert (world.project.deleted_at, world.project.metadata) == (None, {})


# --- Wire rules ---------------------------------------------------------------------------


def test_a_post_that_is_not_json_is_400_naming_the_content_type(owner, run_id):
    answer = owner.post("runs/set-tag", "run_id=1&key=k", content_type="text/plain")
    assert "text/plain" in error(answer, 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"a string"'])
def test_a_body_that_is_no_json_object_is_400(owner, run_id, body):
    error(owner.post("runs/set-tag", body), 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize("path", ["runs/get", "experiments/get", "metrics/get-history"])
def test_a_get_only_endpoint_called_with_post_is_405(owner, path):
    error(owner.post(path, {}), 405, "ENDPOINT_NOT_FOUND")


@pytest.mark.parametrize("prefix", [API, AJAX])
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_unknown_path_answers_json_404_under_both_prefixes(world, client, prefix, method):
    response = getattr(client, method)(f"{prefix}/runs/nope", content_type="application/json")
    error(response, 404, "ENDPOINT_NOT_FOUND")


@pytest.mark.parametrize("path", ["logged-models", "traces", "experiments/delete-tag"])
def test_a_post_to_a_path_we_lack_is_json_404_even_with_csrf_checks(world, path):
    """As a real client meets it: Django's test client skips CSRF unless told not to."""
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(f"{API}/{path}", {}, content_type="application/json")
    error(response, 404, "ENDPOINT_NOT_FOUND")


def test_the_ajax_prefix_serves_the_same_endpoints(world, client, run_id):
    headers = bearer(world.owner.user)
    response = client.get(f"{AJAX}/runs/get", {"run_id": run_id}, **headers)
    assert ok(response)["run"]["info"]["run_id"] == run_id


def test_run_uuid_is_accepted_instead_of_run_id(owner, run_id):
    assert ok(owner.get("runs/get", {"run_uuid": run_id}))["run"]["info"]["run_uuid"] == run_id
    body = {"run_uuid": run_id, "metrics": [metric("loss", 0.25, step=1)]}
    assert ok(owner.post("runs/log-batch", body)) == {}
    answer = owner.get("metrics/get-history", {"run_uuid": run_id, "metric_key": "loss"})
    assert [m["value"] for m in ok(answer)["metrics"]] == [0.5, 0.25]
    assert ok(owner.post("runs/set-tag", {"run_uuid": run_id, "key": "k", "value": "v"})) == {}
    answer = owner.post("runs/update", {"run_uuid": run_id, "status": "FINISHED"})
    assert ok(answer)["run_info"]["status"] == "FINISHED"


# --- Experiments --------------------------------------------------------------------------


def get_experiment(caller: Caller, experiment_id: Any) -> dict[str, Any]:
    return ok(caller.get("experiments/get", {"experiment_id": experiment_id}))["experiment"]


def create_experiment(caller: Caller, name: str, **body: Any) -> str:
    return ok(caller.post("experiments/create", {"name": name, **body}))["experiment_id"]


def test_a_bare_name_is_a_project_of_the_users_first_team(world, speak):
    services.membership_set(team=world.rival, user=world.editor.user, role=Role.EDITOR)
    editor = speak("editor")
    experiment_id = create_experiment(editor, "My Exp")
    assert get_experiment(editor, experiment_id)["name"] == "acme/my-exp"
    project = Project.objects.get(pk=experiment_id)
    assert (project.team.slug, project.slug) == ("acme", "my-exp")
    answer = editor.get("experiments/get-by-name", {"experiment_name": "My Exp"})
    assert ok(answer)["experiment"]["experiment_id"] == experiment_id


def test_a_team_slash_project_name_is_that_project(world, owner):
    for name in ("acme/mnist", "mnist"):
        answer = ok(owner.get("experiments/get-by-name", {"experiment_name": name}))
        assert answer["experiment"]["experiment_id"] == str(world.project.pk)
        assert answer["experiment"]["name"] == "acme/mnist"
    experiment_id = create_experiment(owner, "acme/cifar")
    assert Project.objects.get(pk=experiment_id).full_name == "acme/cifar"


def test_experiment_0_is_the_first_teams_default_project_created_on_use(world, owner):
    assert not Project.objects.filter(slug="default").exists()
    run_id = create_run(owner, "0")
    run = Run.objects.select_related("project__team").get(pk=run_id)
    assert run.project.full_name == "acme/default"
    experiment = get_experiment(owner, "0")
    assert experiment["name"] == "acme/default"
    assert experiment["experiment_id"] == str(run.project_id)
    assert Project.objects.filter(slug="default").count() == 1


def test_get_by_name_of_an_unknown_experiment_is_404(world, owner):
    answer = owner.get("experiments/get-by-name", {"experiment_name": "nothing-here"})
    error(answer, 404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.parametrize(
    ("tags", "says"),
    [
        ("5", "parameter 'tags'"),
        ([1], "parameter 'tags[0]'"),
        ([{"key": "a", "value": "b"}, {"value": "no key"}], "'tags[1].key'"),
        ([{"key": "a", "value": 41}], "'tags[0].value'"),
    ],
)
def test_bad_experiment_tags_are_400_and_nothing_is_created(world, owner, tags, says):
    answer = owner.post("experiments/create", {"name": "tagged", "tags": tags})
    assert says in error(answer, 400, "INVALID_PARAMETER_VALUE")
    assert not Project.objects.filter(slug="tagged").exists()


def test_experiment_tags_are_stored_with_the_experiment(world, owner):
    tags = [{"key": "team", "value": "vision"}, {"key": "empty"}]
    experiment = create_experiment(owner, "tagged", tags=tags)
    got = ok(owner.get("experiments/get", {"experiment_id": experiment}))["experiment"]["tags"]
    assert as_dict(got) == {"team": "vision", "empty": ""}


def test_creating_an_experiment_twice_is_400_already_exists(world, owner):
    create_experiment(owner, "twice")
    answer = owner.post("experiments/create", {"name": "twice"})
    assert "acme/twice" in error(answer, 400, "RESOURCE_ALREADY_EXISTS")
    error(owner.post("experiments/create", {"name": "acme/mnist"}), 400, "RESOURCE_ALREADY_EXISTS")


def test_experiment_tags_are_kept_and_the_note_is_the_description(world, owner):
    experiment_id = str(world.project.pk)
    for key, value in [("mlflow.note.content", "Digits."), ("owner", "vision"), ("owner", "ml")]:
        body = {"experiment_id": experiment_id, "key": key, "value": value}
        assert ok(owner.post("experiments/set-experiment-tag", body)) == {}
    world.project.refresh_from_db()
    assert world.project.description == "Digits."
    assert world.project.metadata["mlflow_tags"] == {"owner": "ml"}
    tags = as_dict(get_experiment(owner, experiment_id)["tags"])
    assert tags == {"owner": "ml", "mlflow.note.content": "Digits."}


def test_experiments_create_keeps_its_tags(world, owner):
    tags = pairs({"mlflow.note.content": "About.", "k": "v"})
    experiment_id = create_experiment(owner, "tagged", tags=tags)
    assert as_dict(get_experiment(owner, experiment_id)["tags"]) == as_dict(tags)


def test_an_experiment_is_renamed(world, owner):
    body = {"experiment_id": str(world.project.pk), "new_name": "digits"}
    assert ok(owner.post("experiments/update", body)) == {}
    assert get_experiment(owner, world.project.pk)["name"] == "acme/digits"
    answer = owner.get("experiments/get-by-name", {"experiment_name": "acme/mnist"})
    error(answer, 404, "RESOURCE_DOES_NOT_EXIST")


def test_a_deleted_experiment_is_hidden_until_restored(world, owner):
    other = create_experiment(owner, "other")
    body = {"experiment_id": str(world.project.pk)}
    assert ok(owner.post("experiments/delete", body)) == {}
    assert get_experiment(owner, world.project.pk)["lifecycle_stage"] == "deleted"
    assert search_experiments(owner) == ["acme/other"]
    assert search_experiments(owner, view_type="ACTIVE_ONLY") == ["acme/other"]
    assert search_experiments(owner, view_type="DELETED_ONLY") == ["acme/mnist"]
    assert set(search_experiments(owner, view_type="ALL")) == {"acme/mnist", "acme/other"}
    projects = world.owner.client().get("/api/v1/projects").json()
    assert [p["full_name"] for p in projects] == ["acme/other"]
    assert get_experiment(owner, other)["lifecycle_stage"] == "active"

    assert ok(owner.post("experiments/restore", body)) == {}
    assert get_experiment(owner, world.project.pk)["lifecycle_stage"] == "active"
    assert set(search_experiments(owner)) == {"acme/mnist", "acme/other"}
    projects = world.owner.client().get("/api/v1/projects").json()
    assert {p["full_name"] for p in projects} == {"acme/mnist", "acme/other"}


def test_experiments_search_pages_with_max_results_and_page_token(world, owner):
    for name in ("e1", "e2", "e3", "e4"):
        create_experiment(owner, name)
    seen: list[str] = []
    pages = 0
    body: dict[str, Any] = {"max_results": 2}
    while True:
        answer = ok(owner.post("experiments/search", body))
        seen += [e["name"] for e in answer["experiments"]]
        pages += 1
        if "next_page_token" not in answer:
            break
        body["page_token"] = answer["next_page_token"]
    assert pages == 3
    assert sorted(seen) == ["acme/e1", "acme/e2", "acme/e3", "acme/e4", "acme/mnist"]


def _token(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize(
    "page_token", ["garbage!", "bm90IGpzb24=", _token([1]), _token({"offset": -1}), _token({})]
)
def test_a_bad_page_token_is_400(world, owner, page_token):
    for path in ("experiments/search", "runs/search"):
        body = {"experiment_ids": [str(world.project.pk)], "page_token": page_token}
        error(owner.post(path, body), 400, "INVALID_PARAMETER_VALUE")


# --- Runs ---------------------------------------------------------------------------------

CREATE_TAGS = {
    "mlflow.runName": "resnet",
    "mlflow.note.content": "First try.",
    "mlflow.source.git.commit": "abc123",
    "mlflow.user": "alice",
    "team": "vision",
    "nightly": "true",
}


def test_runs_create_maps_start_time_and_tags_onto_the_labbook_run(world, owner):
    run_id = create_run(owner, world.project.pk, start_time=T0_MS, tags=pairs(CREATE_TAGS))
    run = Run.objects.get(pk=run_id)
    assert (run.name, run.notes, run.git) == ("resnet", "First try.", {"commit": "abc123"})
    assert run.created_at == from_millis(T0_MS)
    assert run.status == RunStatus.RUNNING
    assert sorted(services.run_tags(run)) == ["nightly", "team:vision"]
    assert run.metadata["mlflow_tags"] == CREATE_TAGS


def test_runs_get_answers_mlflows_shape(world, owner):
    run_id = create_run(
        owner, world.project.pk, start_time=T0_MS, tags=pairs(CREATE_TAGS), user_id="alice"
    )
    metrics = [
        metric("loss", 1.0, step=0, timestamp=T0_MS + 1),
        metric("loss", 0.5, step=1, timestamp=T0_MS + 2),
        metric("acc", "NaN", step=0, timestamp=T0_MS + 3),
    ]
    assert ok(log_batch(owner, run_id, metrics=metrics, params=pairs({"lr": "0.1"}))) == {}
    run = get_run(owner, run_id)
    assert run["info"] == {
        "run_id": run_id,
        "run_uuid": run_id,
        "run_name": "resnet",
        "experiment_id": str(world.project.pk),
        "user_id": "alice",
        "status": "RUNNING",
        "start_time": T0_MS,
        "artifact_uri": f"mlflow-artifacts:/{world.project.pk}/{run_id}/artifacts",
        "lifecycle_stage": "active",
    }
    latest = {m["key"]: (m["value"], m["step"], m["timestamp"]) for m in run["data"]["metrics"]}
    assert latest == {"loss": (0.5, 1, T0_MS + 2), "acc": ("NaN", 0, T0_MS + 3)}
    assert run["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    assert as_dict(run["data"]["tags"]) == CREATE_TAGS
    assert (run["inputs"], run["outputs"]) == ({}, {})


@pytest.mark.parametrize(
    ("status", "labbook"), [("FAILED", RunStatus.FAILED), ("KILLED", RunStatus.KILLED)]
)
def test_runs_update_ends_the_run_at_end_time(owner, run_id, status, labbook):
    end = T0_MS + 60_000
    answer = ok(owner.post("runs/update", {"run_id": run_id, "status": status, "end_time": end}))
    assert (answer["run_info"]["status"], answer["run_info"]["end_time"]) == (status, end)
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.ended_at) == (labbook, from_millis(end))
    info = get_run(owner, run_id)["info"]
    assert (info["status"], info["start_time"], info["end_time"]) == (status, T0_MS, end)


def test_runs_update_renames_the_run(owner, run_id):
    answer = ok(owner.post("runs/update", {"run_id": run_id, "run_name": "renamed"}))
    assert answer["run_info"]["run_name"] == "renamed"
    assert as_dict(get_run(owner, run_id)["data"]["tags"])["mlflow.runName"] == "renamed"
    assert Run.objects.get(pk=run_id).name == "renamed"


def test_a_crashed_labbook_run_reads_failed(world, owner):
    run = services.run_create(user=world.owner.user, project=world.project, name="sdk")
    assert services.run_mark_crashed(run=run, silent_since=timezone.now() + timedelta(seconds=1))
    info = get_run(owner, str(run.pk))["info"]
    assert info["status"] == "FAILED"
    assert "end_time" in info


def labbook_run_ids(world) -> list[str]:
    answer = world.owner.client().get("/api/v1/runs", {"project": "acme/mnist"})
    assert answer.status_code == 200, answer.content
    return [str(run["id"]) for run in answer.json()["results"]]


def test_a_deleted_run_is_hidden_readable_by_id_refuses_writes_and_restores(world, owner, run_id):
    assert labbook_run_ids(world) == [run_id]
    assert ok(owner.post("runs/delete", {"run_id": run_id})) == {}
    assert get_run(owner, run_id)["info"]["lifecycle_stage"] == "deleted"
    assert labbook_run_ids(world) == []
    before = stored(run_id)
    writes = [
        log_batch(owner, run_id, metrics=[metric("loss", 0.1, step=7)]),
        owner.post("runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"}),
        owner.post("runs/update", {"run_id": run_id, "status": "FINISHED"}),
    ]
    for response in writes:
        assert "deleted" in error(response, 400, "INVALID_PARAMETER_VALUE")
    assert stored(run_id) == before

    assert ok(owner.post("runs/restore", {"run_id": run_id})) == {}
    assert get_run(owner, run_id)["info"]["lifecycle_stage"] == "active"
    assert labbook_run_ids(world) == [run_id]
    assert ok(owner.post("runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"})) == {}


# --- Log-batch ----------------------------------------------------------------------------


def limit_message(limit: int, what: str, got: int) -> str:
    return (
        f"A batch logging request can contain at most {limit} {what}. Got {got} {what}. Please"
        f" split up {what} across multiple requests and try again."
    )


@pytest.mark.parametrize(
    ("metrics", "params", "tags", "message"),
    [
        (1001, 0, 0, limit_message(1000, "metrics", 1001)),
        (0, 101, 0, limit_message(100, "params", 101)),
        (0, 0, 101, limit_message(100, "tags", 101)),
        (901, 50, 50, limit_message(1000, "metrics, params, and tags", 1001)),
    ],
)
def test_log_batch_refuses_more_than_mlflows_limits(owner, run_id, metrics, params, tags, message):
    before = stored(run_id)
    answer = log_batch(
        owner,
        run_id,
        metrics=[metric("m", 1.0, step=i + 1) for i in range(metrics)],
        params=pairs({f"p{i}": "1" for i in range(params)}),
        tags=pairs({f"t{i}": "1" for i in range(tags)}),
    )
    assert error(answer, 400, "INVALID_PARAMETER_VALUE") == message
    assert stored(run_id) == before


def test_log_batch_takes_mlflows_limits_exactly(owner, run_id):
    answer = log_batch(
        owner,
        run_id,
        metrics=[metric("m", 1.0, step=i) for i in range(800)],
        params=pairs({f"p{i}": "1" for i in range(100)}),
        tags=pairs({f"t{i}": "1" for i in range(100)}),
    )
    assert ok(answer) == {}
    assert len(history(owner, run_id, "m")["metrics"]) == 800


BAD_KEYS = ["/lead", "a/../b", "a//b", "..", "bad$char", "x" * 251, ""]
BAD_KEY_IDS = ["lead", "dotdot-segment", "double-slash", "dotdot", "dollar", "251-chars", "empty"]
KINDS = {
    "metric": lambda key: {"metrics": [metric(key, 1.0)]},
    "param": lambda key: {"params": pairs({key: "1"})},
    "tag": lambda key: {"tags": pairs({key: "1"})},
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("key", BAD_KEYS, ids=BAD_KEY_IDS)
def test_log_batch_refuses_bad_key_names(owner, run_id, kind, key):
    before = stored(run_id)
    error(log_batch(owner, run_id, **KINDS[kind](key)), 400, "INVALID_PARAMETER_VALUE")
    assert stored(run_id) == before


@pytest.mark.parametrize("kind", list(KINDS))
def test_log_batch_takes_the_names_mlflow_takes(owner, run_id, kind):
    # MLflow only refuses names that normalize to another path: "a..b" is fine there too.
    for key in ("a..b", "train/loss", "x" * 250, "val loss:top-1_acc.5"):
        assert ok(log_batch(owner, run_id, **KINDS[kind](key))) == {}


@pytest.mark.parametrize("value", ["abc", None, {"v": 1}, [1.0], ""])  # MLflow takes True as 1.0
def test_a_non_numeric_metric_value_is_400(owner, run_id, value):
    before = stored(run_id)
    error(log_batch(owner, run_id, metrics=[metric("acc", value)]), 400, "INVALID_PARAMETER_VALUE")
    assert stored(run_id) == before


def test_nan_and_infinities_are_accepted_and_read_back_as_strings(owner, run_id):
    values = ["NaN", "Infinity", "-Infinity", 0.5]
    metrics = [metric("odd", value, step=i) for i, value in enumerate(values)]
    assert ok(log_batch(owner, run_id, metrics=metrics)) == {}
    assert steps(owner, run_id, "odd") == list(enumerate(values))
    assert ok(owner.post("runs/log-metric", {"run_id": run_id, **metric("inf", "Infinity")})) == {}
    latest = {m["key"]: m["value"] for m in get_run(owner, run_id)["data"]["metrics"]}
    assert (latest["odd"], latest["inf"]) == (0.5, "Infinity")


def test_a_batch_with_one_bad_metric_writes_nothing(owner, run_id):
    before = stored(run_id)
    answer = log_batch(
        owner,
        run_id,
        metrics=[metric("loss", 0.4, step=1), metric("acc", "high", step=1)],
        params=pairs({"seed": "7"}),
        tags=pairs({"team": "audio", "mlflow.note.content": "changed"}),
    )
    assert "metrics[1].value" in error(answer, 400, "INVALID_PARAMETER_VALUE")
    assert stored(run_id) == before
    run = get_run(owner, run_id)
    assert as_dict(run["data"]["params"]) == {"lr": "0.1"}
    assert as_dict(run["data"]["tags"])["team"] == "vision"


def test_params_are_immutable(owner, run_id):
    same = {"run_id": run_id, "key": "lr", "value": "0.1"}
    assert ok(owner.post("runs/log-parameter", same)) == {}
    assert ok(log_batch(owner, run_id, params=pairs({"lr": "0.1", "seed": "1"}))) == {}
    before = stored(run_id)
    answer = log_batch(owner, run_id, params=pairs({"lr": "0.2"}), tags=pairs({"t": "1"}))
    assert "Changing param values is not allowed" in error(answer, 400, "INVALID_PARAMETER_VALUE")
    answer = owner.post("runs/log-parameter", {**same, "value": "0.3"})
    assert "Changing param values is not allowed" in error(answer, 400, "INVALID_PARAMETER_VALUE")
    assert stored(run_id) == before
    assert as_dict(get_run(owner, run_id)["data"]["params"]) == {"lr": "0.1", "seed": "1"}


def test_a_param_key_twice_in_one_batch_is_400(owner, run_id):
    before = stored(run_id)
    params = [{"key": "opt", "value": "adam"}, {"key": "opt", "value": "adam"}]
    message = error(log_batch(owner, run_id, params=params), 400, "INVALID_PARAMETER_VALUE")
    assert "Duplicate parameter keys" in message
    assert stored(run_id) == before


def test_tags_are_overwritten(owner, run_id):
    body = {"run_id": run_id, "key": "team", "value": "audio"}
    assert ok(owner.post("runs/set-tag", body)) == {}
    assert as_dict(get_run(owner, run_id)["data"]["tags"])["team"] == "audio"
    assert services.run_tags(Run.objects.get(pk=run_id)) == ["team:audio"]


def test_delete_tag_removes_it_and_an_unknown_tag_is_404(owner, run_id):
    assert ok(owner.post("runs/delete-tag", {"run_id": run_id, "key": "team"})) == {}
    assert "team" not in as_dict(get_run(owner, run_id)["data"]["tags"])
    assert services.run_tags(Run.objects.get(pk=run_id)) == []
    answer = owner.post("runs/delete-tag", {"run_id": run_id, "key": "team"})
    error(answer, 404, "RESOURCE_DOES_NOT_EXIST")


def test_mlflow_tags_leave_the_labbook_tags_people_and_the_sdk_added(world, owner, run_id):
    sdk = services.run_create(user=world.owner.user, project=world.project, tags=["sdk", "keep"])
    assert ok(owner.post("runs/set-tag", {"run_id": str(sdk.pk), "key": "k", "value": "v"})) == {}
    assert services.run_tags(sdk) == ["k:v", "keep", "sdk"]
    run = Run.objects.get(pk=run_id)
    services.runs_tag(runs=[run], add=["reviewed"])  # from the run page
    body = {"run_id": run_id, "tags": pairs({"team": "audio", "nightly": "true"})}
    assert ok(owner.post("runs/log-batch", body)) == {}
    assert services.run_tags(run) == ["nightly", "reviewed", "team:audio"]
    assert ok(owner.post("runs/delete-tag", {"run_id": run_id, "key": "nightly"})) == {}
    assert services.run_tags(run) == ["reviewed", "team:audio"]


def test_deleting_the_note_tag_clears_the_runs_notes(owner, run_id):
    body = {"run_id": run_id, "key": "mlflow.note.content", "value": "Looks good."}
    assert ok(owner.post("runs/set-tag", body)) == {}
    assert Run.objects.get(pk=run_id).notes == "Looks good."
    assert ok(owner.post("runs/delete-tag", {"run_id": run_id, "key": body["key"]})) == {}
    assert Run.objects.get(pk=run_id).notes == ""
    assert "mlflow.note.content" not in as_dict(get_run(owner, run_id)["data"]["tags"])


# --- Metrics ------------------------------------------------------------------------------


def log_metric(caller: Caller, run_id: str, key: str, value: Any, timestamp: int, **step: int):
    body = {"run_id": run_id, "key": key, "value": value, "timestamp": timestamp, **step}
    assert ok(caller.post("runs/log-metric", body)) == {}


def test_points_without_a_step_stay_at_step_0_and_an_exact_retry_is_dropped(owner, run_id):
    for offset, value in enumerate([3.0, 2.0, 1.0]):
        log_metric(owner, run_id, "acc", value, T0_MS + offset)
    assert steps(owner, run_id, "acc") == [(0, 3.0), (0, 2.0), (0, 1.0)]
    log_metric(owner, run_id, "acc", 1.0, T0_MS + 2)  # the client retried the last call
    assert steps(owner, run_id, "acc") == [(0, 3.0), (0, 2.0), (0, 1.0)]
    latest = {
        m["key"]: (m["value"], m["timestamp"]) for m in get_run(owner, run_id)["data"]["metrics"]
    }
    assert latest["acc"] == (1.0, T0_MS + 2)


def test_a_late_step_0_is_kept_at_step_0_beside_the_later_steps(owner, run_id):
    for step in (1, 2, 3, 4, 5, 0, 6):
        log_metric(owner, run_id, "late", step / 10, T0_MS + step, step=step)
    assert steps(owner, run_id, "late") == [(step, step / 10) for step in range(7)]


def test_the_same_step_with_another_value_or_timestamp_is_kept(owner, run_id):
    log_metric(owner, run_id, "v", 0.5, T0_MS, step=3)
    log_metric(owner, run_id, "v", 0.7, T0_MS, step=3)
    log_metric(owner, run_id, "v", 0.5, T0_MS + 1, step=3)
    log_metric(owner, run_id, "v", 0.5, T0_MS, step=3)  # exact repeat: dropped
    answer = history(owner, run_id, "v")["metrics"]
    assert [(m["step"], m["value"], m["timestamp"]) for m in answer] == [
        (3, 0.5, T0_MS),
        (3, 0.7, T0_MS),
        (3, 0.5, T0_MS + 1),
    ]


MILLIS = [1, 1001, 1_700_000_000_001, 1_764_150_000_123, 99_999_999_998_999]


def test_millisecond_timestamps_come_back_exactly_from_every_read(world, owner, run_id):
    metrics = [metric("t", 1.0, step=i, timestamp=ms) for i, ms in enumerate(MILLIS)]
    metrics += [metric(f"k{i}", 1.0, timestamp=ms) for i, ms in enumerate(MILLIS)]
    assert ok(log_batch(owner, run_id, metrics=metrics)) == {}
    assert [m["timestamp"] for m in history(owner, run_id, "t")["metrics"]] == MILLIS
    latest = {m["key"]: m["timestamp"] for m in get_run(owner, run_id)["data"]["metrics"]}
    assert [latest[f"k{i}"] for i in range(len(MILLIS))] == MILLIS
    body = {"experiment_ids": [str(world.project.pk)]}
    (found,) = ok(owner.post("runs/search", body))["runs"]
    searched = {m["key"]: m["timestamp"] for m in found["data"]["metrics"]}
    assert [searched[f"k{i}"] for i in range(len(MILLIS))] == MILLIS


@pytest.mark.parametrize("start", [1001, 1_764_150_000_123])
def test_run_start_and_end_times_keep_their_milliseconds(world, owner, start):
    run_id = create_run(owner, world.project.pk, start_time=start)
    ended = {"run_id": run_id, "status": "FINISHED", "end_time": start + 1}
    assert ok(owner.post("runs/update", ended))["run_info"]["end_time"] == start + 1
    info = get_run(owner, run_id)["info"]
    assert (info["start_time"], info["end_time"]) == (start, start + 1)


def test_get_history_pages_through_a_step_holding_more_points_than_a_page(owner, run_id):
    batch = [metric("p", float(n), timestamp=T0_MS + n // 4) for n in range(23)]
    assert ok(log_batch(owner, run_id, metrics=batch)) == {}
    seen, params = [], {"max_results": 5}
    while True:
        answer = history(owner, run_id, "p", **params)
        assert len(answer["metrics"]) <= 5
        seen += [m["value"] for m in answer["metrics"]]
        if "next_page_token" not in answer:
            break
        params["page_token"] = answer["next_page_token"]
    assert seen == [float(n) for n in range(23)]
    bad = {"run_id": run_id, "metric_key": "p", "page_token": "not-a-token"}
    error(owner.get("metrics/get-history", bad), 400, "INVALID_PARAMETER_VALUE")


def test_an_exact_retry_of_an_explicit_step_batch_stores_nothing_new(owner, run_id):
    batch = [metric("val", i / 10, step=i, timestamp=T0_MS + i) for i in range(100)]
    assert ok(log_batch(owner, run_id, metrics=batch)) == {}
    before = stored(run_id)
    assert ok(log_batch(owner, run_id, metrics=batch)) == {}
    assert stored(run_id) == before
    assert steps(owner, run_id, "val") == [(i, i / 10) for i in range(100)]


def test_a_retried_batch_of_step_0_points_stores_nothing_new(owner, run_id):
    # What asynchronous logging sends: several calls without a step in one batch.
    batch = [metric("s", value, timestamp=T0_MS + i) for i, value in enumerate([5.0, 4.0, 4.0])]
    assert ok(log_batch(owner, run_id, metrics=batch)) == {}
    assert ok(log_batch(owner, run_id, metrics=batch)) == {}
    assert steps(owner, run_id, "s") == [(0, 5.0), (0, 4.0), (0, 4.0)]
    log_metric(owner, run_id, "s", 4.0, T0_MS + 3)  # a new point with a repeated value
    assert steps(owner, run_id, "s") == [(0, 5.0), (0, 4.0), (0, 4.0), (0, 4.0)]


def test_an_exact_repeat_within_one_batch_is_stored_once(owner, run_id):
    batch = [metric("twice", 1.0), metric("twice", 1.0), metric("loss", 0.5)]
    assert ok(log_batch(owner, run_id, metrics=batch)) == {}
    assert steps(owner, run_id, "twice") == [(0, 1.0)]
    assert steps(owner, run_id, "loss") == [(0, 0.5)]


def test_get_history_pages_through_every_point_once_in_order(owner, run_id):
    batch = [metric("p", float(i), step=i, timestamp=T0_MS + i) for i in range(25)]
    assert ok(log_batch(owner, run_id, metrics=batch)) == {}
    seen, pages, params = [], 0, {"max_results": 10}
    while True:
        answer = history(owner, run_id, "p", **params)
        assert len(answer["metrics"]) <= 10
        seen += answer["metrics"]
        pages += 1
        if "next_page_token" not in answer:
            break
        params["page_token"] = answer["next_page_token"]
    assert pages == 3
    expected = [
        {"key": "p", "value": float(i), "timestamp": T0_MS + i, "step": i} for i in range(25)
    ]
    assert seen == expected


@pytest.mark.parametrize("max_results", [0, -1, "many"])
def test_get_history_refuses_max_results_out_of_range(owner, run_id, max_results):
    params = {"run_id": run_id, "metric_key": "loss", "max_results": max_results}
    error(owner.get("metrics/get-history", params), 400, "INVALID_PARAMETER_VALUE")


def test_get_history_of_an_unknown_key_is_empty(owner, run_id):
    assert history(owner, run_id, "never-logged") == {}  # MLflow's empty answer


# --- Runs/search --------------------------------------------------------------------------


def test_runs_search_spans_the_experiments_asked_for(world, owner, run_id):
    other = create_experiment(owner, "other")
    elsewhere = create_run(owner, other)
    third = create_run(owner, create_experiment(owner, "third"))
    assert set(search_runs(owner, [world.project.pk, other])) == {run_id, elsewhere}
    assert search_runs(owner, [other]) == [elsewhere]
    assert third not in search_runs(owner, [world.project.pk, other])


@pytest.mark.parametrize(
    ("view_type", "expected"),
    [
        (None, {"live"}),
        ("ACTIVE_ONLY", {"live"}),
        ("DELETED_ONLY", {"gone"}),
        ("ALL", {"live", "gone"}),
    ],
)
def test_runs_search_by_run_view_type(world, owner, view_type, expected):
    ids = {name: create_run(owner, world.project.pk, run_name=name) for name in ("live", "gone")}
    assert ok(owner.post("runs/delete", {"run_id": ids["gone"]})) == {}
    body = {} if view_type is None else {"run_view_type": view_type}
    found = set(search_runs(owner, [world.project.pk], **body))
    assert found == {ids[name] for name in expected}


@pytest.mark.parametrize(
    "body",
    [
        {"filter": "metrics.loss >>> 1"},
        {"filter": "params.lr ~ '0.1'"},
        {"filter": "metrics.loss < 1 OR metrics.loss > 2"},
        {"order_by": ["metrics.loss SIDEWAYS"]},
        {"run_view_type": "SOME"},
        {"max_results": 0},
        {"max_results": 50001},
    ],
)
def test_runs_search_refuses_a_bad_request_with_400(world, owner, run_id, body):
    answer = owner.post("runs/search", {"experiment_ids": [str(world.project.pk)], **body})
    error(answer, 400, "INVALID_PARAMETER_VALUE")


def test_runs_search_filters_orders_and_pages(world, owner):
    ids = []
    for i in range(5):
        run_id = create_run(owner, world.project.pk, run_name=f"r{i}", start_time=T0_MS + i)
        assert ok(log_batch(owner, run_id, metrics=[metric("acc", i / 10)])) == {}
        ids.append(run_id)
    experiment = [world.project.pk]
    assert search_runs(owner, experiment) == ids[::-1]  # start_time DESC
    by_acc = {"filter": "metrics.acc >= 0.2", "order_by": ["metrics.acc"]}
    assert search_runs(owner, experiment, **by_acc) == ids[2:]
    body = {"experiment_ids": [str(world.project.pk)], "max_results": 2}
    first = ok(owner.post("runs/search", body))
    second = ok(owner.post("runs/search", {**body, "page_token": first["next_page_token"]}))
    assert [r["info"]["run_id"] for r in first["runs"] + second["runs"]] == ids[::-1][:4]


def test_runs_search_queries_stay_constant_as_runs_grow(
    world, owner, django_assert_max_num_queries
):
    def add_runs(count: int) -> None:
        """``count`` MLflow runs with params, tags and metrics, and one SDK run."""
        for i in range(count):
            run_id = create_run(owner, world.project.pk, tags=pairs({"team": f"t{i}"}))
            body = {"metrics": [metric("loss", 1.0), metric("acc", "NaN")]}
            assert ok(log_batch(owner, run_id, params=pairs({"lr": "0.1"}), **body)) == {}
        services.run_create(user=world.editor.user, project=world.project, tags=["sdk"])

    add_runs(2)
    search_runs(owner, [world.project.pk])  # the token's first use is recorded once
    with CaptureQueriesContext(connection) as few:
        assert len(search_runs(owner, [world.project.pk])) == 3
    measured = len(few)  # read now: the next request clears the connection's query log
    add_runs(22)
    with django_assert_max_num_queries(measured):
        assert len(search_runs(owner, [world.project.pk])) == 26


# --- What Labbook accepts and does not keep -----------------------------------------------


def test_logged_models_search_and_log_inputs_answer_empty(world, owner, run_id):
    body = {"experiment_ids": [str(world.project.pk)]}
    assert ok(owner.post("logged-models/search", body)) == {}
    body = {"run_id": run_id, "datasets": [{"dataset": {"name": "d", "digest": "x"}}]}
    assert ok(owner.post("runs/log-inputs", body)) == {}
