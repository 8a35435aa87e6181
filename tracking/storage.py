"""Where a run's files are kept: the ``artifacts`` storage of Django's ``STORAGES``.

Keys name them as ``<project id>/<run id>/artifacts/<path>``, the tail a run's
``artifact_uri`` names. The storage is the filesystem under
``LABBOOK_HOME/artifacts`` by default (read at each use: tests move the home) or an
S3-compatible bucket (django-storages) when ``ARTIFACTS_S3_BUCKET`` is set, so
that several web machines share the files. Every module that touches artifact
files goes through here; callers have already checked the path's text
(``tracking.mlflow.artifacts.clean_path``).

On the filesystem an upload lands in a hidden temporary file beside the target
and is renamed over it, so a reader never sees half a file; an object store
shows an object only once its upload completes. Both are read and written in
blocks: a file is never held whole in memory.
"""

from __future__ import annotations

import itertools
import logging
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypedDict

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

logger = logging.getLogger(__name__)

ALIAS = "artifacts"
TEMP_PREFIX = ".labbook-upload-"  # an upload in progress on disk: hidden from listings
CHUNK_BYTES = 65536
Kind = Literal["file", "folder"]


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Entry(TypedDict, total=False):
    """One child of a folder: ``size`` only for files."""

    name: str
    is_dir: bool
    size: int


class ParentIsFile(Exception):
    """A file stands where the new file's folder would go."""


class ArtifactFileStorage(FileSystemStorage):
    """``LABBOOK_HOME/artifacts`` unless ``location`` is given, read at each use."""

    @property
    def base_location(self) -> str:
        given = getattr(self, "_location", None)  # the ``location`` option, if any
        return str(given or Path(settings.LABBOOK_HOME) / "artifacts")

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)


# --- Keys -----------------------------------------------------------------------------------


def project_key(project_id: int) -> str:
    return str(int(project_id))


def run_key(project_id: int, run_id: int, relative: str = "") -> str:
    root = f"{project_key(project_id)}/{int(run_id)}/artifacts"
    return f"{root}/{relative}" if relative else root


def project_folder(project_id: int) -> Path:
    """The project's folder on the filesystem storage (tests and the importer's disk)."""
    return _local_path(project_key(project_id))


def run_folder(project_id: int, run_id: int) -> Path:
    return _local_path(run_key(project_id, run_id))


# --- The configured storage -------------------------------------------------------------------


def _storage() -> Storage:
    return storages[ALIAS]


def _disk() -> FileSystemStorage | None:
    store = _storage()
    return store if isinstance(store, FileSystemStorage) else None


def _bucket() -> Any:
    """The boto3 ``Bucket`` of an S3 storage (its listings carry sizes; its bodies stream)."""
    bucket = getattr(_storage(), "bucket", None)
    if bucket is None:
        raise ImproperlyConfigured("STORAGES['artifacts'] must be a filesystem or S3 storage.")
    return bucket


def _local_path(key: str) -> Path:
    store = _disk()
    if store is None:
        raise ImproperlyConfigured("Run files are in an object store, not on this disk.")
    return Path(store.path(key))


@dataclass(frozen=True)
class StoredFile:
    """A file in the storage, opened only when served."""

    key: str

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)

    def open(self, mode: str = "rb") -> IO[bytes]:
        store = _disk()
        if store is not None:
            return store.open(self.key, mode)
        return _bucket().Object(self.key).get()["Body"]  # type: ignore[no-any-return]

    def size(self) -> int:
        return _storage().size(self.key)

    def open_sized(self) -> tuple[IO[bytes], int]:
        """The file opened for reading and its size: one request to an object store (the
        GET's own length), where ``open()`` then ``size()`` would make two."""
        store = _disk()
        if store is not None:
            return store.open(self.key, "rb"), store.size(self.key)
        answer = _bucket().Object(self.key).get()
        return answer["Body"], int(answer["ContentLength"])


# --- Reads ------------------------------------------------------------------------------------


def contained(root: str, key: str) -> bool:
    """Whether ``key`` stays inside ``root`` once symlinks resolve (only disks have them)."""
    if _disk() is None:
        return True
    return _local_path(key).resolve().is_relative_to(_local_path(root).resolve())


