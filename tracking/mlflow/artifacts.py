"""Run artifacts behind MLflow's proxied ``mlflow-artifacts`` paths, kept by ``tracking.storage``.

A run's files are stored under ``<project_id>/<run_id>/artifacts/``, the same
``<experiment_id>/<run_id>/artifacts`` tail its ``artifact_uri`` names.
Every path from a request is checked twice: textually (no ``..``, no absolute
path, no backslash, no NUL) and, once joined, against the run's folder after
symlinks resolve (on the filesystem storage). An upload is counted as it streams
in; one over the limit, or one that fails, leaves nothing behind.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TypedDict

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import transaction
from django.http import FileResponse

from kernel.errors import ApplicationError, NotFound
from tracking import events, selectors, storage
from tracking.models import Run

TEMP_PREFIX = storage.TEMP_PREFIX  # hidden from listings; refused as a name
MAX_NAME_BYTES = 255  # what ext4 and most file systems allow for one component
RUN_PREFIX = re.compile(r"[0-9]{1,19}/[0-9]{1,19}/artifacts")


class FileEntry(TypedDict, total=False):
    """One row of MLflow's ``ListArtifacts``: ``file_size`` only for files."""

    path: str
    is_dir: bool
    file_size: int


class ArtifactFile(TypedDict):
    path: str
    size: int


class TooLarge(ApplicationError):
    status = 413

    def __init__(self, limit: int) -> None:
        message = f"An artifact may hold at most {limit} bytes (ARTIFACTS_MAX_BYTES)."
        super().__init__("too_large", message)


class NoSuchArtifact(ApplicationError):
    """MLflow's 404 for a file a run does not have, naming where it would be stored."""

    status = 404

    def __init__(self, stored: str) -> None:
        super().__init__("not_found", f"No such artifact: '{stored}'")


@dataclass(frozen=True)
class Location:
    """A place inside one run's artifact folder; ``relative`` is "" for the folder itself."""

    run: Run
    relative: str

    @property
    def root(self) -> str:
        return storage.run_key(self.run.project_id, self.run.pk)

    @property
    def key(self) -> str:
        return storage.run_key(self.run.project_id, self.run.pk, self.relative)


def _unsafe(path: str) -> ApplicationError:
    return ApplicationError("invalid", f"Invalid artifact path {path!r}.", field="path")


def clean_path(path: str) -> list[str]:
    """The components of a relative ``path``; anything that could climb out is refused."""
    if "\\" in path or "\x00" in path or path.startswith("/"):
        raise _unsafe(path)
    parts = path.removesuffix("/").split("/") if path else []
    for part in parts:
        if part in ("", ".", "..") or part.startswith(TEMP_PREFIX):
            raise _unsafe(path)
        if len(part.encode()) > MAX_NAME_BYTES:
            raise _unsafe(path)
    return parts


def run_root(run: Run) -> Path:
    """The run's folder on the filesystem storage."""
    return storage.run_folder(run.project_id, run.pk)


def run_location(run: Run, relative: str) -> Location:
    """``relative`` inside ``run``'s artifact folder, refused if it leads outside."""
    location = Location(run, "/".join(clean_path(relative)))
    if not storage.contained(location.root, location.key):
        raise _unsafe(relative)
    return location


def locate(user: User, path: str, *, write: bool) -> Location:
    """Where ``<experiment_id>/<run_id>/artifacts/<rel>`` points, if ``user`` may go there.

    A run the user cannot see, or one named with another experiment id, is
    ``NotFound``; a viewer asking to write is ``PermissionDenied``.
    """
    parts = clean_path(path)
    prefix = "/".join(parts[:3])
    if not RUN_PREFIX.fullmatch(prefix):
        message = f"An artifact path starts with <experiment_id>/<run_id>/artifacts, not {path!r}."
        raise ApplicationError("invalid", message, field="path")
    experiment_id, run_id, _ = parts[:3]
    run = selectors.run_get_for_user(user, int(run_id), write=write)
    if experiment_id != str(run.project_id) or run_id != str(run.pk):
        raise NotFound("Run")
    return run_location(run, "/".join(parts[3:]))


# --- Reads ---------------------------------------------------------------------------------


def artifact_file(location: Location) -> storage.StoredFile:
    if not location.relative or storage.kind(location.key) != "file":
        raise NotFound(f"Artifact {location.relative!r}")
    return storage.StoredFile(location.key)


