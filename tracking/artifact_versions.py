"""Versioned artifacts: named sets of files a run logs (v0, v1, ...) and other runs use.

A client logs a version in three steps, each safe to repeat after a failure::

    POST /api/v1/runs/<run>/artifact-versions   {"name", "type", "files": [{path, sha256, size}]}
    PUT  /api/v1/artifact-versions/<id>/files/<sha256>   (the file's bytes, for each one asked)
    POST /api/v1/artifact-versions/<id>/commit

The first answers the committed version holding exactly these files if there
is one (``created: false``: nothing to upload, no new version); otherwise a
*pending* version and the files the storage does not have yet. A file is
stored once per project, by content, under ``<project>/blobs/<sha256>``
(``blob_key``): the same file in two versions, or in two artifacts, is one
object, and it goes with the project's folder when the project is deleted.
An upload is hashed as it streams in and kept only if its SHA-256 and size
are the manifest's. The commit checks every file is there and numbers the
version (the artifact's row is locked, so concurrent commits never share a
number). Only committed versions can be read or used.

A version's ``digest`` is the SHA-256 of its manifest (``manifest_digest``):
the sorted ``path``, ``sha256`` and ``size`` of each file. ``name:latest``
is the newest committed version; other aliases are not kept.

Names are stricter than metric keys: 1-128 characters of letters, digits,
``.``, ``_`` and ``-``, starting with a letter or a digit, so that
``team/project/name:v3`` always parses and a name is one URL segment.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from kernel.errors import ApplicationError, Conflict, NotFound, PermissionDenied, invalid
from kernel.ids import is_id
from kernel.limits import max_length
from tracking import events, selectors, storage
from tracking.mlflow.artifacts import TooLarge, clean_path
from tracking.models import (
    WRITE_ROLES,
    Artifact,
    ArtifactState,
    ArtifactUse,
    ArtifactVersion,
    Membership,
    Project,
    Run,
)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_FILES = 10_000  # files of one version: its manifest is one request body (16 MiB)
MAX_PATH_LENGTH = 1000  # characters of one file's path inside the version
REFERENCE = re.compile(r"(?P<project>[^/]+/[^/]+)/(?P<name>[^/:]+)(?::(?P<ref>[^/:]+))?")
VERSION_REF = re.compile(r"v?(?P<number>[0-9]{1,9})")
LATEST = "latest"
DEFAULT_TYPE = "artifact"


class FileEntry(TypedDict):
    path: str
    sha256: str
    size: int


@dataclass
class Created:
    """What announcing a version gives: the version, whether it is new, what to upload."""

    version: ArtifactVersion
    created: bool
    missing: list[FileEntry] = field(default_factory=list)


# --- Checking --------------------------------------------------------------------------------


def clean_name(value: Any, *, field: str = "name") -> str:
    limit = max_length(Artifact, "name")
    if not isinstance(value, str) or not value:
        raise invalid(field, "An artifact name is a non-empty string.")
    if len(value) > limit:
        raise invalid(field, f"An artifact name has at most {limit} characters.")
    if not NAME.fullmatch(value):
        raise invalid(
            field,
            "An artifact name holds letters, digits, '.', '_' and '-', and starts with a"
            " letter or a digit.",
        )
    return value


def clean_type(value: Any, *, field: str = "type") -> str | None:
    """The type asked for; None (not given) keeps an artifact's type, or makes "artifact"."""
    limit = max_length(Artifact, "type")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise invalid(field, "A type is printable text, e.g. 'model' or 'dataset'.")
    if len(value.strip()) > limit:
        raise invalid(field, f"A type has at most {limit} characters.")
    return value.strip()


def clean_description(value: Any, *, field: str = "description") -> str:
    limit = max_length(Artifact, "description")
    if value is None:
        return ""
    if not isinstance(value, str) or "\x00" in value:
        raise invalid(field, "A description is text without NUL characters.")
    if len(value.strip()) > limit:
        raise invalid(field, f"At most {limit} characters.")
    return value.strip()