def kind(key: str) -> Kind | None:
    """A file, a folder (one with something in it, on an object store), or nothing."""
    if _disk() is not None:
        path = _local_path(key)
        return "folder" if path.is_dir() else "file" if path.is_file() else None
    if _storage().exists(key):
        return "file"
    return "folder" if _objects(f"{key}/", limit=1) else None


def _objects(prefix: str, *, limit: int | None = None) -> list[Any]:
    found = _bucket().objects.filter(Prefix=prefix)
    return list(found.limit(limit) if limit is not None else found)


def listing(root: str, key: str) -> list[Entry]:
    """The folder's direct children by name; a missing folder or a file lists nothing."""
    if _disk() is not None:
        return _disk_listing(root, key)
    client = _bucket().meta.client
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=_bucket().name, Prefix=f"{key}/", Delimiter="/"
    )
    entries: list[Entry] = []
    for page in pages:
        for folder in page.get("CommonPrefixes", ()):
            entries.append(
                {"name": folder["Prefix"].rstrip("/").rsplit("/", 1)[-1], "is_dir": True}
            )
        for item in page.get("Contents", ()):
            name = item["Key"].rsplit("/", 1)[-1]
            if name:  # not a folder marker some tools write ("<folder>/")
                entries.append({"name": name, "is_dir": False, "size": item["Size"]})
    return sorted(entries, key=lambda entry: entry["name"])


def _disk_listing(root: str, key: str) -> list[Entry]:
    folder = _local_path(key)
    if not folder.is_dir():
        return []
    entries: list[Entry] = []
    for child in sorted(folder.iterdir()):
        if not _visible(_local_path(root), child):
            continue
        if child.is_dir():
            entries.append({"name": child.name, "is_dir": True})
        elif child.is_file():  # not a broken link or a socket: nothing a client could download
            entries.append({"name": child.name, "is_dir": False, "size": child.stat().st_size})
    return entries


def _visible(root: Path, path: Path) -> bool:
    return not path.name.startswith(TEMP_PREFIX) and path.resolve().is_relative_to(root.resolve())


def walk(root: str) -> Iterator[tuple[str, int]]:
    """Every file under ``root``: its path relative to ``root`` and its size."""
    if _disk() is None:
        for item in _objects(f"{root}/"):
            if not item.key.endswith("/"):  # a folder marker
                yield item.key.removeprefix(f"{root}/"), item.size
        return
    top = _local_path(root)
    for folder, _, names in os.walk(top):
        for name in names:
            path = Path(folder, name)
            if _visible(top, path) and path.is_file():
                yield path.relative_to(top).as_posix(), path.stat().st_size


# --- Writes -----------------------------------------------------------------------------------


class _Stream:
    """A request body as Django's ``File`` wants it: read in blocks, never rewound."""

    closed = False

    def __init__(self, stream: Readable) -> None:
        self.read = stream.read

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        """The request owns its body."""


def save(key: str, stream: Readable) -> None:
    """Store ``stream`` at ``key``, replacing any file there.

    An exception from ``stream`` (a size limit) leaves nothing behind and goes
    up unchanged.
    """
    if _disk() is not None:
        _disk_save(_local_path(key), stream)
    else:
        _storage().save(key, File(_Stream(stream), name=key))  # type: ignore[arg-type]


def _disk_save(target: Path, stream: Readable) -> None:
    created = _make_folders(target.parent)
    try:
        _receive(target, stream)
    except BaseException:
        _remove_folders(created)
        raise


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the created ones, deepest first."""
    missing = list(itertools.takewhile(lambda d: not d.exists(), (folder, *folder.parents)))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ParentIsFile from None
    return missing


def _remove_folders(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # another upload has put something there meanwhile
            return


def _receive(target: Path, stream: Readable) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(handle, "wb") as file:
            while chunk := stream.read(CHUNK_BYTES):
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the file from backup users
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def delete(key: str) -> None:
    """Delete a file or a whole folder; nothing there is no error (a retried DELETE)."""
    if _disk() is None:
        _storage().delete(key)
        _bucket().objects.filter(Prefix=f"{key}/").delete()
        return
    path = _local_path(key)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()


def remove_project_files(project_id: int) -> None:
    """Delete a deleted project's files; a failure is logged (the rows are gone already)."""
    try:
        delete(project_key(project_id))
    except Exception as error:
        logger.warning("could not remove the files of deleted project %s: %s", project_id, error)
