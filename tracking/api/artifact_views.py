"""REST API v1 of versioned artifacts: thin views over ``tracking.artifact_versions``."""

from __future__ import annotations

import io
from typing import Any

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tracking import artifact_versions as av
from tracking import selectors
from tracking.api import serializers as s
from tracking.api.auth import AuthenticatedRequest
from tracking.api.body import request_body
from tracking.api.schema import error_response
from tracking.mlflow import artifacts
from tracking.models import ArtifactVersion


def _upload_url(request: Request, version: ArtifactVersion, sha256: str) -> str:
    path = reverse("api-artifact-version-upload", args=[version.pk, sha256])
    return request.build_absolute_uri(path)


def _content_length(request: Request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


class RunArtifactVersionsView(APIView):
    @extend_schema(
        responses=s.RunArtifactVersionsSerializer,
        operation_id="runs_artifact_versions",
        description="The versioned artifacts the run logged and those it used (lineage).",
    )
    def get(self, request: AuthenticatedRequest, run_id: int) -> Response:
        run = selectors.run_get_for_user(request.user, run_id)
        return Response(
            {
                "logged": [av.version_dict(v) for v in av.logged_by(run)],
                "used": [av.version_dict(v) for v in av.used_by(run, request.user)],
            }
        )

    @extend_schema(
        request=s.ArtifactVersionCreateSerializer,
        responses={
            200: s.ArtifactVersionCreatedSerializer,
            201: s.ArtifactVersionCreatedSerializer,
        },
        operation_id="runs_artifact_version_create",
        description="Announce a version of an artifact by its files. 200 and `created: false`:"
        " a committed version holds exactly these files. 201: a pending version; PUT each"
        " file of `uploads`, then POST `commit_url`. Repeating this resumes an upload.",
    )
    def post(self, request: AuthenticatedRequest, run_id: int) -> Response:
        data = request_body(request, s.ArtifactVersionCreateSerializer)
        run = selectors.run_get_for_user(request.user, run_id, write=True)
        result = av.version_create(
            run=run,
            name=av.clean_name(data.get("name")),
            type=av.clean_type(data.get("type")),
            description=av.clean_description(data.get("description")),
            files=av.clean_manifest(data.get("files")),
        )
        version = result.version
        body: dict[str, Any] = {
            "created": result.created,
            "version": av.version_dict(version),
            "uploads": [
                {**entry, "url": _upload_url(request, version, entry["sha256"])}
                for entry in result.missing
            ],
        }
        if result.created:
            commit = reverse("api-artifact-version-commit", args=[version.pk])
            body["commit_url"] = request.build_absolute_uri(commit)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(body, status=code)


class ArtifactVersionUploadView(APIView):
    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={
            200: s.ArtifactUploadedSerializer,
            409: error_response("The version is committed: nothing more to upload."),
            413: error_response("Larger than ARTIFACTS_MAX_BYTES."),
        },
        operation_id="artifact_versions_file_upload",
        description="One file of a pending version, as raw bytes: kept only if its SHA-256"
        " and size are the manifest's (a 400 otherwise).",
    )
    def put(self, request: AuthenticatedRequest, version_id: int, sha256: str) -> Response:
        version = av.pending_get_for_user(request.user, version_id)
        stream = request.stream or io.BytesIO(b"")
        stored = av.file_put(
            version=version, sha256=sha256, stream=stream, length=_content_length(request)
        )
        return Response({"stored": stored})


class ArtifactVersionCommitView(APIView):
    @extend_schema(
        request=None,
        responses={
            200: s.ArtifactVersionSerializer,
            409: error_response("Files of the version are missing (`details.missing`)."),
        },
        operation_id="artifact_versions_commit",
        description="Number the version (v0, v1...) once every file is stored; again: as is.",
    )
    def post(self, request: AuthenticatedRequest, version_id: int) -> Response:
        version = av.pending_get_for_user(request.user, version_id)
        return Response(av.version_dict(av.version_commit(version), viewer=request.user))


class RunArtifactUsesView(APIView):
    @extend_schema(
        request=s.ArtifactUseCreateSerializer,
        responses={200: s.ArtifactUsedSerializer},
        operation_id="runs_artifact_use",
        description="Record that the run used a version; answers the version and its files.",
    )
    def post(self, request: AuthenticatedRequest, run_id: int) -> Response:
        data = request_body(request, s.ArtifactUseCreateSerializer)
        run = selectors.run_get_for_user(request.user, run_id, write=True)
        version = av.resolve_for_user(request.user, data.get("artifact"))
        recorded = av.use_record(run=run, version=version)
        return Response(
            {"recorded": recorded, "version": av.version_dict(version, viewer=request.user)}
        )


class ProjectArtifactsView(APIView):
    @extend_schema(
        responses=s.ArtifactIndexSerializer,
        operation_id="projects_artifacts_list",
        description="The project's artifacts that have a committed version.",
    )
    def get(self, request: AuthenticatedRequest, team: str, project: str) -> Response:
        found = selectors.project_at(request.user, team, project)
        return Response({"artifacts": av.artifacts_of(found)})


class ProjectArtifactView(APIView):
    @extend_schema(
        responses=s.ArtifactDetailSerializer,
        operation_id="projects_artifact_detail",
        description="An artifact and its committed versions, the newest first.",
    )
    def get(self, request: AuthenticatedRequest, team: str, project: str, name: str) -> Response:
        found = av.artifact_get(selectors.project_at(request.user, team, project), name)
        return Response(
            {
                "name": found.name,
                "type": found.type,
                "description": found.description,
                "versions": [av.version_dict(v) for v in av.committed(found)],
            }
        )


class ArtifactVersionView(APIView):
    @extend_schema(
        responses=s.ArtifactVersionSerializer,
        operation_id="projects_artifact_version",
        description="One version (`latest`, `v3` or `3`): its files, producer and consumers.",
    )
    def get(
        self, request: AuthenticatedRequest, team: str, project: str, name: str, version: str
    ) -> Response:
        found = av.artifact_get(selectors.project_at(request.user, team, project), name)
        return Response(av.version_dict(av.version_get(found, version), viewer=request.user))


class ArtifactVersionFileView(APIView):
    @extend_schema(
        responses={(200, "*/*"): OpenApiTypes.BINARY},
        operation_id="projects_artifact_version_file",
        description="One file of a version, as logged.",
    )
    def get(
        self,
        request: AuthenticatedRequest,
        team: str,
        project: str,
        name: str,
        version: str,
        path: str,
    ) -> FileResponse:
        found = av.artifact_get(selectors.project_at(request.user, team, project), name)
        chosen = av.version_get(found, version)
        return artifacts.file_response(av.version_file(chosen, path))