def clean_manifest(raw: Any, *, field: str = "files") -> list[FileEntry]:
    """The files, checked and sorted by path; the first problem is a 400 naming it."""
    if not isinstance(raw, list) or not raw:
        raise invalid(field, "A non-empty list of {path, sha256, size}.")
    if len(raw) > MAX_FILES:
        raise invalid(field, f"At most {MAX_FILES:,} files per version.")
    files = [_entry(item, f"{field}[{index}]") for index, item in enumerate(raw)]
    files.sort(key=lambda entry: entry["path"])
    paths = {entry["path"] for entry in files}
    if len(paths) != len(files):
        raise invalid(field, "Each path may appear once.")
    for entry in files:
        parent = entry["path"].rpartition("/")[0]
        while parent:
            if parent in paths:
                raise invalid(field, f"{parent!r} is a file and a folder.")
            parent = parent.rpartition("/")[0]
    return files


def _entry(raw: Any, where: str) -> FileEntry:
    if not isinstance(raw, dict):
        raise invalid(where, "Must be an object: {path, sha256, size}.")
    unknown = sorted(set(raw) - {"path", "sha256", "size"})
    if unknown:
        raise invalid(f"{where}.{unknown[0]}", "Unknown field.")
    path, sha256, size = raw.get("path"), raw.get("sha256"), raw.get("size")
    if not isinstance(path, str) or not path or len(path) > MAX_PATH_LENGTH:
        raise invalid(f"{where}.path", f"A relative path of 1-{MAX_PATH_LENGTH} characters.")
    try:
        parts = clean_path(path)
    except ApplicationError:
        raise invalid(f"{where}.path", f"Invalid path {path!r}.") from None
    if not parts or path.endswith("/") or not path.isprintable():
        raise invalid(f"{where}.path", f"Invalid path {path!r}.")
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        raise invalid(f"{where}.sha256", "The file's SHA-256: 64 lowercase hex digits.")
    most = settings.LABBOOK["ARTIFACTS_MAX_BYTES"]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= most:
        raise invalid(
            f"{where}.size", f"Bytes of the file, from 0 to {most} (ARTIFACTS_MAX_BYTES)."
        )
    return {"path": path, "sha256": sha256, "size": size}


def manifest_digest(files: Iterable[FileEntry]) -> str:
    """SHA-256 over the sorted ``path``, ``sha256`` and ``size`` of each file."""
    hashed = hashlib.sha256()
    for entry in sorted(files, key=lambda entry: entry["path"]):
        hashed.update(f"{entry['path']}\0{entry['sha256']}\0{entry['size']}\n".encode())
    return hashed.hexdigest()


def files_of(version: ArtifactVersion) -> list[FileEntry]:
    return [{"path": p, "sha256": h, "size": n} for p, h, n in version.manifest]


# --- Storing ---------------------------------------------------------------------------------


def blob_key(project_id: int, sha256: str) -> str:
    """Where a file is stored: inside the project's folder, so it goes with the project."""
    return f"{storage.project_key(project_id)}/blobs/{sha256[:2]}/{sha256}"


def _stored(project_id: int, entry: FileEntry) -> bool:
    key = blob_key(project_id, entry["sha256"])
    return storage.kind(key) == "file" and storage.StoredFile(key).size() == entry["size"]


def missing_files(version: ArtifactVersion) -> list[FileEntry]:
    """The version's files (one per content) the storage does not hold yet."""
    project_id = version.artifact.project_id
    unique = {entry["sha256"]: entry for entry in files_of(version)}
    return [entry for entry in unique.values() if not _stored(project_id, entry)]


