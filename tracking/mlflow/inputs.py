"""MLflow's dataset inputs (``runs/log-inputs``), kept as MLflow's SQL store keeps them.

A dataset is named by (name, digest) within its experiment: the first logging
fixes its source, schema and profile, and every later run that logs the same
pair points at that row (``Dataset``). A run uses a dataset once (``RunInput``),
with the input tags of the first logging (``mlflow.data.context``: train, eval);
logging it again changes nothing. Within one request the first of several
inputs with the same (name, digest) wins. Everything is checked before
anything is written.

The limits and their messages are MLflow's (``mlflow/utils/validation.py``:
``_validate_dataset``, ``_validate_input_tag``). MLflow reads a missing field
as "" (its protobuf parser does), and so do we; a value of the wrong type,
which MLflow's parser silently empties, is refused here.

Logged-model inputs (``models``) are accepted and not kept: Labbook has no
logged models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from kernel.limits import max_length
from tracking.mlflow.http import MlflowError, exceeds_maximum_length, invalid
from tracking.models import Dataset, Run, RunInput

DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")
# Checked in MLflow's order; source_type has no limit there.
LIMITED_FIELDS = ("name", "digest", "source", "schema", "profile")
MAX_INPUT_TAG_KEY = 255
MAX_INPUT_TAG_VALUE = 500

Tag = dict[str, str]


@dataclass(frozen=True)
class DatasetInput:
    dataset: dict[str, str]  # DATASET_FIELDS, "" when not sent
    tags: list[Tag]

    @property
    def key(self) -> tuple[str, str]:
        return self.dataset["name"], self.dataset["digest"]


def exceeds(name: str, limit: int) -> MlflowError:
    """MLflow names the field bare (``'name'``), not where it is in the request."""
    return invalid(exceeds_maximum_length(name, limit))


def _string(value: Any, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"Invalid value {value!r} for parameter '{path}': a string.")
    if "\x00" in value:
        raise invalid(f"'{path}' may not contain NUL characters.")
    return value


def _object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid value for parameter '{path}': an object.")
    return value


def _objects(value: Any, path: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"Invalid value for parameter '{path}': a list of objects.")
    return [_object(item, f"{path}[{index}]") for index, item in enumerate(value)]


def _dataset(value: Any, path: str) -> dict[str, str]:
    sent = _object(value, path)
    dataset = {name: _string(sent.get(name), f"{path}.{name}") for name in DATASET_FIELDS}
    for name in LIMITED_FIELDS:
        limit = max_length(Dataset, name)
        if len(dataset[name]) > limit:
            raise exceeds(name, limit)
    return dataset


def _tags(value: Any, path: str) -> list[Tag]:
    tags: list[Tag] = []
    for index, item in enumerate(_objects(value, path)):
        key = _string(item.get("key"), f"{path}[{index}].key")
        tag_value = _string(item.get("value"), f"{path}[{index}].value")
        if len(key) > MAX_INPUT_TAG_KEY:
            raise exceeds("key", MAX_INPUT_TAG_KEY)
        if len(tag_value) > MAX_INPUT_TAG_VALUE:
            raise exceeds("value", MAX_INPUT_TAG_VALUE)
        if any(tag["key"] == key for tag in tags):
            # MLflow's store fails on its primary key here (400 BAD_REQUEST, an SQL message).
            raise MlflowError("BAD_REQUEST", f"Duplicate input tag key '{key}' in '{path}'.")
        tags.append({"key": key, "value": tag_value})
    return tags


def parse(datasets: Any) -> list[DatasetInput]:
    """The request's dataset inputs, checked, the first of each (name, digest) only."""
    found: dict[tuple[str, str], DatasetInput] = {}
    for index, item in enumerate(_objects(datasets, "datasets")):
        path = f"datasets[{index}]"
        dataset = _dataset(item.get("dataset"), f"{path}.dataset")
        entry = DatasetInput(dataset, _tags(item.get("tags"), f"{path}.tags"))
        found.setdefault(entry.key, entry)
    return list(found.values())


def _datasets(run: Run, entries: list[DatasetInput]) -> dict[tuple[str, str], Dataset]:
    """The project's dataset row of every entry, created for the (name, digest) it lacks."""
    names = {entry.key[0] for entry in entries}
    digests = {entry.key[1] for entry in entries}
    rows = Dataset.objects.filter(project_id=run.project_id, name__in=names, digest__in=digests)
    known = {(row.name, row.digest): row for row in rows}
    for entry in entries:
        if entry.key not in known:
            name, digest = entry.key
            # get_or_create: a concurrent request for another run may have made it meanwhile.
            known[entry.key], _ = Dataset.objects.get_or_create(
                project_id=run.project_id, name=name, digest=digest, defaults=entry.dataset
            )
    return known


def log_inputs(run: Run, *, entries: list[DatasetInput]) -> None:
    """Record that ``run`` used ``entries``' datasets; ones it already uses are left as they are."""
    if not entries:
        return
    with transaction.atomic():
        Run.objects.select_for_update().only("pk").get(pk=run.pk)  # one writer per run
        rows = _datasets(run, entries)
        used = set(RunInput.objects.filter(run=run).values_list("dataset_id", flat=True))
        new = [
            RunInput(run=run, dataset=rows[entry.key], tags=entry.tags)
            for entry in entries
            if rows[entry.key].pk not in used
        ]
        RunInput.objects.bulk_create(new)


# --- Reading --------------------------------------------------------------------------------


def _shape(row: tuple[Any, ...]) -> dict[str, Any]:
    """One ``DatasetInput`` as MLflow answers it: empty tags, schema and profile omitted."""
    tags, *fields = row
    dataset = dict(zip(DATASET_FIELDS, fields, strict=True))
    for optional in ("schema", "profile"):
        if not dataset[optional]:
            del dataset[optional]
    return {"tags": tags, "dataset": dataset} if tags else {"dataset": dataset}


def dataset_inputs(run_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Each run's dataset inputs in the order they were logged, in one query."""
    columns = ("run_id", "tags", *(f"dataset__{name}" for name in DATASET_FIELDS))
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for run_id, *row in RunInput.objects.filter(run_id__in=run_ids).values_list(*columns):
        found[run_id].append(_shape(tuple(row)))
    return found
