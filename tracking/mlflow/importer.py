"""Copy experiments and runs from any MLflow tracking store into Labbook.

The source is whatever the mlflow client can read: a tracking server
(``http://...``), a database (``sqlite:///mlflow.db``) or a ``mlruns``
folder. Each experiment becomes a project of the chosen team (by the naming
rule of ``experiments``); each run becomes a run remembering its MLflow id
(``client_id = "mlflow:<id>"``), so a second import finds it again and copies
only what is new: nothing is duplicated. Metric histories are copied in full,
every point at its own step, timestamp and value (several points may share a
step, as in MLflow): a point copied before is an exact duplicate, which
ingest drops.

History is copied, not replayed: the import publishes no events, so a failed
run from last year pages nobody.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from tracking import events, ingest, services, storage
from tracking.mlflow import convert, experiments, inputs, runs
from tracking.models import Project, Run, Team

CLIENT_ID_PREFIX = "mlflow:"
PAGE = 1000
POINTS_PER_BATCH = 10_000

Progress = Callable[[int], None]


class ImportFailed(Exception):
    """A problem with the source, said plainly (bad URI, unknown experiment)."""


@dataclass
class Summary:
    experiments: int = 0
    runs_created: int = 0
    runs_updated: int = 0
    points: int = 0
    params: int = 0
    artifacts: int = 0
    skipped: list[str] = field(default_factory=list)


def client_for(tracking_uri: str) -> Any:
    """An MlflowClient that has answered once, or ImportFailed saying why not."""
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise ImportFailed("The mlflow package is needed: pip install 'labbook[mlflow]'.") from None
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)
    except (MlflowException, OSError, ValueError) as error:
        raise ImportFailed(f"Cannot read MLflow data at {tracking_uri!r}: {error}") from None
    return client


def source_experiments(client: Any, names: list[str]) -> list[Any]:
    if not names:
        return list(_pages(lambda token: client.search_experiments(page_token=token)))
    found = []
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise ImportFailed(f"The source has no experiment named {name!r}.")
        found.append(experiment)
    return found


def source_runs(client: Any, experiment_id: str) -> list[Any]:
    return list(
        _pages(
            lambda token: client.search_runs(
                [experiment_id], max_results=PAGE, page_token=token, order_by=["start_time ASC"]
            )
        )
    )


def _pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = page.token
        if not token:
            return


def project_slug(experiment_name: str) -> str:
    """The project an experiment becomes: its name if it is a valid slug, else slugified."""
    name = experiment_name.rsplit("/", 1)[-1]
    if name == "Default":
        return experiments.DEFAULT_PROJECT
    return experiments.slug_for(name) or "experiment"


def project_for(user: User, team: Team, experiment: Any) -> Project:
    return services.project_get_or_create_for_write(
        user=user, full_name=f"{team.slug}/{project_slug(experiment.name)}"
    )


# --- One run ----------------------------------------------------------------------------------


def import_steps(history: list[Any]) -> list[ingest.Point]:
    """MLflow metrics as points, as MLflow has them, in (step, timestamp) order."""
    ordered = sorted(history, key=lambda m: (m.step, m.timestamp))
    return [
        ingest.Point(
            metric.key,
            metric.step,
            runs.metric_or_nan(metric.value),
            min(metric.timestamp / 1000, 1e11 - 1),
        )
        for metric in ordered
    ]


def _run_for(user: User, project: Project, source: Any) -> tuple[Run, bool]:
    client_id = f"{CLIENT_ID_PREFIX}{source.info.run_id}"
    existing = Run.objects.filter(project=project, client_id=client_id).first()
    if existing is not None:
        return existing, False
    run = services.run_create(
        user=user, project=project, client_id=client_id, name=source.info.run_name or ""
    )
    return run, True


def _copy_fields(run: Run, source: Any) -> None:
    info = source.info
    status = convert.FROM_MLFLOW_STATUS.get(info.status, run.status)
    started = convert.from_millis(info.start_time) if info.start_time else run.created_at
    ended = convert.from_millis(info.end_time) if info.end_time else None
    Run.objects.filter(pk=run.pk).update(
        status=status, created_at=started, ended_at=ended, last_seen_at=ended or started
    )
    run.refresh_from_db()


def import_run(client: Any, user: User, project: Project, source: Any, summary: Summary) -> Run:
    """Create or complete one run; points already copied are skipped by ingest."""
    with transaction.atomic():
        run, created = _run_for(user, project, source)
        params = {k: v for k, v in source.data.params.items() if k not in run.config}
        if params:
            run.config = {**run.config, **params}
            run.save(update_fields=["config"])
        runs.apply_tags(run, {**run.metadata.get(convert.TAGS, {}), **source.data.tags})
        inputs.log_inputs(run, entries=inputs.parse(dataset_inputs(source)))
        for key in sorted(source.data.metrics):
            points = import_steps(client.get_metric_history(source.info.run_id, key))
            for start in range(0, len(points), POINTS_PER_BATCH):
                chunk = points[start : start + POINTS_PER_BATCH]
                summary.points += ingest.metrics_ingest(run=run, points=chunk).accepted
        _copy_fields(run, source)
    summary.params += len(params)
    if created:
        summary.runs_created += 1
    else:
        summary.runs_updated += 1
    return run


def dataset_inputs(source: Any) -> list[dict[str, Any]]:
    """The run's dataset inputs as ``log-inputs`` sends them (a run already copied keeps
    those it has: ``inputs.log_inputs`` adds only new ones)."""
    found = getattr(getattr(source, "inputs", None), "dataset_inputs", None) or []
    return [
        {
            "dataset": {
                name: getattr(used.dataset, name, "") or "" for name in inputs.DATASET_FIELDS
            },
            "tags": [{"key": tag.key, "value": tag.value} for tag in used.tags or []],
        }
        for used in found
    ]


def import_artifacts(client: Any, source: Any, run: Run) -> int:
    """Copy the run's artifacts into ``run``'s storage; the number of files copied."""
    with tempfile.TemporaryDirectory() as folder:
        downloaded = Path(client.download_artifacts(source.info.run_id, "", folder))
        files = [path for path in downloaded.rglob("*") if path.is_file()]
        for path in files:
            key = storage.run_key(run.project_id, run.pk, path.relative_to(downloaded).as_posix())
            with path.open("rb") as file:
                storage.save(key, file)
    return len(files)


# --- Everything -------------------------------------------------------------------------------


def import_all(
    client: Any,
    *,
    user: User,
    team: Team,
    experiment_names: list[str],
    with_artifacts: bool = False,
    on_experiment: Callable[[str, int], Progress] | None = None,
) -> Summary:
    """Import; ``on_experiment(name, run_count)`` returns a callback ticked once per run."""
    summary = Summary()
    with events.quiet():
        for experiment in source_experiments(client, experiment_names):
            project = project_for(user, team, experiment)
            sources = source_runs(client, experiment.experiment_id)
            tick = on_experiment(experiment.name, len(sources)) if on_experiment else None
            for source in sources:
                run = import_run(client, user, project, source, summary)
                if with_artifacts:
                    summary.artifacts += import_artifacts(client, source, run)
                if tick:
                    tick(1)
            summary.experiments += 1
    return summary
