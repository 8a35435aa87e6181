"""Versioned artifacts in the SDK: ``run.log_artifact`` and ``use_artifact`` (docs/sdk.md).

``run.log_artifact(path)`` hashes the file or folder at once (so the version
is what was there at the call) and uploads in a background thread, returning
an ``ArtifactUpload``; ``upload.wait()`` gives the version, and ``run.finish()``
waits for every upload of the run. Do not change the files until then: the
server keeps a file only if its bytes have the SHA-256 hashed here.

An upload is a conversation the server can resume: announce the manifest
(the server answers the files it still lacks), PUT each of those, commit.
Any failure (the server down, a lost answer) starts it over from the
announcement, which asks only for the files still missing: nothing is sent
twice once stored, and the same files make the same version, never a new one.
It gives up after ``LABBOOK_RETRY_SECONDS`` (60) without progress.

``use_artifact("team/project/name:v3")`` downloads the version's files into
``LABBOOK_ARTIFACT_DIR`` (``~/.labbook/artifacts``), under
``<team>/<project>/<name>/v3``, checking each file's SHA-256; a file already
there with the right hash is not downloaded again. With a run, the server
records that the run used the version.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from tracking.sdk.transport import USER_AGENT, Transport, TransportError, backoff_delay

BLOCK = 1024 * 1024
NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
REFERENCE = re.compile(r"(?P<team>[^/]+)/(?P<project>[^/]+)/(?P<name>[^/:]+)(?::(?P<ref>[^/:]+))?")
CACHE_DEFAULT = "~/.labbook/artifacts"


class ArtifactError(Exception):
    """An artifact could not be logged or used (raised as ``LabbookError`` by the run)."""


@dataclass(frozen=True)
class LocalFile:
    path: str  # inside the version, "/"-separated
    source: Path
    sha256: str
    size: int

    def entry(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


def file_sha256(source: Path) -> tuple[str, int]:
    hashed, size = hashlib.sha256(), 0
    with source.open("rb") as file:
        while block := file.read(BLOCK):
            hashed.update(block)
            size += len(block)
    return hashed.hexdigest(), size


def local_files(root: Path) -> list[LocalFile]:
    """The file at ``root`` (named by its own name), or every file under the folder."""
    if root.is_file():
        return [LocalFile(root.name, root, *file_sha256(root))]
    if not root.is_dir():
        raise ArtifactError(f"log_artifact(): no file or folder at {root}")
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            source = Path(folder, name)
            if source.is_file():
                relative = source.relative_to(root).as_posix()
                found.append(LocalFile(relative, source, *file_sha256(source)))
    if not found:
        raise ArtifactError(f"log_artifact(): the folder {root} holds no file")
    return sorted(found, key=lambda file: file.path)


def default_name(root: Path) -> str:
    """The file's or folder's name, as an artifact name may be written."""
    name = NAME_CHARACTERS.sub("-", root.resolve().name).strip("-._") or "artifact"
    return name[:128]


# --- HTTP: raw bodies, on the SDK's transport ---------------------------------------------------


class FileTransport(Transport):
    """The SDK's transport, also sending and receiving files in blocks."""

    def put_file(self, path: str, source: Path, size: int) -> Any:
        headers = {
            "Authorization": f"Bearer {self._token}",
            "User-Agent": USER_AGENT,
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
        }
        try:
            with source.open("rb") as body:
                conn = self._connection()
                conn.request("PUT", self._prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise TransportError(f"{self.url} unreachable: {error}", retryable=True) from None
        return self._answer(response, data)

    def get_file(self, path: str, target: IO[bytes]) -> str:
        """Write the file at ``path`` into ``target``; its SHA-256."""
        headers = {"Authorization": f"Bearer {self._token}", "User-Agent": USER_AGENT}
        hashed = hashlib.sha256()
        try:
            conn = self._connection()
            conn.request("GET", self._prefix + path, headers=headers)
            response = conn.getresponse()
            if not 200 <= response.status < 300:
                self._answer(response, response.read())
            while block := response.read(BLOCK):
                hashed.update(block)
                target.write(block)
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise TransportError(f"{self.url} unreachable: {error}", retryable=True) from None
        return hashed.hexdigest()


# --- Logging -----------------------------------------------------------------------------------


@dataclass
class ArtifactUpload:
    """A version being uploaded in the background; ``wait()`` for it."""

    name: str
    files: list[LocalFile]
    version: dict[str, Any] | None = None
    error: BaseException | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """The committed version (``version``, ``reference``...); raises what went wrong."""
        if not self._done.wait(timeout):
            raise ArtifactError(f"artifact {self.name!r} is still uploading")
        if self.error is not None:
            raise ArtifactError(f"artifact {self.name!r} was not logged: {self.error}")
        assert self.version is not None
        return self.version


def start_upload(
    *,
    url: str,
    token: str,
    run_id: int,
    root: Path,
    name: str | None,
    type: str | None,
    description: str | None,
    budget: float,
    timeout: float,
) -> ArtifactUpload:
    """Hash ``root`` now; upload it in a daemon thread (see the module docstring)."""
    files = local_files(root)
    upload = ArtifactUpload(name or default_name(root), files)
    body: dict[str, Any] = {"name": upload.name, "files": [file.entry() for file in files]}
    if type:
        body["type"] = type
    if description:
        body["description"] = description

    def work() -> None:
        transport = FileTransport(url, token, timeout=timeout)
        try:
            upload.version = log_version(transport, run_id, body, files, budget=budget)
        except BaseException as error:  # handed to wait()
            upload.error = error
        finally:
            transport.close()
            upload._done.set()

    threading.Thread(target=work, name=f"labbook-artifact-{upload.name}", daemon=True).start()
    return upload


def log_version(
    transport: FileTransport,
    run_id: int,
    body: dict[str, Any],
    files: list[LocalFile],
    *,
    budget: float,
) -> dict[str, Any]:
    """Announce, upload what is missing, commit; start over after a retryable failure,
    until ``budget`` seconds pass without progress."""
    by_sha = {file.sha256: file for file in files}
    deadline = time.monotonic() + budget
    attempt = 0
    while True:
        try:
            answer = transport.request("POST", f"/api/v1/runs/{run_id}/artifact-versions", body)
            if not answer["created"]:
                return dict(answer["version"])
            version_id = answer["version"]["id"]
            for wanted in answer["uploads"]:
                file = by_sha[wanted["sha256"]]
                transport.put_file(
                    f"/api/v1/artifact-versions/{version_id}/files/{file.sha256}",
                    file.source,
                    file.size,
                )
                deadline = time.monotonic() + budget  # progress: the budget starts again
            committed: dict[str, Any] = transport.request(
                "POST", f"/api/v1/artifact-versions/{version_id}/commit"
            )
            return committed
        except TransportError as error:
            files_missing = error.status == 409 and error.code == "files_missing"
            if not (error.retryable or files_missing):
                raise
            delay = error.retry_after if error.retry_after is not None else backoff_delay(attempt)
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            attempt += 1


# --- Using ---------------------------------------------------------------------------------------


def parse_reference(reference: str) -> tuple[str, str, str, str]:
    """``team/project/name[:version]``: (team, project, name, version or "latest")."""
    match = REFERENCE.fullmatch(str(reference))
    if match is None:
        raise ArtifactError(f"name an artifact as 'team/project/name:v3', not {reference!r}")
    return match["team"], match["project"], match["name"], match["ref"] or "latest"


def cache_root(root: str | Path | None) -> Path:
    chosen = root or os.environ.get("LABBOOK_ARTIFACT_DIR") or CACHE_DEFAULT
    return Path(chosen).expanduser()


def use(
    transport: FileTransport,
    reference: str,
    *,
    run_id: int | None,
    root: str | Path | None,
    budget: float,
) -> Path:
    """Record the use (with a run), download the version; the folder holding its files."""
    team, project, name, ref = parse_reference(reference)
    if run_id is not None:
        answer = transport.request_retrying(
            "POST", f"/api/v1/runs/{run_id}/artifact-uses", {"artifact": reference}, budget=budget
        )
        version = answer["version"]
    else:
        version = transport.request_retrying(
            "GET",
            f"/api/v1/projects/{quote(team)}/{quote(project)}/artifacts/{quote(name)}/{quote(ref)}",
            budget=budget,
        )
    folder = cache_root(root) / team / project / name / str(version["version"])
    base = f"/api/v1/projects/{quote(team)}/{quote(project)}/artifacts/{quote(name)}"
    for entry in version["files"]:
        target = folder / entry["path"]
        if not target.resolve().is_relative_to(folder.resolve()):  # never outside the folder
            raise ArtifactError(f"refusing to write {entry['path']!r} outside {folder}")
        url = f"{base}/{version['version']}/files/{quote(entry['path'])}"
        _download(transport, url, target, entry, budget=budget)
    return folder


def _download(
    transport: FileTransport, url: str, target: Path, entry: dict[str, Any], *, budget: float
) -> None:
    """The file at ``target``, checked against its SHA-256: kept if it is there already."""
    if target.is_file() and file_sha256(target) == (entry["sha256"], entry["size"]):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + budget
    attempt = 0
    while True:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".labbook-download-")
        try:
            with os.fdopen(handle, "wb") as file:
                got = transport.get_file(url, file)
            if got != entry["sha256"]:
                raise TransportError(
                    f"{entry['path']}: the bytes received have another SHA-256", retryable=True
                )
            os.replace(temporary, target)
            return
        except TransportError as error:
            if not error.retryable or time.monotonic() > deadline:
                raise
            time.sleep(backoff_delay(attempt))
            attempt += 1
        finally:
            Path(temporary).unlink(missing_ok=True)