def artifact_list(location: Location) -> list[FileEntry]:
    """The folder's direct children by name; a missing folder or a file lists nothing."""
    return [_file_entry(entry) for entry in storage.listing(location.root, location.key)]


def _file_entry(entry: storage.Entry) -> FileEntry:
    if entry["is_dir"]:
        return {"path": entry["name"], "is_dir": True}
    return {"path": entry["name"], "is_dir": False, "file_size": entry["size"]}


def artifact_walk(run: Run) -> list[ArtifactFile]:
    """Every file of the run, by path relative to its artifact folder."""
    root = storage.run_key(run.project_id, run.pk)
    files: list[ArtifactFile] = [{"path": path, "size": size} for path, size in storage.walk(root)]
    return sorted(files, key=lambda file: file["path"])


class ArtifactResponse(FileResponse):
    """A download that streams under ASGI too.

    Django's ASGI handler would otherwise gather a synchronous file iterator
    into one list: a 1 GB artifact held in memory. Here each block is read in
    a worker thread and sent as it arrives.
    """

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read = sync_to_async(self._read_block, thread_sensitive=False)
        while block := await read():
            yield block

    def _read_block(self) -> bytes:
        assert self.file_to_stream is not None  # set by FileResponse from the file given
        return self.file_to_stream.read(self.block_size)


# Types a browser only ever shows, never runs: served as themselves. Everything else
# (HTML, SVG, JavaScript, CSS...) goes out as opaque bytes, so with ``nosniff`` a page
# that loads an uploaded file as a script or a style gets nothing it would execute.
INERT_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "text/plain",
        "text/csv",
        "application/json",
    }
)


def file_response(
    file: Path | storage.StoredFile, content_type: str | None = None
) -> ArtifactResponse:
    """An attachment, never rendered inline or run: an uploaded page must not act as our site.

    ``content_type`` replaces the guess from the name, and is held to the same rule.
    """
    # The response closes the file once it has been sent.
    if isinstance(file, storage.StoredFile):
        stream, size = file.open_sized()
        response = ArtifactResponse(stream, as_attachment=True, filename=file.name)
        response["Content-Length"] = size  # an object store's body does not seek
    else:
        response = ArtifactResponse(file.open("rb"), as_attachment=True, filename=file.name)
    if content_type is not None:
        response["Content-Type"] = content_type
    if response["Content-Type"].split(";")[0].strip() not in INERT_TYPES:
        response["Content-Type"] = "application/octet-stream"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def inline_response(file: storage.StoredFile, content_type: str) -> ArtifactResponse:
    """A file Labbook checked itself (a decoded image, a table it wrote): shown inline.

    Content-addressed, so a browser may keep it; still sandboxed and never sniffed.
    """
    stream, size = file.open_sized()
    response = ArtifactResponse(stream, content_type=content_type)
    response["Content-Length"] = size
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


# --- MLflow's tracking API: artifacts/list and get-artifact by run and run-relative path -----

# Served as text/plain by MLflow (``mlflow.utils.mime_type_utils``): the extension, or the
# whole name when there is none.
MLFLOW_TEXT_EXTENSIONS = frozenset(
    {
        *("txt", "log", "err", "cfg", "conf", "cnf", "cf", "ini", "properties", "prop"),
        *("hocon", "toml", "yaml", "yml", "xml", "json", "js", "py", "py3", "csv", "tsv"),
        *("md", "rst", "ipynb", "MLmodel", "MLproject"),
    }
)
INVALID_PATH = "Invalid path"  # MLflow's whole message for a path that could climb out


def _decoded(path: str) -> str:
    """``path`` percent-decoded until it stops changing, as MLflow reads it (``_decode``)."""
    for _ in range(10):
        parsed = urllib.parse.urlunparse(urllib.parse.urlparse(urllib.parse.unquote(path)))
        if parsed == path:
            return path
        path = parsed
    raise ApplicationError("invalid", INVALID_PATH)


