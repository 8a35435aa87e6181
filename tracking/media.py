"""Media a run logs beside its numbers: images, tables, histograms and texts.

A client sends a batch of items (``POST /api/v1/runs/<id>/media``), each under
a key at a step, the way points are logged::

    {"key": "samples", "step": 300, "kind": "image", "caption": "epoch 3",
     "image": "<base64 of a PNG, JPEG, WebP or GIF file>"}
    {"key": "preds", "step": 300, "kind": "table",
     "columns": ["id", "label", "p"], "rows": [[1, "cat", 0.93], ...]}
    {"key": "grad/w1", "step": 300, "kind": "histogram",
     "counts": [3, 10, 4], "edges": [-1.0, -0.2, 0.4, 1.0]}
    {"key": "config", "step": 0, "kind": "text", "format": "yaml",
     "text": "lr: 0.001\nbatch: 64\n"}

The whole batch is checked before anything is written; a bad item is a 400
naming its field (``items[2].image``). An image is decoded with Pillow, never
trusted by its name or header: only what decodes fully, in one of the
formats above and within the pixel limit, is kept, with the format Pillow
found. A text is kept exactly as sent, as a UTF-8 file; its ``format`` (plain
text, JSON or YAML) only says how a page shows it and is not checked. The
limits below are the only place they are written.

An item is identified by its run, key, step and the SHA-256 of its content:
a step may hold several items of a key (a list of sample images), and the
same content sent again (a retried request) is counted as a duplicate, never
stored twice or replaced. Files are written before their rows, under
``<project>/<run>/media/<digest>.<ext>``, so a row never names a missing
file; a file whose row was never committed is harmless (the same content
writes the same file again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import itertools
import math
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, QuerySet
from django.utils import timezone
from PIL import Image

from kernel.errors import ApplicationError, invalid
from kernel.limits import max_length
from tracking import events, storage
from tracking.models import MediaItem, MediaKind, Run
from tracking.validation import clean_metric_key, clean_text

MAX_ITEMS_PER_REQUEST = 100
IMAGE_MAX_BYTES = 8 * 1024 * 1024  # one encoded image file
IMAGE_MAX_PIXELS = 4096 * 4096  # one image, width x height
REQUEST_MAX_PIXELS = 4 * IMAGE_MAX_PIXELS  # all images of one request: a bound on decoding
IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}  # Pillow's -> ours
TABLE_MAX_COLUMNS = 200
TABLE_MAX_ROWS = 10_000
TABLE_MAX_CELLS = 200_000
TABLE_MAX_CELL_CHARS = 2_000
HISTOGRAM_MAX_BINS = 512
TEXT_MAX_CHARS = 1_000_000  # one text, in characters (up to 4 MB of UTF-8)
TEXT_FORMATS = ("text", "json", "yaml")  # how a page shows a text; "text" unless sent
MAX_STEP = 2**63 - 1
CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
}
_FIELDS = {
    MediaKind.IMAGE: {"image"},
    MediaKind.TABLE: {"columns", "rows"},
    MediaKind.HISTOGRAM: {"counts", "edges"},
    MediaKind.TEXT: {"text"},
}
_OPTIONAL = {MediaKind.TEXT: {"format"}}  # a kind's fields that may be left out
_COMMON = {"key", "step", "kind", "caption", "timestamp"}


@dataclass
class Item:
    """One checked item, ready to store."""

    key: str
    step: int
    kind: str
    caption: str
    timestamp: float
    digest: str
    meta: dict[str, Any]
    content: bytes = field(repr=False, default=b"")  # the file to store; empty for a histogram
    extension: str = ""


@dataclass
class MediaResult:
    accepted: int
    duplicates: int
    items: list[MediaItem]


# --- Checking --------------------------------------------------------------------------------


def parse_items(raw: Any, *, field: str = "items") -> list[Item]:
    """The batch's items, each checked and normalised; the first problem is a 400."""
    if not isinstance(raw, list):
        raise invalid(field, "Must be a list of media items.")
    if not raw:
        raise invalid(field, "Send at least one item.")
    if len(raw) > MAX_ITEMS_PER_REQUEST:
        raise invalid(field, f"At most {MAX_ITEMS_PER_REQUEST} items per request.")
    now = time.time()
    items = [parse_item(item, where=f"{field}[{index}]", now=now) for index, item in enumerate(raw)]
    pixels = sum(item.meta.get("width", 0) * item.meta.get("height", 0) for item in items)
    if pixels > REQUEST_MAX_PIXELS:
        raise invalid(field, f"At most {REQUEST_MAX_PIXELS:,} image pixels per request.")
    return items