def version_create(
    *, run: Run, name: str, type: str | None, description: str, files: list[FileEntry]
) -> Created:
    """Announce a version of ``name`` holding ``files``, logged by ``run`` (checked values).

    The same files as a committed version: that version, nothing new. As a
    pending one (a retried or resumed upload): that one, now produced by ``run``.
    """
    artifact = _artifact(run.project, name, type, description)
    digest = manifest_digest(files)
    found = ArtifactVersion.objects.filter(artifact=artifact, digest=digest).first()
    if found is None:
        found = _new_version(artifact, run, digest, files)
    if found.state == ArtifactState.COMMITTED:
        return Created(found, created=False)
    if found.producer_id != run.pk:
        ArtifactVersion.objects.filter(pk=found.pk).update(producer=run)
        found.producer = run
    found.artifact = artifact
    return Created(found, created=True, missing=missing_files(found))


def _artifact(project: Project, name: str, type: str | None, description: str) -> Artifact:
    artifact, made = Artifact.objects.get_or_create(
        project=project,
        name=name,
        defaults={"type": type or DEFAULT_TYPE, "description": description},
    )
    if not made and type is not None and artifact.type != type:
        raise invalid("type", f"Artifact {name!r} is of type {artifact.type!r}, not {type!r}.")
    if not made and description and description != artifact.description:
        Artifact.objects.filter(pk=artifact.pk).update(description=description)
        artifact.description = description
    return artifact


def _new_version(
    artifact: Artifact, run: Run, digest: str, files: list[FileEntry]
) -> ArtifactVersion:
    row = ArtifactVersion(
        artifact=artifact,
        digest=digest,
        producer=run,
        manifest=[[entry["path"], entry["sha256"], entry["size"]] for entry in files],
        size=sum(entry["size"] for entry in files),
        file_count=len(files),
    )
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:  # the same files announced at the same moment by another request
        return ArtifactVersion.objects.get(artifact=artifact, digest=digest)
    return row


class _Verified:
    """An upload's body, hashed as it streams; at its end, refused unless it is the file."""

    def __init__(self, stream: storage.Readable, entry: FileEntry) -> None:
        self.stream, self.entry, self.size = stream, entry, 0
        self.hashed = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        chunk = self.stream.read(size)
        self.size += len(chunk)
        if self.size > self.entry["size"]:
            raise invalid("body", f"The file has {self.entry['size']} bytes; more were sent.")
        self.hashed.update(chunk)
        if not chunk:  # the end: the storage keeps the file only if this raises nothing
            if self.size != self.entry["size"]:
                raise invalid("body", f"The file has {self.entry['size']} bytes, not {self.size}.")
            if self.hashed.hexdigest() != self.entry["sha256"]:
                raise invalid("body", "The bytes sent do not have the manifest's SHA-256.")
        return chunk


def file_put(
    *, version: ArtifactVersion, sha256: str, stream: storage.Readable, length: int | None
) -> bool:
    """Store one file of the pending ``version``; False when it was stored already (unread).

    The body is refused, and nothing kept, unless its SHA-256 and size are the
    manifest's; a file over ``ARTIFACTS_MAX_BYTES`` is never in a manifest.
    """
    if version.state != ArtifactState.PENDING:
        raise Conflict("committed", "The version is committed: nothing more to upload.")
    entry = next((e for e in files_of(version) if e["sha256"] == sha256), None)
    if entry is None:
        raise NotFound(f"File {sha256} in this version", field="sha256")
    most = settings.LABBOOK["ARTIFACTS_MAX_BYTES"]
    if length is not None and length > most:
        raise TooLarge(most)
    if length is not None and length != entry["size"]:
        raise invalid("body", f"The file has {entry['size']} bytes, not {length}.")
    project_id = version.artifact.project_id
    if _stored(project_id, entry):
        return False
    storage.save(blob_key(project_id, sha256), _Verified(stream, entry))
    return True


