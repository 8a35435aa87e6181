"""MLflow's images, tables, figures and texts: plain artifacts to MLflow, native media in
Labbook too.

What the unmodified client (mlflow 3.x, ``MlflowClient`` and the fluent API) sends:

* ``log_image(image, key="samples", step=3)``: a PUT of
  ``images/samples+step+3+timestamp+<ms>+<uuid>.png`` (a ``/`` in the key is
  written ``~``), a PUT of a smaller ``<same name>+compressed.webp`` beside it,
  and the tag ``mlflow.loggedImages=True``. The fluent ``mlflow.log_image``
  sends them from a background thread, so the tag may come before the files.
* ``log_image(image, artifact_file="x.png")`` and ``log_figure(fig, "fig.png")``:
  one PUT of the file, in the format its extension names (Pillow, matplotlib).
* ``log_table(data, artifact_file="preds.json")``: a PUT of pandas' ``split``
  JSON (``{"columns": [...], "data": [[...]]}``), then, if the tag does not list
  the path yet, ``mlflow.loggedArtifacts``, a JSON list of
  ``{"path": "preds.json", "type": "table"}``. Logged again to the same file,
  the client downloads it, appends the new rows and PUTs the whole table back;
  the tag is not sent again.
* ``log_text(text, "notes/summary.txt")`` and ``log_dict(d, "config.json")``
  (``json.dump``, indented) or ``"config.yaml"`` (``yaml.safe_dump``): one PUT
  of the file, UTF-8.

So a file becomes a media item (``tracking.media``) when its upload completes:
a stepped image at its key and step; any other PNG, JPEG, WebP or GIF file at
key = its path, step 0; a JSON file the run's ``mlflow.loggedArtifacts`` lists
as a table (also when that tag is set, the file being there first) at key = its
path, step 0; a ``.txt``, ``.log``, ``.md``, ``.json`` (one not listed as a table),
``.yaml`` or ``.yml`` file of at most ``TEXT_FILE_MAX_BYTES`` that decodes as
UTF-8 as a text at key = its path, step 0, its format (json, yaml, text) by its
extension. ``log_table`` uploads its file before it sets the tag, so its file
is a text until the tag comes, and then a table. MLflow's thumbnails
(``+compressed.webp``) and the images of table cells (``table_images/``) are not
items. Each file passes the checks an upload to
``/api/v1/runs/<id>/media`` passes (a full decode, the table limits); one that
fails stays a plain file, and nothing in MLflow's answers changes either way.

An item made here mirrors its file, named in ``meta["artifact"]``: when the
file is replaced (an appended table), the item of its old content is removed
and one for the new content is made; when the file is deleted, its item goes.
An image item points at the artifact itself (nothing is copied) when the file's
extension names the format found in it; otherwise (``.jpg``), and for tables,
which are rewritten as Labbook's ``{"columns", "rows"}``, and texts, kept as
``<digest>.txt``, the item keeps a copy under the run's ``media/`` folder.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import transaction
from django.db.models import Q, QuerySet

from kernel.errors import ApplicationError, invalid
from tracking import media, storage
from tracking.mlflow import artifacts, convert
from tracking.models import MediaItem, MediaKind, Run

logger = logging.getLogger(__name__)

TABLES_TAG = "mlflow.loggedArtifacts"  # MLflow's list of the run's tables
ARTIFACT = "artifact"  # the key of an item's meta naming the file it mirrors
IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "webp", "gif"})
TABLE_FILE_MAX_BYTES = 16 * 1024 * 1024  # a table file read whole to check it
TABLE_IMAGES = "table_images/"
# The files of an MLflow model a client logs as run artifacts (log_model before MLflow 3):
# the model's own package, not something a run shows.
MODEL_FILES = frozenset(
    {
        "MLmodel",
        "conda.yaml",
        "python_env.yaml",
        "requirements.txt",
        "registered_model_meta",
        "input_example.json",
        "serving_input_example.json",
    }
)  # where log_table puts the images of its cells
# Text files that become items, and the format each is shown in (log_text, log_dict).
TEXT_FORMATS = {
    **{"txt": "text", "log": "text", "md": "text"},
    **{"json": "json", "yaml": "yaml", "yml": "yaml"},
}
# At most TEXT_MAX_CHARS characters, whatever the encoding: a bigger file stays a file.
TEXT_FILE_MAX_BYTES = media.TEXT_MAX_CHARS
# Files logged without a key and step (log_figure, log_text, log_dict, log_artifact of a .png
# or a .json) that become items, per run: a folder of a dataset's 10,000 images or JSON files
# stays files, not 10,000 panels.
MAX_PLAIN_FILES = 100
PLAIN_KINDS = (MediaKind.IMAGE, MediaKind.TEXT)  # what MAX_PLAIN_FILES counts
STEPPED_IMAGE = re.compile(
    r"images/(?P<key>[A-Za-z0-9_\-. ~]+)\+step\+(?P<step>-?[0-9]+)"
    r"\+timestamp\+(?P<timestamp>[0-9]+)\+[0-9a-fA-F-]+(?P<compressed>\+compressed)?"
    r"\.(?:png|webp)"
)


@dataclass(frozen=True)
class Source:
    """The media item a file stands for: ``kind`` at ``key`` and ``step``."""

    kind: str
    key: str
    step: int = 0
    timestamp: float | None = None  # Unix seconds; None: when the file arrived


# --- What a file stands for -------------------------------------------------------------------


def source_of(path: str, tags: Mapping[str, str]) -> Source | None:
    """The item the file at run-relative ``path`` stands for, by its name and the run's
    MLflow ``tags``; None for a plain file."""
    if path.startswith(TABLE_IMAGES) or posixpath.basename(path) in MODEL_FILES:
        return None
    stepped = STEPPED_IMAGE.fullmatch(path)
    if stepped is not None:
        step = int(stepped["step"])
        if stepped["compressed"] or step < 0:  # the thumbnail; a step Labbook cannot hold
            return None
        key = stepped["key"].replace("~", "/")  # MLflow's key has no "~" of its own
        return Source(MediaKind.IMAGE, key, step, int(stepped["timestamp"]) / 1000)
    if path.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS:
        return Source(MediaKind.IMAGE, path)
    if path.endswith(".json") and path in table_paths(tags):
        return Source(MediaKind.TABLE, path)
    if text_format(path) is not None:
        return Source(MediaKind.TEXT, path)
    return None


def text_format(path: str) -> str | None:
    """How a text file at ``path`` is shown (json, yaml, text); None for another file."""
    extension = posixpath.splitext(path)[1][1:].lower()
    return TEXT_FORMATS.get(extension)


def table_paths(tags: Mapping[str, str]) -> list[str]:
    """The JSON files ``mlflow.loggedArtifacts`` lists as tables (a Parquet table stays a file)."""
    try:
        listed = json.loads(tags.get(TABLES_TAG) or "[]")
    except ValueError:
        return []
    if not isinstance(listed, list):
        return []
    paths = [
        posixpath.normpath(entry["path"])
        for entry in listed
        if isinstance(entry, dict)
        and entry.get("type") == "table"
        and isinstance(entry.get("path"), str)
        and entry["path"].endswith(".json")
    ]
    return list(dict.fromkeys(paths))


def _tags(run: Run) -> Mapping[str, str]:
    tags: Mapping[str, str] = run.metadata.get(convert.TAGS, {})
    return tags


# --- Hooks: an upload, a tag, a delete ----------------------------------------------------------


def artifact_stored(location: artifacts.Location) -> None:
    """After an upload completes: mirror the file as a media item if it stands for one.

    The file is stored and the client told so whatever happens here, so no
    failure goes up: a file that fails the checks is a plain file, and anything
    unexpected is logged rather than turned into an error for an upload that worked.
    """
    source = source_of(location.relative, _tags(location.run))
    if source is None or _too_many_plain_files(location, source):
        return
    _mirror_safely(location, source)


def _too_many_plain_files(location: artifacts.Location, source: Source) -> bool:
    """True when the run already has MAX_PLAIN_FILES items of files without a key and step
    (images and texts; a table is one log_table asked for) and this file has none."""
    if source.kind not in PLAIN_KINDS or STEPPED_IMAGE.fullmatch(location.relative):
        return False
    if _mirroring(location.run, location.relative).exists():
        return False  # a replaced file keeps its item current
    mirrored = MediaItem.objects.filter(
        run=location.run, kind__in=PLAIN_KINDS, step=0, meta__has_key=ARTIFACT
    )
    return mirrored.count() >= MAX_PLAIN_FILES


def tables_tagged(run: Run, value: str) -> None:
    """After ``mlflow.loggedArtifacts`` is set: mirror each table it lists that is stored
    and has no table item yet (later uploads of a listed file keep its item current). The
    text item its upload made, before the tag said it is a table, is replaced."""
    for path in table_paths({TABLES_TAG: value}):
        try:
            location = artifacts.run_location(run, path)
        except ApplicationError:
            continue
        tabled = _mirroring(run, path).filter(kind=MediaKind.TABLE).exists()
        if storage.kind(location.key) == "file" and not tabled:
            _mirror_safely(location, Source(MediaKind.TABLE, path))


def artifact_deleted(location: artifacts.Location) -> None:
    """After a DELETE: the items of the files that are gone go too."""
    rows = MediaItem.objects.filter(run=location.run)
    if location.relative:
        folder = f"{location.relative}/"
        rows = rows.filter(
            Q(**{f"meta__{ARTIFACT}": location.relative})
            | Q(**{f"meta__{ARTIFACT}__startswith": folder})
        )
    else:
        rows = rows.filter(meta__has_key=ARTIFACT)
    media.delete_items(rows)


# --- Mirroring one file -----------------------------------------------------------------------


def _mirror_safely(location: artifacts.Location, source: Source) -> None:
    try:
        mirror(location, source)
    except Exception:  # the upload succeeded; see artifact_stored
        logger.exception("could not keep %s of run %s as media", location.relative, location.run.pk)


def mirror(location: artifacts.Location, source: Source) -> MediaItem | None:
    """Make the run's media match the file at ``location``: its item, or none if it fails
    the checks; an item made from the file's earlier content is removed."""
    try:
        item = file_item(location, source)
    except ApplicationError as error:
        logger.info("%s stays a plain file: %s", location.relative, error)
        item = None
    with transaction.atomic():
        stale = _mirroring(location.run, location.relative)
        if item is not None:
            stale = stale.exclude(key=item.key, step=item.step, digest=item.digest)
        media.delete_items(stale)
        return _keep(location, item) if item is not None else None


