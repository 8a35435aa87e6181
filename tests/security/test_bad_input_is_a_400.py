"""Inputs the security review turned into 500s: each is a 400 naming the field, nothing written.

Found: a metric ``key`` that is a JSON object or array (``TypeError:
unhashable type`` in the REST and MLflow fast paths); JSON nested 450 to
1,023 levels, and a run ``config`` nested 500 levels (docs/api.md promises a
400 beyond 20); dates near the year 9999 with a negative offset (the year
10000 in UTC); a list where an alert rule's operator goes; an experiments
``filter`` that is not a string.
"""

from __future__ import annotations

from typing import Any

import pytest

from alerts.models import AlertRule
from tests.conftest import World
from tests.tracking.mlflow.test_protocol import API, bearer
from tracking import services
from tracking.models import ApiToken, MetricPoint, Run

pytestmark = pytest.mark.django_db


def nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for index in range(levels):
        value = {"a": value} if index % 2 else [value]
    return value


def nested_json(levels: int) -> str:
    """JSON text ``levels`` deep, written out directly (json.dumps itself recurses)."""
    opening = "".join('{"a": ' if index % 2 else "[" for index in range(levels))
    closing = "".join("}" if index % 2 else "]" for index in reversed(range(levels)))
    return opening + "1" + closing


def field_of(response) -> str | None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    return response.json()["error"]["field"]


@pytest.fixture
def run(world: World) -> Run:
    return services.run_create(user=world.editor.user, project=world.project, name="r")


@pytest.mark.parametrize("key", [{"a": 1}, ["a"], [], {}])
def test_a_metric_key_that_is_not_text_is_a_400_naming_it(world: World, run: Run, key):
    client = world.editor.client()
    points = [{"key": "loss", "step": 0, "value": 1.0}, {"key": key, "step": 1, "value": 2.0}]
    response = client.post(f"/api/v1/runs/{run.pk}/metrics", {"points": points}, format="json")
    assert field_of(response) == "points[1].key"
    assert not MetricPoint.objects.exists()


@pytest.mark.parametrize("key", [{"a": 1}, ["a"]])
def test_an_mlflow_metric_key_that_is_not_text_is_a_400(world: World, run: Run, client, key):
    headers = bearer(world.editor.user)
    good = {"key": "loss", "value": 1.0, "timestamp": 1, "step": 0}
    bad = {**good, "key": key}
    for path, body in [
        ("runs/log-metric", {"run_id": str(run.pk), **bad}),
        ("runs/log-batch", {"run_id": str(run.pk), "metrics": [good, bad]}),
    ]:
        response = client.post(f"{API}/{path}", body, content_type="application/json", **headers)
        assert response.status_code == 400, (path, response.content)
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert not MetricPoint.objects.exists()


@pytest.mark.parametrize("levels", [65, 450, 600, 1000])
def test_json_nested_past_the_limit_is_a_400_everywhere(world: World, run: Run, client, levels):
    body = '{"name": "deep", "project": "acme/mnist", "config": ' + nested_json(levels) + "}"
    api = world.editor.client()
    response = api.post("/api/v1/runs", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "nest deeper than 64 levels" in response.content.decode()
    mlflow = client.post(
        f"{API}/runs/log-batch",
        '{"run_id": "' + str(run.pk) + '", "params": ' + nested_json(levels) + "}",
        content_type="application/json",
        **bearer(world.editor.user),
    )
    assert mlflow.status_code == 400, mlflow.content[:300]
    assert mlflow.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert Run.objects.count() == 1


@pytest.mark.parametrize("levels", [21, 60])
def test_a_config_nested_past_20_levels_is_a_400_naming_config(world: World, levels):
    response = world.editor.client().post(
        "/api/v1/runs",
        {"name": "deep", "project": "acme/mnist", "config": nested(levels)},
        format="json",
    )
    assert field_of(response) == "config"
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    "moment",
    ["9999-12-31T23:00:00-05:00", "9999-12-31T20:00:00-23:59", "0001-01-01T00:30:00+01:00"],
)
def test_a_moment_outside_the_utc_calendar_is_a_400_naming_it(world: World, moment):
    response = world.owner.client().post(
        "/api/v1/tokens", {"name": "far", "expires_at": moment}, format="json"
    )
    assert field_of(response) == "expires_at"
    assert ApiToken.objects.filter(name="far").count() == 0


@pytest.mark.parametrize("op", [[">"], {"op": ">"}])
def test_an_alert_rule_operator_that_is_not_text_is_a_400(world: World, op):
    body = {
        "project": "acme/mnist",
        "name": "r",
        "trigger": "metric_threshold",
        "params": {"key": "loss", "op": op, "value": 1},
    }
    response = world.owner.client().post("/api/v1/alert-rules", body, format="json")
    assert field_of(response) == "params.op"
    assert not AlertRule.objects.exists()
