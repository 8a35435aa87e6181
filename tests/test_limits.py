"""A text limit is written once, on the model field: the service, the API schema and the
forms all read it (``kernel.limits``), so one character past it is refused everywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import pytest
from drf_spectacular.generators import SchemaGenerator

from alerts.models import AlertRule, Silence
from kernel.limits import max_length
from tests.conftest import World
from tracking.models import ApiToken, Project, Run, Team

RUN_TEXT = ("name", "group", "notes", "host", "command", "error", "traceback")


@pytest.fixture(scope="module")
def schemas(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]


@pytest.mark.parametrize("field", RUN_TEXT)
def test_a_run_field_takes_its_model_limit_and_refuses_one_more(world: World, field: str):
    limit = max_length(Run, field)
    client = world.owner.client()
    run = {"project": "acme/mnist", field: "x" * limit}
    assert client.post("/api/v1/runs", run, format="json").status_code == 201
    refused = client.post("/api/v1/runs", {**run, field: "x" * (limit + 1)}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == field
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    ("schema", "field", "model", "model_field"),
    [
        *[("RunCreate", name, Run, name) for name in (*RUN_TEXT, "client_id")],
        ("TeamCreate", "slug", Team, "slug"),
        ("ProjectCreate", "name", Project, "slug"),
        ("ProjectCreate", "description", Project, "description"),
        ("TokenCreate", "name", ApiToken, "name"),
        ("RuleWrite", "name", AlertRule, "name"),
        ("SilenceWrite", "reason", Silence, "reason"),
    ],
)
def test_the_api_schema_states_the_model_limit(schemas, schema, field, model, model_field):
    properties = schemas[f"{schema}Request"]["properties"]  # the request half of the schema
    assert properties[field]["maxLength"] == max_length(model, model_field)


def test_the_forms_maxlength_is_the_model_limit(client, world: World):
    client.force_login(world.owner.user)
    tokens = client.get("/settings/tokens/").content.decode()
    assert f'name="name" value="" required maxlength="{max_length(ApiToken, "name")}"' in tokens
    team = client.get("/acme/").content.decode()
    described = f'maxlength="{max_length(Project, "description")}"'
    assert described in team.split('id="new-project-description"')[1].split(">")[0]
    rule = client.get("/acme/mnist/alerts/rules/new").content.decode()
    assert f'maxlength="{max_length(AlertRule, "name")}"' in rule.split('id="rule-name"')[1]


# --- Every bound the API schema states is the bound the server enforces -------------------
#
# The request serializers are the API's declared shapes; ``request_body`` enforces their
# fields, the services their values. Here every bound the OpenAPI schema states
# (maxLength, maximum, minimum, maxItems, and the same on list items) is sent at the bound,
# which must be taken, and one past it, which must be a 400 naming the field. A new bounded
# field without a probe below fails ``test_every_bounded_request_shape_has_a_probe``.


def _api(world: World, method: str, url: str, body: dict) -> dict:
    response = getattr(world.owner.client(), method)(url, body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def _run(world: World) -> str:
    return f"/api/v1/runs/{_api(world, 'post', '/api/v1/runs', {'project': 'acme/mnist'})['id']}"


def _report(world: World) -> str:
    body = {"project": "acme/mnist", "title": "Sweep"}
    return f"/api/v1/reports/{_api(world, 'post', '/api/v1/reports', body)['id']}"


def _destination(world: World) -> str:
    body = {"team": "acme", **EMAIL}
    return f"/api/v1/destinations/{_api(world, 'post', '/api/v1/destinations', body)['id']}"


def _rule(world: World) -> str:
    body = {**RULE, "project": "acme/mnist"}
    return f"/api/v1/alert-rules/{_api(world, 'post', '/api/v1/alert-rules', body)['id']}"


def _comment(world: World) -> str:
    body = {"target": f"run:{_run(world).rsplit('/', 1)[1]}", "body": "Looks good"}
    return f"/api/v1/comments/{_api(world, 'post', '/api/v1/comments', body)['id']}"


EMAIL = {"kind": "email", "name": "oncall", "config": {"addresses": ["oncall@example.com"]}}
RULE = {"name": "failures", "trigger": "run_failed"}
SOON = "2099-01-01T00:00:00Z"


@dataclass(frozen=True)
class Probe:
    """Where a request shape is sent: ``url(world)`` (which makes what it needs), a valid
    ``body`` to put the field into, and ``into``, the list a nested shape sits in."""

    method: str
    url: Callable[[World], str]
    body: dict = field(default_factory=dict)
    into: str | None = None


PROBES = {
    "TeamCreateRequest": Probe("post", lambda w: "/api/v1/teams", {"slug": "vision"}),
    "ProjectCreateRequest": Probe(
        "post", lambda w: "/api/v1/projects", {"team": "acme", "name": "cifar"}
    ),
    "RunCreateRequest": Probe("post", lambda w: "/api/v1/runs", {"project": "acme/mnist"}),
    "PatchedRunPatchRequest": Probe("patch", _run),
    "MetricsBatchRequest": Probe(
        "post", lambda w: f"{_run(w)}/metrics", {"points": [{"key": "loss", "value": 1}]}
    ),
    "PointRequest": Probe(
        "post", lambda w: f"{_run(w)}/metrics", {"key": "loss", "value": 1}, into="points"
    ),
    "ConsoleLineRequest": Probe(
        "post", lambda w: f"{_run(w)}/console", {"number": 0, "text": "epoch 1"}, into="lines"
    ),
    "MediaItemInRequest": Probe(
        "post",
        lambda w: f"{_run(w)}/media",
        {"key": "w", "step": 0, "kind": "histogram", "counts": [1], "edges": [0, 1]},
        into="items",
    ),
    "SdkAlertCreateRequest": Probe("post", lambda w: f"{_run(w)}/alerts", {"title": "NaN"}),
    # Versioned artifacts (issue 21)
    "ArtifactVersionCreateRequest": Probe(
        "post",
        lambda w: f"{_run(w)}/artifact-versions",
        {"name": "model", "files": [{"path": "a.bin", "sha256": "0" * 64, "size": 1}]},
    ),
    "TokenCreateRequest": Probe("post", lambda w: "/api/v1/tokens", {"name": "laptop"}),
    "InvitationCreateRequest": Probe(
        "post", lambda w: "/api/v1/teams/acme/invitations", {"member": "dave", "role": "viewer"}
    ),
    "DestinationWriteRequest": Probe(
        "post", lambda w: "/api/v1/destinations", {"team": "acme", **EMAIL}
    ),
    "PatchedDestinationPatchRequest": Probe("patch", _destination),
    "RuleWriteRequest": Probe(
        "post", lambda w: "/api/v1/alert-rules", {**RULE, "project": "acme/mnist"}
    ),
    "PatchedRulePatchRequest": Probe("patch", _rule),
    "SilenceWriteRequest": Probe(
        "post", lambda w: "/api/v1/silences", {"project": "acme/mnist", "until": SOON}
    ),
    "ReportCreateRequest": Probe(
        "post", lambda w: "/api/v1/reports", {"project": "acme/mnist", "title": "Sweep"}
    ),
    "PatchedReportPatchRequest": Probe("patch", _report, {"revision": 1}),
    "DraftRequest": Probe("put", lambda w: f"{_report(w)}/draft", {"title": "S", "revision": 1}),
    "PreviewRequest": Probe("post", lambda w: f"{_report(w)}/preview", {"body": ""}),
    "ReportMergeRequest": Probe(
        "post", lambda w: f"{_report(w)}/merge", {"revision": 1, "title": "S", "body": ""}
    ),
    "RestoreRequest": Probe("post", lambda w: f"{_report(w)}/revisions/1/restore"),
    "CommentCreateRequest": Probe(
        "post", lambda w: "/api/v1/comments", {"target": "report:0", "body": "Nice"}
    ),
    "PatchedCommentPatchRequest": Probe("patch", _comment),
    "PersonalAlertsWriteRequest": Probe("put", lambda w: "/api/v1/me/alerts"),
}


@dataclass(frozen=True)
class Bound:
    shape: str
    field: str
    taken: object  # the value at the bound
    refused: object  # one past it
    where: str  # the field the 400 names

    def __str__(self) -> str:
        return f"{self.shape}.{self.where}"


def _bounds_of(shape: str, name: str, prop: dict) -> Iterator[Bound]:
    if "maxLength" in prop:
        n = prop["maxLength"]
        yield Bound(shape, name, "x" * n, "x" * (n + 1), name)
    if "maximum" in prop:
        yield Bound(shape, name, prop["maximum"], prop["maximum"] + 1, name)
    if "minimum" in prop:
        yield Bound(shape, name, prop["minimum"], prop["minimum"] - 1, name)
    if "maxItems" in prop:
        n = prop["maxItems"]
        yield Bound(shape, name, [f"t{i}" for i in range(n)], [f"t{i}" for i in range(n + 1)], name)
    items = prop.get("items", {})
    if "maxLength" in items:
        n = items["maxLength"]
        yield Bound(shape, name, ["x" * n], ["x" * (n + 1)], f"{name}[0]")


def _request_bounds() -> list[Bound]:
    found = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    return [
        bound
        for shape, schema in sorted(found.items())
        if shape.endswith("Request")
        for name, prop in schema.get("properties", {}).items()
        for bound in _bounds_of(shape, name, prop)
    ]


BOUNDS = _request_bounds()


def test_every_bounded_request_shape_has_a_probe():
    assert BOUNDS, "the schema states no bound at all: the walk is broken"
    assert {bound.shape for bound in BOUNDS} <= set(PROBES)


def _send(world: World, bound: Bound, value: object):
    probe = PROBES[bound.shape]
    url = probe.url(world)
    if bound.shape == "CommentCreateRequest":  # a comment needs a report to sit on
        probe = replace(probe, body={**probe.body, "target": f"report:{_report(world)[16:]}"})
    body = {**probe.body, bound.field: value}
    if probe.into:
        body = {probe.into: [body]}
    return getattr(world.owner.client(), probe.method)(url, body, format="json")


@pytest.mark.parametrize("bound", BOUNDS, ids=str)
def test_a_stated_bound_is_taken_and_one_past_it_refused(world: World, bound: Bound):
    taken = _send(world, bound, bound.taken)
    assert taken.status_code != 400, taken.content  # a 409 (a stale revision) passed the checks
    refused = _send(world, bound, bound.refused)
    assert refused.status_code == 400, refused.content
    where = (
        f"{PROBES[bound.shape].into}[0].{bound.where}" if PROBES[bound.shape].into else bound.where
    )
    assert refused.json()["error"]["field"] == where
