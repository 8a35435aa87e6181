"""The datasets a project's runs used (MLflow's ``log_input``), and which run used which.

A ``dataset`` line per dataset of the project, then a ``run_input`` line per run's use of
one, pointing at both by their file ids: after the runs (``ProjectSection``), so a
``run_input`` refers only to lines written before it.
"""

from __future__ import annotations

from collections.abc import Iterator

from kernel.errors import invalid
from kernel.limits import max_length
from tracking.mlflow.inputs import DATASET_FIELDS, MAX_INPUT_TAG_KEY, MAX_INPUT_TAG_VALUE
from tracking.models import Dataset, Project, RunInput
from tracking.portability import sections
from tracking.portability.format import Line, ref
from tracking.portability.sections import LoadContext
from tracking.validation import clean_text

CHUNK = 200


class DatasetSection:
    order = 15
    types = frozenset({"dataset", "run_input"})

    def count(self, project: Project) -> int:
        datasets = Dataset.objects.filter(project=project).count()
        return datasets + RunInput.objects.filter(run__project=project).count()

    def export(self, project: Project) -> Iterator[Line]:
        for dataset in Dataset.objects.filter(project=project).order_by("id").iterator(CHUNK):
            yield {
                "type": "dataset",
                "id": dataset.pk,
                **{name: getattr(dataset, name) for name in DATASET_FIELDS},
            }
        used = RunInput.objects.filter(run__project=project).order_by("id")
        for row in used.iterator(CHUNK):
            yield {
                "type": "run_input",
                "run": row.run_id,
                "dataset": row.dataset_id,
                "tags": row.tags,
            }

    def load(self, line: Line, context: LoadContext) -> None:
        if line["type"] == "dataset":
            load_dataset(line, context)
        else:
            load_run_input(line, context)


sections.register(DatasetSection())


def load_dataset(line: Line, context: LoadContext) -> None:
    # source_type has no limit of its own in MLflow: the longest text field's.
    limits = {
        name: max_length(Dataset, "profile" if name == "source_type" else name)
        for name in DATASET_FIELDS
    }
    fields = {name: exact_text(line, name, max_length=limits[name]) for name in DATASET_FIELDS}
    dataset = Dataset.objects.create(project=context.loaded_project, **fields)
    context.remember("dataset", line.get("id"), dataset.pk)


def load_run_input(line: Line, context: LoadContext) -> None:
    RunInput.objects.create(
        run_id=ref(line, "run", context.ids.get("run", {}), "run"),
        dataset_id=ref(line, "dataset", context.ids.get("dataset", {}), "dataset"),
        tags=input_tags(line.get("tags")),
    )


def exact_text(line: Line, name: str, *, max_length: int) -> str:
    """Text kept exactly as logged (a dataset is named by its exact name and digest)."""
    return clean_text(line.get(name, ""), field=name, max_length=max_length, strip=False)


def input_tags(value: object) -> list[dict[str, str]]:
    """A run input's tags: a list of ``{"key", "value"}``, each key once, within MLflow's limits."""
    if not isinstance(value, list):
        raise invalid("tags", "Must be a list of {key, value} objects.")
    tags: list[dict[str, str]] = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            raise invalid("tags", "Must be a list of {key, value} objects.")
        key = exact_text(item, "key", max_length=MAX_INPUT_TAG_KEY)
        tag_value = exact_text(item, "value", max_length=MAX_INPUT_TAG_VALUE)
        if any(tag["key"] == key for tag in tags):
            raise invalid("tags", f"The key {key!r} is there twice.")
        tags.append({"key": key, "value": tag_value})
    return tags