def mlflow_path(path: str) -> str:
    """A run-relative path as MLflow's ``validate_path_is_safe`` takes it, or "Invalid path".

    Decoded first (``%2e%2e`` is ``..``), control characters written as ``%xx``; a
    ``#``, a ``..`` component or an absolute path (POSIX, Windows or ``file:``) is refused.
    """
    path = "".join(
        f"%{ord(char):02x}" if ord(char) < 32 or ord(char) == 127 else char
        for char in _decoded(path)
    )
    if "#" in path:
        raise ApplicationError("invalid", INVALID_PATH)
    if path.startswith("file:"):  # MLflow reads a file URI as the path it names
        path = urllib.parse.unquote(urllib.parse.urlparse(path).path)
    if (
        ".." in path.split("/")
        or PurePosixPath(path).is_absolute()
        or PureWindowsPath(path).is_absolute()
    ):
        raise ApplicationError("invalid", INVALID_PATH)
    return path


def _stored(run: Run, path: str) -> Location | None:
    """Where ``path`` (already through ``mlflow_path``) is kept; None for a name no upload
    could have made (a backslash, our temporary prefix, an overlong component)."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    try:
        return run_location(run, "/".join(parts))
    except ApplicationError:
        return None


def run_listing(run: Run, path: str) -> list[FileEntry]:
    """One folder's children named from the run's root (``d/b.bin``), as MLflow's
    ``ListArtifacts`` names them; a file or a missing folder lists nothing."""
    location = _stored(run, path)
    entries = artifact_list(location) if location is not None else []
    for entry in entries:
        entry["path"] = posixpath.join(path, entry["path"]) if path else entry["path"]
    return entries


def run_file(run: Run, path: str) -> storage.StoredFile:
    """The file at ``path``; MLflow's 404 or 400 (a folder), naming where it would be stored."""
    stored = posixpath.join(f"{run.project_id}/{run.pk}/artifacts", path)
    location = _stored(run, path)
    found = storage.kind(location.key) if location is not None else None
    if location is None or found is None:
        raise NoSuchArtifact(stored)
    if found == "folder":
        message = f"Artifact path refers to a directory, not a file: '{stored}'"
        raise ApplicationError("invalid", message)
    return storage.StoredFile(location.key)


def mlflow_type(file: Path | storage.StoredFile) -> str:
    """The content type MLflow's ``get-artifact`` sends (``file_response`` still defangs it)."""
    path = PurePosixPath(file.name)
    extension = path.suffix.removeprefix(".") or path.name
    if extension in MLFLOW_TEXT_EXTENSIONS:
        return "text/plain"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


# --- Writes ---------------------------------------------------------------------------------


class _Counted:
    """The upload's body, refused as ``TooLarge`` the moment it passes the limit."""

    def __init__(self, stream: storage.Readable, max_bytes: int) -> None:
        self.stream, self.max_bytes, self.size = stream, max_bytes, 0

    def read(self, size: int = -1, /) -> bytes:
        chunk = self.stream.read(size)
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise TooLarge(self.max_bytes)
        return chunk


def _parent_is_file() -> ApplicationError:
    return ApplicationError("invalid", "A parent of the artifact is a file.", field="path")


def _check_target(location: Location) -> None:
    """A folder is no file to replace, nor can a file hold one."""
    if storage.kind(location.key) == "folder":
        raise ApplicationError("invalid", f"{location.relative!r} is a folder.", field="path")
    parents = [str(parent) for parent in PurePosixPath(location.relative).parents][:-1]  # not "."
    if any(storage.kind(posixpath.join(location.root, parent)) == "file" for parent in parents):
        raise _parent_is_file()


def artifact_write(
    *, location: Location, stream: storage.Readable, max_bytes: int, length: int | None = None
) -> int:
    """Store ``stream`` at ``location``, replacing any file there; the size written.

    ``length`` (the request's Content-Length) lets an oversized upload be
    refused before a byte is read; the count while copying catches the rest.
    """
    if not location.relative:
        raise ApplicationError("invalid", "Name the file to upload.", field="path")
    if length is not None and length > max_bytes:
        raise TooLarge(max_bytes)
    _check_target(location)
    counted = _Counted(stream, max_bytes)
    try:
        storage.save(location.key, counted)
    except storage.ParentIsFile:
        raise _parent_is_file() from None
    return counted.size


def artifact_delete(*, location: Location) -> None:
    """Delete a file or a whole folder; nothing there is no error (a retried DELETE)."""
    storage.delete(location.key)


def artifacts_changed(location: Location) -> None:
    """After a write or a delete: the run's page shows its files again.

    The storage is no transaction; the event's own one commits at once.
    """
    with transaction.atomic():
        events.publish(events.RunArtifactsChanged(location.run.pk, location.run.project_id))
