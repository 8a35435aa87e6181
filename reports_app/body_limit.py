"""Request bodies are capped before they are read: an ASGI middleware in front of Django.

Django's ASGI handler reads a whole body into a temporary file before any
view, authentication or size check runs: the security review uploaded 400
and 600 MB anonymously, even as a GET to ``/healthz``. Here, before Django
sees the request:

* a ``Content-Length`` over the limit is answered 413 at once, unread;
* a body without one (chunked) is counted as it arrives, and cut off with a
  413 when it passes the limit;
* an artifact upload (the only body allowed to be large) without an
  ``Authorization`` header or a session cookie is answered 401 unread.

The limit is ``MAX_REQUEST_BYTES`` (16 MiB), or ``ARTIFACTS_MAX_BYTES``
(1 GiB) for a ``PUT`` of an artifact. Errors are JSON in the shape of the
API the path belongs to (MLflow's for ``/api/2.0/``, Labbook's otherwise),
naming the ``body``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from django.conf import settings

# PUT of one artifact file: MLflow's proxied store (both prefixes) and the REST API.
UPLOAD_PATH = re.compile(
    r"^/(?:ajax-)?api/2\.0/mlflow-artifacts/artifacts/.+|^/api/v1/runs/\d+/artifacts/.+"
)
MLFLOW_PATH = re.compile(r"^/(?:ajax-)?api/2\.0/")


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def is_upload(scope: dict[str, Any]) -> bool:
    return scope.get("method") == "PUT" and bool(UPLOAD_PATH.match(scope.get("path", "")))


def limit_for(scope: dict[str, Any]) -> int:
    if is_upload(scope):
        return settings.LABBOOK["ARTIFACTS_MAX_BYTES"]
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _may_be_signed_in(scope: dict[str, Any]) -> bool:
    """A credential is present (checked properly later): a token, or a session cookie."""
    if _header(scope, b"authorization"):
        return True
    cookie = (_header(scope, b"cookie") or b"").decode("latin-1")
    return f"{settings.SESSION_COOKIE_NAME}=" in cookie


def _error(scope: dict[str, Any], code: str, mlflow_code: str, message: str) -> bytes:
    if MLFLOW_PATH.match(scope.get("path", "")):
        return orjson.dumps({"error_code": mlflow_code, "message": message})
    return orjson.dumps({"error": {"code": code, "message": message, "field": "body"}})


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: see the module docstring."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "http":
            return await self.application(scope, receive, send)
        limit = limit_for(scope)
        too_large = (
            f"The request body is larger than {limit} bytes"
            f" ({'ARTIFACTS_MAX_BYTES' if is_upload(scope) else 'MAX_REQUEST_BYTES'})."
        )
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                body = _error(scope, "invalid", "INVALID_PARAMETER_VALUE", "Bad Content-Length.")
                return await _answer(send, 400, body)
            if length > limit:
                body = _error(scope, "too_large", "INVALID_PARAMETER_VALUE", too_large)
                return await _answer(send, 413, body)
        if is_upload(scope) and not _may_be_signed_in(scope):
            message = "Authentication credentials were not provided."
            return await _answer(
                send, 401, _error(scope, "unauthorized", "UNAUTHENTICATED", message)
            )
        return await self._counted(scope, receive, send, limit, too_large)

    async def _counted(
        self, scope: dict[str, Any], receive: Any, send: Any, limit: int, too_large: str
    ) -> Any:
        """Pass the request on, cutting its body off once it passes ``limit`` bytes."""
        received = 0
        over = False
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}  # Django stops reading: nothing is kept
            return message

        async def watching_send(message: dict[str, Any]) -> None:
            nonlocal started
            if over and not started:
                return  # the app answers a request it saw cut short: ours goes instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.application(scope, counting_receive, watching_send)
        if over and not started:
            body = _error(scope, "too_large", "INVALID_PARAMETER_VALUE", too_large)
            await _answer(send, 413, body)