def _mirroring(run: Run, path: str) -> QuerySet[MediaItem]:
    return MediaItem.objects.filter(run=run, **{f"meta__{ARTIFACT}": path})


def file_item(location: artifacts.Location, source: Source) -> media.Item:
    """The checked item for the file at ``location``; a 400-style error if it does not pass."""
    where = location.relative
    if source.kind == MediaKind.IMAGE:
        data = _read(location.key, media.IMAGE_MAX_BYTES)
        item = media.image_from_file(
            data, key=source.key, step=source.step, timestamp=source.timestamp, where=where
        )
    elif source.kind == MediaKind.TEXT:
        data = _read(location.key, TEXT_FILE_MAX_BYTES)
        if len(data) > TEXT_FILE_MAX_BYTES:
            raise invalid(where, f"A text file is at most {TEXT_FILE_MAX_BYTES:,} bytes.")
        shown = text_format(location.relative) or "text"
        item = media.text_from_file(
            data, key=source.key, step=source.step, shown=shown, where=where
        )
    else:
        data = _read(location.key, TABLE_FILE_MAX_BYTES)
        if len(data) > TABLE_FILE_MAX_BYTES:
            raise invalid(where, f"A table file is read up to {TABLE_FILE_MAX_BYTES:,} bytes.")
        columns, rows = split_table(data, where)
        raw = {"key": source.key, "step": source.step, "kind": MediaKind.TABLE}
        item = media.parse_item({**raw, "columns": columns, "rows": rows}, where=where)
    item.meta[ARTIFACT] = location.relative
    return item