def version_commit(version: ArtifactVersion) -> ArtifactVersion:
    """Number the pending ``version`` once all its files are stored; a committed one as is.

    Missing files are a 409 listing them (``details``): upload them and commit again.
    """
    if version.state == ArtifactState.COMMITTED:
        return version
    missing = missing_files(version)
    if missing:
        raise Conflict(
            "files_missing",
            f"{len(missing)} file(s) of the version are not uploaded yet.",
            details={"missing": [entry["sha256"] for entry in missing]},
        )
    with transaction.atomic():
        # The artifact's row is the lock: one commit at a time takes the next number.
        Artifact.objects.select_for_update().filter(pk=version.artifact_id).first()
        row = ArtifactVersion.objects.select_for_update().get(pk=version.pk)
        if row.state != ArtifactState.COMMITTED:
            top = ArtifactVersion.objects.filter(artifact_id=row.artifact_id).aggregate(
                top=Max("version")
            )["top"]
            row.version = 0 if top is None else top + 1
            row.state = ArtifactState.COMMITTED
            row.committed_at = timezone.now()
            row.save(update_fields=["version", "state", "committed_at"])
            if row.producer_id is not None:  # its run's page lists it now
                _artifacts_changed(row.producer_id, version.artifact.project_id)
    row.artifact = version.artifact
    return row


# --- Access ----------------------------------------------------------------------------------