def parse_item(raw: Any, *, where: str, now: float | None = None) -> Item:
    if not isinstance(raw, dict):
        raise invalid(where, "Must be an object.")
    kind = raw.get("kind")
    if kind not in _FIELDS:
        raise invalid(f"{where}.kind", f"Must be one of {', '.join(_FIELDS)}.")
    unknown = sorted(set(raw) - _COMMON - _FIELDS[kind] - _OPTIONAL.get(kind, set()))
    if unknown:
        raise invalid(f"{where}.{unknown[0]}", f"Unknown field for a {kind}.")
    for name in sorted(_FIELDS[kind]):
        if name not in raw:
            raise invalid(f"{where}.{name}", f"A {kind} needs this field.")
    key = clean_metric_key(raw.get("key"), field=f"{where}.key")
    step = _step(raw.get("step"), f"{where}.step")
    caption = clean_text(
        raw.get("caption") or "",
        field=f"{where}.caption",
        max_length=max_length(MediaItem, "caption"),
    )
    timestamp = _timestamp(raw.get("timestamp"), f"{where}.timestamp", now or time.time())
    parse = {
        MediaKind.IMAGE: _image,
        MediaKind.TABLE: _table,
        MediaKind.HISTOGRAM: _histogram,
        MediaKind.TEXT: _text,
    }
    content, extension, meta = parse[kind](raw, where)
    hashed = content if content else orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(kind.encode() + b"\0" + hashed).hexdigest()
    return Item(key, step, kind, caption, timestamp, digest, meta, content, extension)


