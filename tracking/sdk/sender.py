"""The background thread that ships a run's records to the server.

``Run.log()`` only appends to a deque (no lock, no I/O); this thread wakes
every ``flush_seconds`` (or sooner when the deque grows), groups points into
batches of up to 10,000 with a fresh ``batch_id``, and sends them with
retries. A batch the server cannot take within ``retry_seconds`` goes to the
run's spool file with its ``batch_id``; while the server stays unreachable
each later batch gets one attempt before it is spooled, so the deque never
backs up behind a dead server.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import uuid
from collections import deque
from typing import Any

from tracking.sdk import console, media, sync
from tracking.sdk.settings import Settings
from tracking.sdk.spool import SpoolRun
from tracking.sdk.transport import Transport, TransportError

MAX_POINTS_PER_BATCH = 10_000
WAKE_AT = 2_000  # records queued before log() wakes the sender early
MEDIA_QUEUE_BYTES = 256 * 1024 * 1024  # images etc. held in memory before log() spools them

# Records: ("p", step, timestamp, {key: value}) points of one log() call,
# ("m", step, timestamp, [(key, Media), ...]) media of one log() call (encoded by this thread),
# ("u", {field: value}) a run change, ("a", {...}) an alert, ("f", Event) a flush marker,
# ("c", number, stream, text, timestamp) a console line (tracking/sdk/console.py).
Record = tuple[Any, ...]
# kind -> (method, path after /api/v1/runs/{id}, what to call it, spool record kind)
_ROUTES = {"u": ("PATCH", "", "run update", "patch"), "a": ("POST", "/alerts", "alert", "alert")}


def json_value(value: float) -> float | str:
    if value - value == 0:  # finite
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def warn(message: str) -> None:
    print(f"labbook: {message}", file=sys.stderr, flush=True)


def encode_media(record: Record) -> list[media.Item]:
    """The API items of a ("m", ...) record; one that cannot be encoded is reported, not sent."""
    _, step, stamp, entries = record[:4]
    items = []
    for key, value in entries:
        try:
            items.append(value.item(key, step, stamp))
        except Exception as error:  # Pillow, numpy: the training code must not hear of it
            warn(f"LOST {value.kind} {key!r} at step {step}: {type(error).__name__}: {error}")
    return items


class Sender:
    def __init__(self, *, settings: Settings, run_id: int | None, spool: SpoolRun) -> None:
        self.settings = settings
        self.run_id = run_id
        self.spool = spool
        self.queue: deque[Record] = deque()
        self.wake = threading.Event()
        self.abandoned = threading.Event()
        self.degraded = False
        self.sent_points = 0
        self.sent_media = 0
        self.sent_lines = 0
        self.media_bytes = 0  # what the queued media records hold
        self._media_lock = threading.Lock()
        self._stopping = False
        self._warned: set[str] = set()
        self._transport = Transport(settings.url, settings.token, timeout=settings.request_timeout)
        self._last_contact = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="labbook-sender", daemon=True)

    # --- called from the training code's threads -----------------------------------

    def start(self) -> None:
        self._thread.start()

    @property
    def thread_ident(self) -> int | None:
        """The sender thread's id: the console tee does not capture its warnings (a loop)."""
        return self._thread.ident

    def put(self, record: Record) -> bool:
        """Queue ``record``; False when the queue is full (the caller spools it)."""
        queue = self.queue
        if len(queue) >= self.settings.queue_size:
            return False
        queue.append(record)
        if len(queue) == WAKE_AT:
            self.wake.set()
        return True

    def put_media(self, record: Record, size: int) -> bool:
        """Queue a media record holding ``size`` bytes; False when memory or queue is full."""
        with self._media_lock:
            if self.media_bytes and self.media_bytes + size > MEDIA_QUEUE_BYTES:
                return False
            self.media_bytes += size
        if self.put((*record, size)):
            return True
        with self._media_lock:
            self.media_bytes -= size
        return False

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far was sent or spooled."""
        done = threading.Event()
        self.queue.append(("f", done))
        self.wake.set()
        return done.wait(timeout)

    def abandon(self) -> None:
        """Stop talking to the server: spool whatever is still queued."""
        self.abandoned.set()
        self.wake.set()

    def stop(self, timeout: float) -> None:
        self._stopping = True
        self.wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- the thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self.wake.wait(self.settings.flush_seconds)
            self.wake.clear()
            try:
                self._drain()
            except Exception as error:  # the thread must outlive any surprise
                warn(f"sender error: {type(error).__name__}: {error}")
            if self._stopping and not self.queue:
                break
            self._heartbeat_if_idle()
        self._transport.close()

    def _drain(self) -> None:
        queue = self.queue
        while queue:
            points = self._take_points()
            if points:
                self._deliver_points(points)
            elif queue and queue[0][0] == "m":
                self._deliver_media(self._take_media())
            elif queue and queue[0][0] == "c":
                self._deliver_console(self._take_console())
            elif queue:
                self._deliver_other(queue.popleft())

    def _take_points(self) -> list[dict[str, Any]]:
        queue = self.queue
        points: list[dict[str, Any]] = []
        while queue and queue[0][0] == "p":
            _, step, stamp, values = queue[0]
            if points and len(points) + len(values) > MAX_POINTS_PER_BATCH:
                break
            queue.popleft()
            points.extend(
                {"key": key, "step": step, "value": json_value(value), "timestamp": stamp}
                for key, value in values.items()
            )
        return points

    def _take_media(self) -> list[media.Item]:
        """Encode the media records at the head of the queue, about a request's worth."""
        queue = self.queue
        items: list[media.Item] = []
        while queue and queue[0][0] == "m" and len(items) < media.MAX_ITEMS_PER_REQUEST:
            record = queue.popleft()
            items += encode_media(record)
            with self._media_lock:
                self.media_bytes -= record[4]
        return items

    def _deliver_media(self, items: list[media.Item]) -> None:
        if not items:
            return
        if self.run_id is None or self.abandoned.is_set():
            self.keep_media(items)
            return
        budget = 0.0 if self.degraded else self.settings.retry_seconds
        try:
            refused = media.upload(
                self._transport,
                self.run_id,
                items,
                budget=budget,
                interrupt=self.abandoned,
                on_sent=self._count_media,
            )
        except media.NotSent as problem:
            self._failed(problem.error, "media item")
            self.keep_media(problem.items)
            return
        self.degraded = False
        self._last_contact = time.monotonic()
        for item, why in refused:
            self._warn_once(
                "refused-media",
                f"the server refused {item['kind']} {item['key']!r} at step {item['step']}"
                f" ({why}); kept in {self.spool.folder}, the rest is sent",
            )
        self.keep_media([item for item, _ in refused])

    def _count_media(self, sent: int) -> None:
        self.sent_media += sent

    def keep_media(self, items: list[media.Item]) -> None:
        """Spool media items, a line per request's worth (base64 in the JSON line)."""
        for group in media.requests_of(items):
            self._keep({"kind": "media", "items": group})

    # --- console lines (tracking/sdk/console.py) ---------------------------------------------

    def _take_console(self) -> list[dict[str, Any]]:
        """The console lines at the head of the queue, a request's worth."""
        queue = self.queue
        lines: list[dict[str, Any]] = []
        size = 0
        while queue and queue[0][0] == "c" and len(lines) < console.MAX_LINES_PER_REQUEST:
            _, number, stream, text, stamp = queue[0]
            if lines and size + len(text) + 1 > console.MAX_REQUEST_CHARS:
                break
            queue.popleft()
            lines.append(console.line_dict(number, stream, text, stamp))
            size += len(text) + 1
        return lines

    def _deliver_console(self, lines: list[dict[str, Any]]) -> None:
        """Send, retry, spool; lines the server refuses (400) are set aside, not retried."""
        if self.run_id is None or self.abandoned.is_set():
            self.keep_console(lines)
            return
        budget = 0.0 if self.degraded else self.settings.retry_seconds
        path = f"/api/v1/runs/{self.run_id}/console"
        try:
            answer = self._transport.request_retrying(
                "POST", path, {"lines": lines}, budget=budget, interrupt=self.abandoned
            )
        except TransportError as error:
            if error.status == 400:
                self._refuse_console(lines, str(error))
                return
            self._failed(error, "console batch")
            self.keep_console(lines)
            return
        self.degraded = False
        self._last_contact = time.monotonic()
        self.sent_lines += len(lines)
        if isinstance(answer, dict) and answer.get("dropped"):
            self._warn_once(
                "console-full",
                "this run's console output reached the server's cap (CONSOLE_MAX_BYTES);"
                " later lines are counted, not stored",
            )

    def keep_console(self, lines: list[dict[str, Any]]) -> None:
        """Spool console lines, a line per request's worth."""
        for group in console.batches(lines):
            self._keep({"kind": "console", "lines": group})

    def _refuse_console(self, lines: list[dict[str, Any]], why: str) -> None:
        refused = self.spool.folder / sync.REFUSED_FILE
        try:
            console.keep_refused(refused, lines, why)
        except OSError as error:
            warn(f"LOST {len(lines)} console lines: refused ({why}), and writing failed: {error}")
            return
        self._warn_once(
            "refused-console",
            f"the server refused {len(lines)} console lines ({why}); kept in {refused},"
            " the rest is sent",
        )

    # --- points ----------------------------------------------------------------------------

    def _deliver_points(self, points: list[dict[str, Any]]) -> None:
        body = {"batch_id": uuid.uuid4().hex, "points": points}
        if self._deliver("POST", f"/api/v1/runs/{self.run_id}/metrics", body, "points"):
            self.sent_points += len(points)
        else:
            self._keep({"kind": "points", **body})

    def _keep(self, record: dict[str, Any]) -> None:
        """Spool ``record``; if even that fails, say what was lost instead of losing it quietly."""
        try:
            self.spool.append(record)
        except OSError as error:
            what = (
                f"{len(record['points'])} points" if "points" in record else f"a {record['kind']}"
            )
            if "items" in record:
                what = f"{len(record['items'])} media items"
            if "lines" in record:
                what = f"{len(record['lines'])} console lines"
            warn(f"LOST {what}: not sent, and writing {self.spool.folder} failed: {error}")

    def _deliver_other(self, record: Record) -> None:
        kind, payload = record
        if kind == "f":
            payload.set()
            return
        method, suffix, what, spooled_as = _ROUTES[kind]
        if not self._deliver(method, f"/api/v1/runs/{self.run_id}{suffix}", payload, what):
            self._keep({"kind": spooled_as, "data": payload})

    def _deliver(self, method: str, path: str, body: Any, what: str) -> bool:
        """Send with retries; False when the record must be spooled instead."""
        if self.run_id is None or self.abandoned.is_set():
            return False
        budget = 0.0 if self.degraded else self.settings.retry_seconds
        try:
            self._transport.request_retrying(
                method, path, body, budget=budget, interrupt=self.abandoned
            )
        except TransportError as error:
            self._failed(error, what)
            return False
        self.degraded = False
        self._last_contact = time.monotonic()
        return True

    def _failed(self, error: TransportError, what: str) -> None:
        if error.status == 429:
            self.degraded = True
            self._warn_once(
                "throttled",
                f"the server is limiting this token's requests ({error}) for longer than"
                f" LABBOOK_RETRY_SECONDS; keeping data in {self.spool.folder} meanwhile",
            )
        elif error.retryable:
            self.degraded = True
            self._warn_once(
                "down",
                f"the server is not answering ({error}); keeping data in {self.spool.folder}"
                " until it is back",
            )
        else:
            self._warn_once(
                f"refused-{what}",
                f"the server refused a {what} ({error}); kept in {self.spool.folder}",
            )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warn(message)

    def _heartbeat_if_idle(self) -> None:
        if self.run_id is None or self.degraded or self.abandoned.is_set():
            return
        if time.monotonic() - self._last_contact < self.settings.heartbeat_seconds:
            return
        try:
            self._transport.request("POST", f"/api/v1/runs/{self.run_id}/heartbeat")
        except TransportError:
            return  # the next batch finds out whether the server is gone
        self._last_contact = time.monotonic()
