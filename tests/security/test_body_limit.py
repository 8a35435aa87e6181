"""Bodies are capped before they are read, against a real server (uvicorn, as `up` runs it).

The security review had 400 and 600 MB anonymous uploads spooled to disk in
full before any check, even as a GET to /healthz. The requests below declare
huge bodies and never send them: a server that waited for the body would
never answer, and the test would fail at its (generous) socket timeout.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest

from tests.sdk.server import LabbookServer

pytestmark = pytest.mark.subprocess

LIMIT = 64 * 1024
ARTIFACT_LIMIT = 256 * 1024
HUGE = 600 * 1024 * 1024
CEILING = 120  # seconds: only a server that waits for the body comes near it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabbookServer]:
    env = {"MAX_REQUEST_BYTES": str(LIMIT), "ARTIFACTS_MAX_BYTES": str(ARTIFACT_LIMIT)}
    with LabbookServer(tmp_path_factory.mktemp("limits") / "home", env=env) as running:
        yield running


def raw_request(server: LabbookServer, head: str, body: bytes = b"") -> tuple[int, dict]:
    """Send ``head`` (request line and headers) and ``body``; answer (status, JSON body)."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=CEILING) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    head_part, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    return status, json.loads(payload or b"null")


def _complete(answer: bytes) -> bool:
    head, _, payload = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(payload) >= int(line.split(b":")[1])
    return False


def headers(server: LabbookServer, *lines: str) -> str:
    host = urlsplit(server.url).netloc
    return "\n".join([*lines, f"Host: {host}", ""]) + "\n"


def test_a_declared_huge_body_is_refused_unread_even_on_a_get(server: LabbookServer):
    status, body = raw_request(
        server, headers(server, "GET /healthz HTTP/1.1", f"Content-Length: {HUGE}")
    )
    assert status == 413
    assert body["error"]["field"] == "body"
    assert "MAX_REQUEST_BYTES" in body["error"]["message"]


def test_an_anonymous_upload_is_refused_before_its_body_is_read(server: LabbookServer):
    status, body = raw_request(
        server,
        headers(
            server,
            "PUT /api/2.0/mlflow-artifacts/artifacts/1/1/artifacts/big.bin HTTP/1.1",
            f"Content-Length: {ARTIFACT_LIMIT - 1}",
        ),
    )
    assert status == 401
    assert body["error_code"] == "UNAUTHENTICATED"


NOT_VALID = "The token is not valid or was revoked."


@pytest.mark.parametrize(
    ("credential", "code", "mlflow_says"),
    [
        ("Authorization: Bearer lb_made-up-token", "invalid_token", NOT_VALID),
        # user:lb_made-up, as MLflow sends it
        ("Authorization: Basic dXNlcjpsYl9tYWRlLXVw", "invalid_token", NOT_VALID),
        ("Authorization: Bearer", "invalid_token", "The Authorization header carries no token"),
        ("Cookie: sessionid=made-up-session", "not_authenticated", "Send a valid API token"),
    ],
    ids=["made-up-token", "made-up-basic", "empty-bearer", "made-up-session"],
)
def test_an_upload_with_a_credential_that_fails_is_refused_unread(
    server: LabbookServer, credential: str, code: str, mlflow_says: str
):
    """The first fix let any Authorization header through: a made-up token's
    upload was still spooled to disk before the view refused it. The refusal
    says what the API's own would: a wrong token is not valid, not missing."""
    answers = {}
    for path in (
        "/api/2.0/mlflow-artifacts/artifacts/1/1/artifacts/big.bin",
        "/api/v1/runs/1/artifacts/big.bin",
    ):
        status, answers[path] = raw_request(
            server,
            headers(
                server, f"PUT {path} HTTP/1.1", credential, f"Content-Length: {ARTIFACT_LIMIT - 1}"
            ),
        )
        assert status == 401, path
    mlflow, rest = answers.values()
    assert mlflow["error_code"] == "UNAUTHENTICATED"
    assert mlflow["message"].startswith(mlflow_says)
    assert rest["error"]["code"] == code
    if code == "invalid_token" and "Bearer lb_" in credential:
        assert rest["error"]["message"] == NOT_VALID


def test_an_upload_with_an_expired_token_is_told_when_it_expired(server: LabbookServer):
    """As the API's own answer says it: the SDK reads ``token_expired`` to tell its user."""
    expires_at = datetime.now(UTC) + timedelta(seconds=1)
    with server.client() as http:
        body = {"name": "short-lived", "expires_at": expires_at.isoformat()}
        token = http.post("/api/v1/tokens", json=body).raise_for_status().json()["token"]
    time.sleep(1.2)
    for path, shape in (
        ("/api/2.0/mlflow-artifacts/artifacts/1/1/artifacts/big.bin", "mlflow"),
        ("/api/v1/runs/1/artifacts/big.bin", "rest"),
    ):
        status, answer = raw_request(
            server,
            headers(
                server,
                f"PUT {path} HTTP/1.1",
                f"Authorization: Bearer {token}",
                f"Content-Length: {ARTIFACT_LIMIT - 1}",
            ),
        )
        assert status == 401, path
        if shape == "rest":
            assert answer["error"]["code"] == "token_expired"
            message = answer["error"]["message"]
        else:
            assert answer["error_code"] == "UNAUTHENTICATED"
            message = answer["message"]
        assert message.startswith(f"The token {token[:10]}… expired on "), path


def test_an_upload_past_the_artifact_limit_is_refused_unread(server: LabbookServer):
    status, body = raw_request(
        server,
        headers(
            server,
            "PUT /api/2.0/mlflow-artifacts/artifacts/1/1/artifacts/big.bin HTTP/1.1",
            f"Authorization: Bearer {server.token}",
            f"Content-Length: {HUGE}",
        ),
    )
    assert status == 413
    assert "ARTIFACTS_MAX_BYTES" in body["message"]


def test_a_chunked_body_is_cut_off_once_past_the_limit(server: LabbookServer):
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "big", "project": "lab/x", "config": {"pad": "'
        for _ in range(LIMIT // 4096 + 4):
            yield b"x" * 4096
        yield b'"}}'

    with httpx.Client(base_url=server.url, trust_env=False, timeout=CEILING) as http:
        answer = http.post(
            "/api/v1/runs",
            content=chunks(),
            headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
        )
        assert answer.status_code == 413
        assert answer.json()["error"]["field"] == "body"
        assert http.get("/healthz").status_code == 200  # and the server goes on


def test_a_body_within_the_limit_goes_through(server: LabbookServer):
    with server.client() as http:
        answer = http.post("/api/v1/runs", json={"name": "small", "project": "lab/limits"})
        assert answer.status_code == 201, answer.text
