"""MLflow's proxied artifact endpoints (``mlflow-artifacts``), over ``tracking.mlflow.artifacts``.

What the client sends (``mlflow.store.artifact.http_artifact_repo``):

* ``PUT artifacts/<exp>/<run>/artifacts/<rel>`` with the file as the raw body;
* ``GET artifacts/<exp>/<run>/artifacts/<rel>`` to download one file;
* ``GET artifacts?path=<exp>/<run>/artifacts[/<folder>]`` to list one folder;
* ``DELETE artifacts/<exp>/<run>/artifacts[/<rel>]``, no body.

The body is bytes, not JSON, so these views use ``http.endpoint(..., raw_body=True)``:
the same auth and error shape, and the view reads the request itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from kernel.http import AuthenticatedHttpRequest
from tracking.mlflow import artifacts, http, media_artifacts

Answer = dict[str, Any] | HttpResponseBase


def _content_length(request: AuthenticatedHttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _upload(request: AuthenticatedHttpRequest, path: str) -> dict[str, Any]:
    location = artifacts.locate(request.user, path, write=True)
    artifacts.artifact_write(
        location=location,
        stream=request,
        max_bytes=settings.LABBOOK["ARTIFACTS_MAX_BYTES"],
        length=_content_length(request),
    )
    media_artifacts.artifact_stored(location)  # an image or a table is media too
    artifacts.artifacts_changed(location)  # the run page's Artifacts card
    return {}


def _download(request: AuthenticatedHttpRequest, path: str) -> HttpResponseBase:
    location = artifacts.locate(request.user, path, write=False)
    return artifacts.file_response(artifacts.artifact_file(location))


def _delete(request: AuthenticatedHttpRequest, path: str) -> dict[str, Any]:
    location = artifacts.locate(request.user, path, write=True)
    artifacts.artifact_delete(location=location)
    media_artifacts.artifact_deleted(location)  # its media items go with it
    artifacts.artifacts_changed(location)  # the run page's Artifacts card
    return {}


ACTIONS: dict[str, Callable[[AuthenticatedHttpRequest, str], Answer]] = {
    "PUT": _upload,
    "GET": _download,
    "DELETE": _delete,
}


@http.endpoint(*ACTIONS, raw_body=True)
def artifact(request: AuthenticatedHttpRequest, path: str) -> Answer:
    return ACTIONS[request.method or ""](request, path)  # endpoint() let only these in


@http.endpoint("GET", raw_body=True)
def artifact_list(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    """One folder's children, named relative to it; ``{}`` when there are none (as MLflow)."""
    path = request.GET.get("path", "")
    if not path:
        raise http.invalid("Pass path=<experiment_id>/<run_id>/artifacts[/<folder>].")
    files = artifacts.artifact_list(artifacts.locate(request.user, path, write=False))
    return {"files": files} if files else {}


# The client's own words for "fall back to a plain PUT" (``_UnsupportedMultipartUploadException``).
UNSUPPORTED = "Multipart upload is not supported for the current artifact repository"


@csrf_exempt
def unsupported(request: AuthenticatedHttpRequest, path: str = "") -> HttpResponse:
    """Multipart uploads and presigned downloads, tried only when a client forces them on.

    501 with MLflow's own message makes the client fall back to a plain PUT or
    GET; it does not retry a 501.
    """
    message = f"{UNSUPPORTED}: Labbook serves artifacts itself, by plain PUT and GET."
    return http.error_response("NOT_IMPLEMENTED", message, 501)
