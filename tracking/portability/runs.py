"""The project, its runs (with tags and SDK alerts) and their metric points.

Points are read and written a series at a time in pages of at most
``POINTS_PER_LINE`` points (keyset paging on the primary key, so a step
holding several points may span two lines), and stored back through
``tracking.ingest``, which rebuilds the series summaries and the rollups
exactly as live logging would. Points come back in the order they were read:
those sharing a step and timestamp keep their order (seq).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Sum

from kernel.errors import invalid
from kernel.limits import max_length
from tracking import history, ingest, services
from tracking.models import AlertLevel, MetricSeries, Project, Run, RunStatus, SdkAlert
from tracking.portability import sections
from tracking.portability.format import (
    POINTS_PER_LINE,
    Line,
    PortabilityError,
    encode_values,
    iso,
    ref,
    text,
    when,
    whole,
)
from tracking.portability.sections import LoadContext
from tracking.validation import clean_json_object, clean_metric_key

# What run_create validates and stores; the rest of a run is set after it.
RUN_FIELDS = (
    "name",
    "group",
    "notes",
    "host",
    "command",
    "error",
    "traceback",
    "config",
    "summary",
    "git",
    "metadata",
)
RUN_CHUNK = 200
# What storing points changes on a run, put back afterwards.
LIVE_FIELDS = ("status", "ended_at", "last_seen_at")


class ProjectSection:
    order = 10
    types = frozenset({"project", "run", "sdk_alert", "points"})

    def count(self, project: Project) -> int:
        runs = Run.objects.filter(project=project)
        series = MetricSeries.objects.filter(run__project=project)
        points = series.aggregate(total=Sum("count"))["total"] or 0
        return 1 + runs.count() + SdkAlert.objects.filter(run__project=project).count() + points

    def export(self, project: Project) -> Iterator[Line]:
        yield project_line(project)
        runs = (
            Run.objects.filter(project=project)
            .select_related("created_by")
            .prefetch_related("tag_rows")
            .order_by("id")
        )
        for run in runs.iterator(chunk_size=RUN_CHUNK):
            yield run_line(run)
            yield from sdk_alert_lines(run)
            yield from points_lines(run)

    def load(self, line: Line, context: LoadContext) -> None:
        loaders = {
            "project": load_project,
            "run": load_run,
            "sdk_alert": load_sdk_alert,
            "points": load_points,
        }
        if line["type"] != "project" and context.project is None:
            raise invalid("type", "The project line must come before everything in it.")
        loaders[line["type"]](line, context)


sections.register(ProjectSection())


def username(user: Any) -> str | None:
    return None if user is None else user.get_username()


# --- Export ------------------------------------------------------------------------------


def project_line(project: Project) -> Line:
    return {
        "type": "project",
        "slug": project.slug,
        "description": project.description,
        "metadata": project.metadata,
        "created_at": iso(project.created_at),
        "created_by": username(project.created_by),
        "deleted_at": iso(project.deleted_at),
    }


def run_line(run: Run) -> Line:
    return {
        "type": "run",
        "id": run.pk,
        **{name: getattr(run, name) for name in RUN_FIELDS},
        "tags": sorted(tag.name for tag in run.tag_rows.all()),
        "status": run.status,
        "exit_code": run.exit_code,
        "client_id": run.client_id,
        "created_by": username(run.created_by),
        "created_at": iso(run.created_at),
        "ended_at": iso(run.ended_at),
        "last_seen_at": iso(run.last_seen_at),
        "deleted_at": iso(run.deleted_at),
    }


def sdk_alert_lines(run: Run) -> Iterator[Line]:
    for alert in SdkAlert.objects.filter(run=run).order_by("created_at", "id"):
        yield {
            "type": "sdk_alert",
            "run": run.pk,
            "title": alert.title,
            "text": alert.text,
            "level": alert.level,
            "created_at": iso(alert.created_at),
            "repeats": alert.repeats,
        }


def points_lines(run: Run) -> Iterator[Line]:
    for series in list(MetricSeries.objects.filter(run=run).order_by("key").only("id", "key")):
        for page in point_pages(series):
            steps, values, stamps = zip(*page, strict=True)
            yield {
                "type": "points",
                "run": run.pk,
                "key": series.key,
                "steps": list(steps),
                "values": encode_values(list(values)),
                "timestamps": list(stamps),
            }


def point_pages(series: MetricSeries) -> Iterator[list[tuple[int, float | None, float]]]:
    """(step, value, timestamp) of a series in primary-key order, ``POINTS_PER_LINE`` at a time."""
    start = None
    while True:
        rows, start = history.points_page(series, limit=POINTS_PER_LINE, start=start)
        if rows:
            yield [(step, value, stamp) for step, stamp, _seq, value in rows]
        if start is None:
            return


# --- Load ------------------------------------------------------------------------------------


def load_project(line: Line, context: LoadContext) -> None:
    if context.project is not None:
        raise invalid("type", "A file holds one project: this is a second project line.")
    slug = context.slug or line.get("slug")
    if Project.objects.filter(team=context.team, slug=slug).exists():
        raise PortabilityError(
            f"Project {context.team.slug}/{slug} already exists; nothing was imported."
            " Import under another name with --project NEW_SLUG."
        )
    project = services.project_create(
        user=context.user,
        team_slug=context.team.slug,
        slug=slug,
        description=text(line, "description", max_length=5000),
    )
    fields = {
        "metadata": clean_json_object(line.get("metadata"), field="metadata"),
        "created_at": when(line, "created_at", required=True),
        "created_by": context.author(line.get("created_by")),
        "deleted_at": when(line, "deleted_at"),
    }
    Project.objects.filter(pk=project.pk).update(**fields)
    for name, value in fields.items():
        setattr(project, name, value)
    context.project = project


def load_run(line: Line, context: LoadContext) -> None:
    author = context.author(line.get("created_by"))
    times = run_times(line)
    run = services.run_create(
        user=author,
        project=context.loaded_project,
        client_id=free_client_id(line, author, context),
        tags=line.get("tags"),
        **{name: line[name] for name in RUN_FIELDS if name in line},
    )
    context.remember("run", line.get("id"), run.pk)
    Run.objects.filter(pk=run.pk).update(**times)


def run_times(line: Line) -> dict[str, Any]:
    """What ``run_create`` does not take: status and times, set right after it."""
    if line.get("status") not in RunStatus.values:
        raise invalid("status", f"Status must be one of {', '.join(RunStatus.values)}.")
    created_at = when(line, "created_at", required=True)
    return {
        "status": line["status"],
        "exit_code": whole(line, "exit_code", low=-(2**31), high=2**31 - 1, nullable=True),
        "created_at": created_at,
        "ended_at": when(line, "ended_at"),
        "last_seen_at": when(line, "last_seen_at") or created_at,
        "deleted_at": when(line, "deleted_at"),
    }


def free_client_id(line: Line, author: Any, context: LoadContext) -> str:
    """The run's client id, unless its author already has a run with it (ids are per user)."""
    client_id = text(line, "client_id", max_length=max_length(Run, "client_id"))
    if client_id and Run.objects.filter(created_by=author, client_id=client_id).exists():
        context.warnings.append(
            f"Run {line.get('name')!r} was imported without its client_id {client_id!r}:"
            f" {username(author)} already has a run with that id."
        )
        return ""
    return client_id


