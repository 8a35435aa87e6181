"""A text limit is written once, on the model field: the service, the API schema and the
forms all read it (``kernel.limits``), so one character past it is refused everywhere."""

from __future__ import annotations

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
