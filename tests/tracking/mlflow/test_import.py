"""`manage.py import_mlflow` from a real `mlflow server` (SQLite backend) on loopback.

The runs are logged to that server with the real mlflow client, imported
into Labbook's test database, compared field by field, imported again (no
duplicates), and a bad URI is refused with a clear message.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from mlflow import MlflowClient
from mlflow.entities import Dataset as MlflowDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag

from alerts.models import Alert
from tests.tracking.mlflow.reference_server import running_mlflow_server
from tracking.models import Dataset, MetricPoint, MetricSeries, Project, Run, RunInput

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

DATASET = MlflowDataset(
    name="mnist", digest="abc123", source_type="local", source='{"uri": "/data"}', schema="{}"
)
CONTEXT = "mlflow.data.context"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture(scope="module")
def logged(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two experiments logged to the MLflow server; what was sent, for comparing."""
    client = MlflowClient(tracking_uri=mlflow_server)
    vision = client.create_experiment("vision baseline")
    other = client.create_experiment("other")
    finished = client.create_run(vision, run_name="resnet", start_time=1_700_000_000_000)
    run_id = finished.info.run_id
    losses = [Metric("loss", 1 / (s + 1), 1_700_000_000_000 + s, s) for s in range(300)]
    nan = [Metric("grad", math.nan, 1_700_000_000_500, 0)]
    client.log_batch(
        run_id,
        metrics=[*losses, *nan],
        params=[Param("lr", "0.01"), Param("arch", "resnet50")],
        tags=[RunTag("team", "vision"), RunTag("mlflow.note.content", "the baseline")],
    )
    for value, millis in ((3.0, 1), (2.0, 2), (1.0, 3)):  # no step given: all at step 0
        client.log_metric(run_id, "stepless", value, timestamp=1_700_000_001_000 + millis)
    folder = tmp_path_factory.mktemp("artifact")
    (folder / "notes.txt").write_text("hello from mlflow")
    client.log_artifact(run_id, str(folder / "notes.txt"), artifact_path="docs")
    client.log_inputs(run_id, datasets=[DatasetInput(DATASET, tags=[InputTag(CONTEXT, "train")])])
    client.set_terminated(run_id, "FINISHED", end_time=1_700_000_100_000)
    failed = client.create_run(vision, run_name="vit").info.run_id
    client.log_metric(failed, "loss", 9.0, step=1)
    client.set_terminated(failed, "FAILED")
    client.create_run(other, run_name="unrelated")
    return {"uri": mlflow_server, "run_id": run_id, "failed": failed, "losses": losses}


def _import(uri: str, *args: str) -> str:
    out = StringIO()
    call_command("import_mlflow", "--tracking-uri", uri, "--team", "acme", *args, stdout=out)
    return out.getvalue()


def test_it_copies_runs_params_tags_metrics_and_artifacts(world, logged, settings, tmp_path):
    settings.LABBOOK_HOME = tmp_path
    alert_rule_on(world)
    output = _import(logged["uri"], "--experiment", "vision baseline", "--artifacts")
    assert "Imported 1 experiment(s) into acme: 2 new run(s)" in output

    project = Project.objects.get(team__slug="acme", slug="vision-baseline")
    run = Run.objects.get(project=project, name="resnet")
    assert run.status == "finished"
    assert (run.created_at.timestamp(), run.ended_at.timestamp()) == (1_700_000_000, 1_700_000_100)
    assert run.config == {"lr": "0.01", "arch": "resnet50"}
    assert run.notes == "the baseline"
    [used] = run.inputs.select_related("dataset")
    dataset = used.dataset
    assert (dataset.name, dataset.digest, dataset.source, dataset.schema) == (
        "mnist", "abc123", '{"uri": "/data"}', "{}"
    )  # fmt: skip
    assert used.tags == [{"key": CONTEXT, "value": "train"}]
    assert run.metadata["mlflow_tags"]["team"] == "vision"
    assert "team:vision" in {tag.name for tag in run.tag_rows.all()}
    loss = list(
        MetricPoint.objects.filter(series__run=run, series__key="loss")
        .order_by("step")
        .values_list("step", "value", "timestamp")
    )
    assert loss == [(m.step, m.value, m.timestamp / 1000) for m in logged["losses"]]
    grad = MetricSeries.objects.get(run=run, key="grad")
    assert (grad.count, grad.last_value) == (1, None)  # NaN kept as NaN
    stepless = MetricPoint.objects.filter(series__run=run, series__key="stepless")
    stepless = stepless.order_by("step", "timestamp")
    assert list(stepless.values_list("step", "value", "timestamp")) == [
        (0, 3.0, 1_700_000_001.001),
        (0, 2.0, 1_700_000_001.002),
        (0, 1.0, 1_700_000_001.003),
    ]
    copied = Path(tmp_path) / "artifacts" / str(project.pk) / str(run.pk) / "artifacts"
    assert (copied / "docs" / "notes.txt").read_text() == "hello from mlflow"

    vit = Run.objects.get(project=project, name="vit")
    assert vit.status == "failed"
    assert Alert.objects.count() == 0  # history is copied, not replayed: nobody is paged
    assert not Project.objects.filter(slug="other").exists()


def alert_rule_on(world) -> None:
    """A run_failed rule on the project the import will fill: it must stay quiet."""
    from alerts import services as alert_services
    from tracking import services

    project = services.project_create(
        user=world.owner.user, team_slug="acme", slug="vision-baseline"
    )
    project.role = "owner"
    alert_services.rule_create(
        user=world.owner.user, project=project, data={"name": "f", "trigger": "run_failed"}
    )


def test_importing_again_duplicates_nothing(world, logged, settings, tmp_path):
    settings.LABBOOK_HOME = tmp_path
    _import(logged["uri"])
    models = (Project, Run, MetricPoint, Dataset, RunInput)
    counts = [model.objects.count() for model in models]
    output = _import(logged["uri"])
    assert "0 new run(s), 3 already there (completed), 0 metric point(s), 0 param(s)" in output
    assert [model.objects.count() for model in models] == counts


def test_a_bad_uri_is_refused_plainly(world, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(CommandError, match=r"Cannot read MLflow data at 'http://127\.0\.0\.1:9'"):
        _import("http://127.0.0.1:9", "--experiment", "x")
    with pytest.raises(CommandError, match="no team 'nope'"):
        call_command("import_mlflow", "--tracking-uri", "sqlite:///x.db", "--team", "nope")


def test_an_unknown_experiment_is_named(world, logged):
    with pytest.raises(CommandError, match="no experiment named 'missing'"):
        _import(logged["uri"], "--experiment", "missing")


def test_it_imports_straight_from_an_sqlite_store(world, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    source = MlflowClient(tracking_uri=uri)
    run_id = source.create_run(source.create_experiment("local")).info.run_id
    source.log_batch(run_id, metrics=[Metric("acc", 0.5, 1_700_000_000_000, 3)])
    source.set_terminated(run_id, "KILLED")
    assert "1 new run(s)" in _import(uri, "--experiment", "local")
    run = Run.objects.get(project__slug="local")
    assert run.status == "killed"
    assert list(MetricPoint.objects.filter(series__run=run).values_list("step", "value")) == [
        (3, 0.5)
    ]