def load_sdk_alert(line: Line, context: LoadContext) -> None:
    if line.get("level") not in AlertLevel.values:
        raise invalid("level", f"Level must be one of {', '.join(AlertLevel.values)}.")
    SdkAlert.objects.create(
        run_id=ref(line, "run", context.ids.get("run", {}), "run"),
        title=text(line, "title", max_length=200, required=True),
        text=text(line, "text", max_length=10_000),
        level=line["level"],
        created_at=when(line, "created_at", required=True),
        repeats=whole(line, "repeats", low=0, high=2**31 - 1),
    )


def load_points(line: Line, context: LoadContext) -> None:
    run = Run.objects.get(pk=ref(line, "run", context.ids.get("run", {}), "run"))
    key = clean_metric_key(line.get("key"), field="key")
    points = ingest.parse_points(raw_points(line, key), field="points")
    kept = {name: getattr(run, name) for name in LIVE_FIELDS}
    ingest.metrics_ingest(run=run, points=points)
    # Ingest marks the run alive (and a crashed run running again): history is not news.
    Run.objects.filter(pk=run.pk).update(**kept)


def raw_points(line: Line, key: str) -> list[dict[str, Any]]:
    """The line's arrays as the points ``ingest.parse_points`` validates."""
    steps, values, stamps = (line.get(name) for name in ("steps", "values", "timestamps"))
    if not (isinstance(steps, list) and isinstance(values, list) and isinstance(stamps, list)):
        raise invalid("steps", "steps, values and timestamps must be lists.")
    if not len(steps) == len(values) == len(stamps):
        raise invalid("steps", "steps, values and timestamps must have the same length.")
    if len(steps) > POINTS_PER_LINE:
        raise invalid("steps", f"At most {POINTS_PER_LINE} points per line.")
    return [
        {"key": key, "step": step, "value": value, "timestamp": stamp}
        for step, value, stamp in zip(steps, values, stamps, strict=True)
    ]