def _step(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_STEP:
        raise invalid(where, f"A step is an integer from 0 to {MAX_STEP}.")
    return int(raw)


def _timestamp(raw: Any, where: str, default: float) -> float:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise invalid(where, "Unix seconds, a finite number.")
    if not 0 <= raw < 1e11:
        raise invalid(where, "Unix seconds, a finite number.")
    return float(raw)


def _image(raw: dict[str, Any], where: str) -> tuple[bytes, str, dict[str, Any]]:
    where = f"{where}.image"
    text = raw["image"]
    if not isinstance(text, str) or not text:
        raise invalid(where, "The image file, base64-encoded.")
    if len(text) > (IMAGE_MAX_BYTES + 2) // 3 * 4:
        raise invalid(where, f"An image file is at most {IMAGE_MAX_BYTES:,} bytes.")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(where, "Not valid base64.") from None
    width, height, found = decode_image(data, where)
    return data, found, {"width": width, "height": height, "format": found}


def decode_image(data: bytes, where: str) -> tuple[int, int, str]:
    """(width, height, format) of an image that decodes fully; a 400 naming ``where`` if not.

    The size comes from the header and is checked before any pixel is decoded;
    ``verify()`` then checks the file's structure (chunk checksums, a cut-off
    end) and ``load()`` decodes every pixel.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                found = IMAGE_FORMATS.get(image.format or "")
                width, height = image.size
                if found is not None and width * height <= IMAGE_MAX_PIXELS:
                    image.verify()
            if found is None:
                raise invalid(
                    where,
                    f"Not a PNG, JPEG, WebP or GIF image (found {image.format or 'unknown'}).",
                )
            if width * height > IMAGE_MAX_PIXELS:
                raise _too_many_pixels(where, f"{width}x{height} is")
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except ApplicationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(where, "The image has") from None
    except Exception as error:  # Pillow raises many kinds for a bad file; none may become a 500
        raise invalid(where, f"Not an image that decodes: {type(error).__name__}.") from None
    return width, height, found


def _too_many_pixels(where: str, what: str) -> ApplicationError:
    return invalid(where, f"{what} more than {IMAGE_MAX_PIXELS:,} pixels.")


def _cell(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        if len(value) > TABLE_MAX_CELL_CHARS:
            raise invalid(where, f"A cell holds at most {TABLE_MAX_CELL_CHARS:,} characters.")
        return value
    raise invalid(where, "A cell is a string, a number, a boolean or null.")


def _table(raw: dict[str, Any], where: str) -> tuple[bytes, str, dict[str, Any]]:
    columns, rows = raw["columns"], raw["rows"]
    if not isinstance(columns, list) or not columns:
        raise invalid(f"{where}.columns", "A non-empty list of column names.")
    if len(columns) > TABLE_MAX_COLUMNS:
        raise invalid(f"{where}.columns", f"At most {TABLE_MAX_COLUMNS} columns.")
    names = [
        clean_text(name, field=f"{where}.columns[{index}]", max_length=250, required=True)
        for index, name in enumerate(columns)
    ]
    if len(set(names)) != len(names):
        raise invalid(f"{where}.columns", "Column names must differ.")
    if not isinstance(rows, list):
        raise invalid(f"{where}.rows", "A list of rows, each a list of cells.")
    if len(rows) > TABLE_MAX_ROWS:
        raise invalid(f"{where}.rows", f"At most {TABLE_MAX_ROWS:,} rows.")
    if len(rows) * len(names) > TABLE_MAX_CELLS:
        raise invalid(f"{where}.rows", f"At most {TABLE_MAX_CELLS:,} cells.")
    clean_rows = []
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise invalid(f"{where}.rows[{index}]", f"A row is a list of {len(names)} cells.")
        clean_rows.append([_cell(value, f"{where}.rows[{index}]") for value in row])
    content = orjson.dumps({"columns": names, "rows": clean_rows})
    return content, "json", {"columns": names, "rows": len(clean_rows)}


def _numbers(raw: Any, where: str, *, minimum: float | None = None) -> list[float]:
    if not isinstance(raw, list):
        raise invalid(where, "A list of numbers.")
    values = []
    for value in raw:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise invalid(where, "A list of finite numbers.")
        if minimum is not None and value < minimum:
            raise invalid(where, f"Numbers of at least {minimum:g}.")
        values.append(value)
    return values


def _histogram(raw: dict[str, Any], where: str) -> tuple[bytes, str, dict[str, Any]]:
    counts = _numbers(raw["counts"], f"{where}.counts", minimum=0)
    edges = _numbers(raw["edges"], f"{where}.edges")
    if not 1 <= len(counts) <= HISTOGRAM_MAX_BINS:
        raise invalid(f"{where}.counts", f"From 1 to {HISTOGRAM_MAX_BINS} bins.")
    if len(edges) != len(counts) + 1:
        raise invalid(f"{where}.edges", "One more edge than there are counts.")
    if any(low >= high for low, high in itertools.pairwise(edges)):
        raise invalid(f"{where}.edges", "Edges must increase.")
    return b"", "", {"counts": counts, "edges": edges}


def _text(raw: dict[str, Any], where: str) -> tuple[bytes, str, dict[str, Any]]:
    """A text kept exactly as sent (no trimming, line ends as they are), as UTF-8."""
    text, shown = raw["text"], raw.get("format", "text")
    if not isinstance(text, str) or not text:
        raise invalid(f"{where}.text", "A non-empty string.")
    if len(text) > TEXT_MAX_CHARS:
        raise invalid(f"{where}.text", f"A text holds at most {TEXT_MAX_CHARS:,} characters.")
    if "\x00" in text:
        raise invalid(f"{where}.text", "May not contain NUL characters.")
    try:
        content = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"), which JSON can spell
        raise invalid(f"{where}.text", "Not valid Unicode (a lone surrogate).") from None
    if shown not in TEXT_FORMATS:
        raise invalid(f"{where}.format", f"One of {', '.join(TEXT_FORMATS)}.")
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    return content, "txt", {"chars": len(text), "lines": lines, "format": shown}


# --- Storing ---------------------------------------------------------------------------------


def media_key(run: Run, item: Item) -> str:
    folder = f"{storage.project_key(run.project_id)}/{int(run.pk)}/media"
    return f"{folder}/{item.digest}.{item.extension}"


def media_ingest(*, run: Run, items: Sequence[Item]) -> MediaResult:
    """Store ``items`` (checked by :func:`parse_items`); what was stored before is a duplicate.

    A key holds one kind: a table sent under a key of images is a 400 naming it.
    """
    _check_kinds(run, items)
    unique = list({(i.key, i.step, i.digest): i for i in items}.values())
    known = _stored(run, unique)
    new = [item for item in unique if (item.key, item.step, item.digest) not in known]
    for item in new:
        if item.content:
            storage.save(media_key(run, item), io.BytesIO(item.content))
    rows = [_row(run, item) for item in new]
    try:
        with transaction.atomic():
            MediaItem.objects.bulk_create(rows)
            Run.objects.filter(pk=run.pk).update(last_seen_at=timezone.now())
            if rows:
                events.publish(events.MediaLogged(run.pk, run.project_id, _summary(rows)))
    except IntegrityError:
        # A concurrent request stored some of them first: keep what is new, one at a time.
        rows = _store_one_by_one(run, new)
    return MediaResult(accepted=len(rows), duplicates=len(items) - len(rows), items=rows)


def _check_kinds(run: Run, items: Sequence[Item], *, field: str = "items") -> None:
    rows = MediaItem.objects.filter(run=run, key__in={item.key for item in items})
    kinds = dict(rows.values_list("key", "kind").distinct())
    for index, item in enumerate(items):
        known = kinds.setdefault(item.key, item.kind)
        if known != item.kind:
            raise invalid(
                f"{field}[{index}].kind",
                f"{item.key!r} holds {known}s; log a {item.kind} under another key.",
            )


def _stored(run: Run, items: Iterable[Item]) -> set[tuple[str, int, str]]:
    digests = {item.digest for item in items}
    found = MediaItem.objects.filter(run=run, digest__in=digests).values_list(
        "key", "step", "digest"
    )
    return set(found)


def _row(run: Run, item: Item) -> MediaItem:
    return MediaItem(
        run=run,
        key=item.key,
        step=item.step,
        kind=item.kind,
        caption=item.caption,
        timestamp=item.timestamp,
        digest=item.digest,
        file=media_key(run, item) if item.content else "",
        size=len(item.content),
        meta=item.meta,
    )


def _store_one_by_one(run: Run, items: list[Item]) -> list[MediaItem]:
    stored = []
    for item in items:
        row = _row(run, item)
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:
            continue
        stored.append(row)
    if stored:
        events.publish(events.MediaLogged(run.pk, run.project_id, _summary(stored)))
    return stored


def _summary(rows: Iterable[MediaItem]) -> dict[str, dict[str, Any]]:
    """{key: {"kind": ..., "steps": [...]}} of what was stored: the live message."""
    summary: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = summary.setdefault(row.key, {"kind": row.kind, "steps": []})
        if row.step not in entry["steps"]:
            entry["steps"].append(row.step)
    return summary


def delete_items(rows: QuerySet[MediaItem]) -> int:
    """Delete ``rows``, and once that commits the files under a run's ``media/`` folder that
    no remaining item names (an item made from an artifact may point at the artifact itself,
    which is not ours to delete)."""
    files = {file for file in rows.values_list("file", flat=True) if "/media/" in file}
    deleted, _ = rows.delete()
    orphans = files - set(MediaItem.objects.filter(file__in=files).values_list("file", flat=True))
    if orphans:
        transaction.on_commit(lambda: _delete_files(sorted(orphans)))
    return deleted


def _delete_files(keys: list[str]) -> None:
    for key in keys:
        storage.delete(key)


def content_type(item: MediaItem) -> str:
    if item.kind == MediaKind.TEXT:  # whatever the file's name (notes.md, config.yaml)
        return "text/plain; charset=utf-8"
    extension = item.file.rsplit(".", 1)[-1]
    return CONTENT_TYPES.get(extension, "application/octet-stream")


# --- Reading ---------------------------------------------------------------------------------

MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100


def media_keys(run: Run) -> list[dict[str, Any]]:
    """Each key the run logged media under: its kind, item count and step range."""
    rows = (
        MediaItem.objects.filter(run=run)
        .values("key", "kind")
        .annotate(count=Count("id"), first_step=Min("step"), last_step=Max("step"))
        .order_by("key", "kind")
    )
    return list(rows)


def media_steps(run: Run, key: str) -> list[int]:
    """The steps ``key`` has items at, ascending: what a step slider moves over."""
    rows = MediaItem.objects.filter(run=run, key=key).values_list("step", flat=True)
    return list(rows.distinct().order_by("step"))


def media_items(
    run: Run,
    key: str,
    *,
    step: int | None = None,
    step_min: int | None = None,
    step_max: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[MediaItem]:
    """The items of ``key`` by step, then in the order they were logged."""
    rows = MediaItem.objects.filter(run=run, key=key)
    if step is not None:
        rows = rows.filter(step=step)
    if step_min is not None:
        rows = rows.filter(step__gte=step_min)
    if step_max is not None:
        rows = rows.filter(step__lte=step_max)
    return list(rows.order_by("step", "id")[:limit])


def item_dict(item: MediaItem, file_url: str) -> dict[str, Any]:
    """An item as the API shows it: the file's URL for images, tables and texts, the bins
    inline."""
    shown: dict[str, Any] = {
        "id": item.pk,
        "key": item.key,
        "step": item.step,
        "kind": item.kind,
        "caption": item.caption,
        "timestamp": item.timestamp,
        "digest": item.digest,
    }
    if item.file:
        shown.update(url=file_url, size=item.size)
    return {**shown, **item.meta}


def open_file(item: MediaItem) -> storage.StoredFile:
    return storage.StoredFile(item.file)


# --- Files already in storage (MLflow's artifacts: tracking.mlflow.media_artifacts) ---------


def image_from_file(
    data: bytes, *, key: str, step: int, timestamp: float | None = None, where: str = "file"
) -> Item:
    """An image item for the bytes of a file already stored, or a 400 naming ``where``.

    The bytes go through :func:`parse_item` exactly as an uploaded image does
    (size, full decode, pixel limit, key and step rules): a stored file earns no
    trust an upload would not.
    """
    if len(data) > IMAGE_MAX_BYTES:
        raise invalid(f"{where}.image", f"An image file is at most {IMAGE_MAX_BYTES:,} bytes.")
    raw = {
        "key": key,
        "step": step,
        "kind": MediaKind.IMAGE,
        "timestamp": timestamp,
        "image": base64.b64encode(data).decode(),
    }
    return parse_item(raw, where=where)


def text_from_file(
    data: bytes, *, key: str, step: int, shown: str = "text", where: str = "file"
) -> Item:
    """A text item for the bytes of a file already stored, or a 400 naming ``where``: the
    file must decode as UTF-8, and then passes :func:`parse_item` as an upload does."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(f"{where}.text", "Not UTF-8 text.") from None
    raw = {"key": key, "step": step, "kind": MediaKind.TEXT, "text": text, "format": shown}
    return parse_item(raw, where=where)


def media_from_stored_file(*, run: Run, item: Item, file_key: str) -> MediaResult:
    """Keep ``item`` as a row naming ``file_key``, a stored file holding exactly ``item.content``.

    Nothing is copied: the row points at the file already there (the caller
    read ``item.content`` from it), whose extension must be ``item.extension``
    so that :func:`content_type` names the format that was decoded (a text is
    served as text whatever its name). The same
    content at the same key and step is a duplicate, as in :func:`media_ingest`.
    """
    named = item.kind == MediaKind.TEXT or file_key.endswith(f".{item.extension}")
    if item.extension and not named:
        raise ValueError(f"{file_key!r} does not end in .{item.extension}")
    if (item.key, item.step, item.digest) in _stored(run, [item]):
        return MediaResult(accepted=0, duplicates=1, items=[])
    row = _row(run, item)
    row.file = file_key
    try:
        with transaction.atomic():
            row.save()
            Run.objects.filter(pk=run.pk).update(last_seen_at=timezone.now())
            events.publish(events.MediaLogged(run.pk, run.project_id, _summary([row])))
    except IntegrityError:  # a concurrent request stored it first
        return MediaResult(accepted=0, duplicates=1, items=[])
    return MediaResult(accepted=1, duplicates=0, items=[row])
