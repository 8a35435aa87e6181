"""A fault-injecting HTTP proxy on loopback, between the SDK and a real server.

Program it with ``proxy.fail(...)``: the next ``times`` requests (optionally
only those whose method and path match) are answered with a status, delayed,
or have their connection closed, before or after the real server saw them.
Every request is recorded (method, path, batch_id, what happened, when), so a
test can prove that a retry happened and re-sent the same batch.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
}
Action = Literal["status", "delay", "close", "drop_response"]


@dataclass
class Fault:
    """What to do to the next ``times`` matching requests.

    - ``status``: answer ``status`` (with ``Retry-After`` when set) without forwarding;
    - ``delay``: wait ``seconds``, then forward;
    - ``close``: close the connection without answering and without forwarding;
    - ``drop_response``: forward (the server applies it), then close without answering.
    """

    action: Action
    times: int
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    method: str | None = None
    path: re.Pattern[str] | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and method != self.method:
            return False
        return self.path is None or self.path.search(path) is not None


@dataclass
class Record:
    at: float
    method: str
    path: str
    outcome: str  # "forwarded", "status 500", "delayed", "closed", "dropped response", ...
    status: int | None
    batch_id: str | None
    body: Any = None
    response: Any = None


@dataclass
class Upstream:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    payload: bytes


@dataclass
class Counters:
    records: list[Record] = field(default_factory=list)

    def where(self, *, method: str | None = None, path: str | None = None) -> list[Record]:
        pattern = re.compile(path) if path else None
        return [
            r
            for r in self.records
            if (method is None or r.method == method)
            and (pattern is None or pattern.search(r.path))
        ]


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults: list[Fault] = []
        self.counters = Counters()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    # --- Programming and reading -------------------------------------------------------

    def fail(
        self,
        action: Action,
        times: int,
        *,
        status: int = 503,
        retry_after: str | None = None,
        seconds: float = 0.0,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Queue a fault; faults apply in the order they were queued."""
        pattern = re.compile(path) if path else None
        fault = Fault(action, times, status, retry_after, seconds, method, pattern)
        with self.lock:
            self.faults.append(fault)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def record(self, record: Record) -> None:
        with self.lock:
            self.counters.records.append(record)

    def forwarded(self, **match: str) -> list[Record]:
        return [r for r in self.counters.where(**match) if r.outcome in ("forwarded", "delayed")]

    def failed(self, **match: str) -> list[Record]:
        return [
            r for r in self.counters.where(**match) if r.outcome not in ("forwarded", "delayed")
        ]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(ProxyHandler):
            owner = proxy

        return Handler


def _json_or_none(raw: bytes) -> Any:
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        return json.loads(raw) if raw else None
    return None


class ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's client expects

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the records say what happened

    def do_GET(self) -> None:
        self.handle_one()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def read_chunked(self) -> bytes:
        body = b""
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return body

    def handle_one(self) -> None:
        raw = self.read_body()
        body = _json_or_none(raw)
        batch_id = body.get("batch_id") if isinstance(body, dict) else None
        fault = self.owner.take_fault(self.command, self.path)
        note = {"at": time.monotonic(), "method": self.command, "path": self.path}
        note.update(batch_id=batch_id, body=body)
        if fault is None:
            self.forward(raw, "forwarded", note)
        else:
            self.apply(fault, raw, note)

    def apply(self, fault: Fault, raw: bytes, note: dict[str, Any]) -> None:
        if fault.action == "status":
            self.owner.record(Record(outcome=f"status {fault.status}", status=fault.status, **note))
            self.answer_fault(fault)
        elif fault.action == "delay":
            time.sleep(fault.seconds)
            self.forward(raw, "delayed", note)
        elif fault.action == "close":
            self.owner.record(Record(outcome="closed", status=None, **note))
            self.close_now()
        else:
            self.forward(raw, "dropped response", note, send=False)
            self.close_now()

    def forward(self, raw: bytes, outcome: str, note: dict[str, Any], *, send: bool = True) -> None:
        """Ask the server; record what it said before the client can see it (no race)."""
        upstream = self.fetch(raw)
        status = upstream.status if upstream else 502
        answer = _json_or_none(upstream.payload) if upstream else None
        self.owner.record(Record(outcome=outcome, status=status, response=answer, **note))
        if send and upstream is None:
            self.send_error(502, "upstream unreachable")
        elif send:
            self.relay(upstream)

    def answer_fault(self, fault: Fault) -> None:
        payload = json.dumps({"error": {"code": "injected", "message": "fault proxy"}}).encode()
        self.send_response(fault.status)
        if fault.retry_after is not None:
            self.send_header("Retry-After", fault.retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def close_now(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(2)

    def fetch(self, raw: bytes) -> Upstream | None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        connection = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            connection.request(self.command, self.path, body=raw or None, headers=headers)
            response = connection.getresponse()
            return Upstream(
                response.status, response.reason, response.getheaders(), response.read()
            )
        except OSError:
            return None
        finally:
            connection.close()

    def relay(self, upstream: Upstream) -> None:
        self.send_response(upstream.status, upstream.reason)
        for name, value in upstream.headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(upstream.payload)))
        self.end_headers()
        self.wfile.write(upstream.payload)
