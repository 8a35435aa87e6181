"""Request bodies are capped before they are read: an ASGI middleware in front of Django.

Django's ASGI handler reads a whole body into a temporary file before any
view, authentication or size check runs: the security review uploaded 400
and 600 MB anonymously, even as a GET to ``/healthz``. Here, before Django
sees the request:

* a ``Content-Length`` over the limit is answered 413 at once, unread;
* a body without one (chunked) is counted as it arrives, and cut off with a
  413 when it passes the limit;
* an artifact upload (the only body allowed to be large) is answered 401
  unread unless its token (``Authorization``) is one that authenticates, or
  its session cookie names a signed-in session: a stranger's bytes, or those
  of a revoked, expired or made-up token, are never stored. The 401 says what
  the API's own would (no token, a token that is not valid, or expired). What
  the token may do is the view's to decide, with the body counted against the
  limit as it streams in.

The limit is ``MAX_REQUEST_BYTES`` (16 MiB), or ``ARTIFACTS_MAX_BYTES``
(1 GiB) for a ``PUT`` of an artifact. Errors are JSON in the shape of the
API the path belongs to (MLflow's for ``/api/2.0/``, Labbook's otherwise),
naming the ``body``.
"""

from __future__ import annotations

import re
from importlib import import_module
from typing import Any

import orjson
from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings
from django.http.cookie import parse_cookie

from tracking.mlflow import http as mlflow_http
from tracking.services import TOKEN_NOT_VALID, TokenExpired, token_authenticate, token_in_header

# PUT of one artifact file: MLflow's proxied store (both prefixes), the REST API, and a file
# of a versioned artifact.
UPLOAD_PATH = re.compile(
    r"^/(?:ajax-)?api/2\.0/mlflow-artifacts/artifacts/.+|^/api/v1/runs/\d+/artifacts/.+"
    # Versioned artifacts: one file of a pending version, by its SHA-256.
    r"|^/api/v1/artifact-versions/\d+/files/[0-9a-f]{64}$"
)


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


NOT_SIGNED_IN = "Send a valid API token (or sign in) to upload an artifact."


async def _refusal(scope: dict[str, Any]) -> tuple[str, str, str] | None:
    """Why the upload's credential does not authenticate: the REST API's error code
    (``tracking.api.auth``), its message, and MLflow's message (``tracking.mlflow.http``).
    None for a live token or a signed-in session."""
    authorization = _header(scope, b"authorization")
    if authorization is not None:
        header = authorization.decode("latin-1")
        raw = token_in_header(header)
        mlflow_message = mlflow_http.unauthenticated(header, raw)
        if raw is None:
            return "invalid_token", "Send 'Authorization: Bearer <token>'.", mlflow_message
        try:
            if await _token_authenticates(raw):
                return None
        except TokenExpired as expired:
            return expired.code, expired.message, expired.message
        return "invalid_token", TOKEN_NOT_VALID, mlflow_message
    cookies = parse_cookie((_header(scope, b"cookie") or b"").decode("latin-1"))
    key = cookies.get(settings.SESSION_COOKIE_NAME)
    if key and await _session_signed_in(key):
        return None
    return "not_authenticated", NOT_SIGNED_IN, NOT_SIGNED_IN


@database_sync_to_async
def _token_authenticates(raw: str) -> bool:
    return token_authenticate(raw) is not None  # raises TokenExpired


async def _session_signed_in(key: str) -> bool:
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    # get_user() reads the scope's session alone; its stub wants a whole websocket scope.
    return (await get_user({"session": store})).is_authenticated  # type: ignore[typeddict-item]


def _error(scope: dict[str, Any], code: str, mlflow_code: str, message: str) -> bytes:
    if mlflow_http.is_mlflow_path(scope.get("path", "")):
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
        refusal = await _refusal(scope) if is_upload(scope) else None
        if refusal is not None:
            code, message, mlflow_message = refusal
            if mlflow_http.is_mlflow_path(scope.get("path", "")):
                message = mlflow_message
            return await _answer(send, 401, _error(scope, code, "UNAUTHENTICATED", message))
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
