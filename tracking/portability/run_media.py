"""A project's runs' media (images, tables, histograms, texts) and console output.

After the runs (``ProjectSection``): a ``media`` line per item, in the shape
``POST /api/v1/runs/<id>/media`` takes (an image's file base64, a table's
cells, a histogram's bins, a text and its format), and ``console`` lines of up
to ``CONSOLE_PER_LINE`` numbered lines. Both are loaded back through
``tracking.media`` and ``tracking.console``, so an imported item passes the
checks a logged one does (an image is decoded again), and the importing
server's console cap applies.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import orjson

from kernel.errors import invalid
from tracking import console, media, storage
from tracking.models import ConsoleLine, MediaItem, MediaKind, Project, Run
from tracking.portability import sections
from tracking.portability.format import Line, ref
from tracking.portability.sections import LoadContext

CONSOLE_PER_LINE = 1_000
CHUNK = 100


class RunMediaSection:
    order = 12
    types = frozenset({"media", "console"})

    def count(self, project: Project) -> int:
        items = MediaItem.objects.filter(run__project=project).count()
        return items + ConsoleLine.objects.filter(run__project=project).count()

    def export(self, project: Project) -> Iterator[Line]:
        items = MediaItem.objects.filter(run__project=project).order_by("run_id", "id")
        for item in items.iterator(CHUNK):
            yield media_line(item)
        for run_id in (
            Run.objects.filter(project=project).order_by("id").values_list("pk", flat=True)
        ):
            yield from console_lines(run_id)

    def load(self, line: Line, context: LoadContext) -> None:
        run_id = ref(line, "run", context.ids.get("run", {}), "run")
        run = Run.objects.get(pk=run_id)
        if line["type"] == "media":
            load_media(line, run, context)
        else:
            load_console(line, run)
        # Storing touched ``last_seen_at``: the run's own, as the runs section loaded it, stays.
        Run.objects.filter(pk=run.pk).update(last_seen_at=run.last_seen_at)


sections.register(RunMediaSection())


# --- Export ------------------------------------------------------------------------------


def media_line(item: MediaItem) -> Line:
    line: Line = {
        "type": "media",
        "id": item.pk,  # frozen report blocks name items by id (remembered on load)
        "run": item.run_id,
        "key": item.key,
        "step": item.step,
        "kind": item.kind,
        "caption": item.caption,
        "timestamp": item.timestamp,
    }
    if item.kind == MediaKind.HISTOGRAM:
        return {**line, "counts": item.meta["counts"], "edges": item.meta["edges"]}
    with storage.StoredFile(item.file).open("rb") as handle:
        content = handle.read()
    if item.kind == MediaKind.IMAGE:
        return {**line, "image": base64.b64encode(content).decode()}
    if item.kind == MediaKind.TEXT:
        return {**line, "text": content.decode("utf-8"), "format": item.meta["format"]}
    table = orjson.loads(content)
    return {**line, "columns": table["columns"], "rows": table["rows"]}


def console_lines(run_id: int) -> Iterator[Line]:
    rows = (
        ConsoleLine.objects.filter(run_id=run_id)
        .order_by("number")
        .values_list("number", "stream", "text", "timestamp")
    )
    chunk: list[list[Any]] = []
    for row in rows.iterator(CONSOLE_PER_LINE):
        chunk.append(list(row))
        if len(chunk) == CONSOLE_PER_LINE:
            yield {"type": "console", "run": run_id, "lines": chunk}
            chunk = []
    if chunk:
        yield {"type": "console", "run": run_id, "lines": chunk}


# --- Import ------------------------------------------------------------------------------


def load_media(line: Line, run: Run, context: LoadContext | None = None) -> None:
    fields = {name: value for name, value in line.items() if name not in ("type", "run", "id")}
    item = media.parse_item(fields, where="media")
    stored = media.media_ingest(run=run, items=[item])
    # the file's id -> the new item, for frozen report blocks (older files have none)
    if context is not None and "id" in line and stored.items:
        context.remember("media", line["id"], stored.items[0].pk)


def load_console(line: Line, run: Run) -> None:
    raw = line.get("lines")
    if not isinstance(raw, list) or not all(isinstance(row, list) and len(row) == 4 for row in raw):
        raise invalid("lines", "A list of [number, stream, text, timestamp].")
    shaped = [
        {"number": number, "stream": stream, "text": text, "timestamp": stamp}
        for number, stream, text, stamp in raw
    ]
    console.console_append(run=run, lines=console.parse_lines(shaped))