def _read(key: str, limit: int) -> bytes:
    """Up to one byte past ``limit`` of the stored file: enough to tell it is too big."""
    file = storage.StoredFile(key).open("rb")  # an object store's body: closed, not a context
    try:
        data: bytes = file.read(limit + 1)
    finally:
        file.close()
    return data


def split_table(data: bytes, where: str) -> tuple[Any, Any]:
    """Columns and rows of pandas' ``split`` JSON, as ``log_table`` writes it.

    Column labels that are numbers (a frame built from lists) become their
    text; everything else is checked by ``tracking.media``'s table rules.
    """
    try:
        table = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise invalid(where, "Not JSON.") from None
    if not isinstance(table, dict) or "columns" not in table or "data" not in table:
        raise invalid(where, 'Not a table written as {"columns": [...], "data": [...]}.')
    columns = table["columns"]
    if isinstance(columns, list):
        columns = [
            str(name) if isinstance(name, int | float) and not isinstance(name, bool) else name
            for name in columns
        ]
    return columns, table["data"]


def _keep(location: artifacts.Location, item: media.Item) -> MediaItem | None:
    """Store ``item``'s row: pointing at the artifact when its name says its format."""
    run = location.run
    points_at_artifact = item.kind == MediaKind.TEXT or (
        item.kind == MediaKind.IMAGE and location.key.endswith(f".{item.extension}")
    )
    if points_at_artifact:  # a text's bytes are the file's: it is served as text
        result = media.media_from_stored_file(run=run, item=item, file_key=location.key)
    else:
        result = media.media_ingest(run=run, items=[item])
    return result.items[0] if result.items else None