def _role(user: User, project: Project) -> str | None:
    return (
        Membership.objects.filter(team_id=project.team_id, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )


def pending_get_for_user(user: User, version_id: int) -> ArtifactVersion:
    """A version (pending or not) to upload to or commit: editors and owners only."""
    if not is_id(version_id):
        raise NotFound("Artifact version")
    version = (
        ArtifactVersion.objects.filter(
            pk=version_id, artifact__project__team__memberships__user_id=user.pk
        )
        .select_related("artifact__project__team", "producer")
        .first()
    )
    if version is None:
        raise NotFound("Artifact version")
    if _role(user, version.artifact.project) not in WRITE_ROLES:
        raise PermissionDenied("Viewers cannot log artifacts.")
    return version


def artifact_get(project: Project, name: str) -> Artifact:
    """Artifact ``name`` of ``project`` (the caller has checked the project)."""
    artifact = Artifact.objects.filter(project=project, name=name).first()
    if artifact is None or not committed(artifact).exists():
        raise NotFound(f"Artifact {name!r}", field="name")
    artifact.project = project
    return artifact


def committed(artifact: Artifact) -> QuerySet[ArtifactVersion]:
    """The artifact's visible versions, the newest first."""
    return (
        ArtifactVersion.objects.filter(artifact=artifact, state=ArtifactState.COMMITTED)
        .select_related("producer", "artifact")
        .order_by("-version")
    )


def version_get(artifact: Artifact, ref: str) -> ArtifactVersion:
    """``latest``, ``v3`` (or ``3``) of ``artifact``: committed versions only."""
    versions = committed(artifact)
    if ref == LATEST:
        found = versions.first()
    else:
        match = VERSION_REF.fullmatch(ref)
        if match is None:
            raise invalid("version", "Name a version as 'latest', 'v3' or '3'.")
        found = versions.filter(version=int(match["number"])).first()
    if found is None:
        raise NotFound(f"Version {ref!r} of {artifact.name!r}", field="version")
    found.artifact = artifact
    return found


def parse_reference(value: Any, *, field: str = "artifact") -> tuple[str, str, str]:
    """``team/project/name[:version]`` as (``team/project``, name, version or ``latest``)."""
    match = REFERENCE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise invalid(field, "Name an artifact as 'team/project/name:v3' (or ':latest').")
    return match["project"], match["name"], match["ref"] or LATEST


def resolve_for_user(user: User, reference: Any, *, field: str = "artifact") -> ArtifactVersion:
    """The committed version ``team/project/name:ref`` names, if ``user`` may read it."""
    project_name, name, ref = parse_reference(reference, field=field)
    project = selectors.project_get_for_user(user, project_name, field=field)
    return version_get(artifact_get(project, name), ref)


def use_record(*, run: Run, version: ArtifactVersion) -> bool:
    """Record that ``run`` used ``version``; False when it was recorded before."""
    try:
        with transaction.atomic():
            ArtifactUse.objects.create(run=run, version=version)
            _artifacts_changed(run.pk, run.project_id)  # its run's page lists it now
    except IntegrityError:
        return False
    return True


def _artifacts_changed(run_id: int, project_id: int) -> None:
    """Tell whoever watches the run (its page's artifact cards), once the change commits."""
    events.publish(events.RunArtifactsChanged(run_id, project_id))


# --- Reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionFile(storage.StoredFile):
    """A stored file of a version, downloaded under its own name (not its hash)."""

    filename: str = ""

    @property
    def name(self) -> str:
        return self.filename.rsplit("/", 1)[-1]


def version_file(version: ArtifactVersion, path: str) -> VersionFile:
    entry = next((e for e in files_of(version) if e["path"] == path), None)
    if entry is None:
        raise NotFound(f"File {path!r} of this version", field="path")
    return VersionFile(blob_key(version.artifact.project_id, entry["sha256"]), filename=path)


def artifacts_of(project: Project) -> list[dict[str, Any]]:
    """The project's artifacts that have a committed version, by name."""
    rows = (
        Artifact.objects.filter(project=project, versions__state=ArtifactState.COMMITTED)
        .annotate(count=Count("versions"), latest=Max("versions__version"))
        .order_by("name")
    )
    return [
        {
            "name": row.name,
            "type": row.type,
            "description": row.description,
            "versions": row.count,
            "latest": f"v{row.latest}",
            "created_at": row.created_at,
        }
        for row in rows
    ]


def reference(version: ArtifactVersion) -> str:
    """``team/project/name:v3``: what ``use_artifact`` takes."""
    project = version.artifact.project
    return f"{project.team.slug}/{project.slug}/{version.artifact.name}:v{version.version}"


def run_summary(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"id": run.pk, "name": run.name, "url": run.get_absolute_url()}


def version_dict(version: ArtifactVersion, *, viewer: User | None = None) -> dict[str, Any]:
    """A version as the API and the pages show it; with a ``viewer``, its files and the
    runs that used it which the viewer may read."""
    artifact = version.artifact
    shown: dict[str, Any] = {
        "id": version.pk,
        "artifact": artifact.name,
        "type": artifact.type,
        "version": None if version.version is None else f"v{version.version}",
        "state": version.state,
        "digest": version.digest,
        "size": version.size,
        "file_count": version.file_count,
        "producer": run_summary(version.producer),
        "created_at": version.created_at,
        "committed_at": version.committed_at,
    }
    if version.state == ArtifactState.COMMITTED:
        shown["reference"] = reference(version)
    if viewer is not None:
        shown["files"] = files_of(version)
        shown["consumers"] = consumers(version, viewer)
    return shown


def consumers(version: ArtifactVersion, viewer: User) -> list[dict[str, Any]]:
    """The runs ``viewer`` may read that used ``version`` (a run of another team may have)."""
    uses = (
        ArtifactUse.objects.filter(
            version=version, run__project__team__memberships__user_id=viewer.pk
        )
        .select_related("run")
        .order_by("created_at")
    )
    return [{**(run_summary(use.run) or {}), "used_at": use.created_at} for use in uses]


def logged_by(run: Run) -> list[ArtifactVersion]:
    """The committed versions ``run`` produced."""
    return list(
        ArtifactVersion.objects.filter(producer=run, state=ArtifactState.COMMITTED)
        .select_related("artifact__project__team", "producer")
        .order_by("artifact__name", "version")
    )


def used_by(run: Run, viewer: User) -> list[ArtifactVersion]:
    """The versions ``run`` used that ``viewer`` may read (one may be of another team)."""
    return list(
        ArtifactVersion.objects.filter(
            uses__run=run, artifact__project__team__memberships__user_id=viewer.pk
        )
        .select_related("artifact__project__team", "producer")
        .order_by("artifact__name", "version")
    )
