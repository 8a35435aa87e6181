"""A run's console output: ``sys.stdout`` and ``sys.stderr`` teed to Labbook.

``sdk.init()`` replaces both streams with a :class:`Tee` that first writes to
the original stream, unchanged and at once (the terminal shows what it always
did), then splits the text into lines for the run (``Console.feed``):

* a line ends at ``\\n``; a partial line waits for its newline, or is sent by
  ``run.flush()`` and ``finish()``;
* ``\\r`` starts the line over, as a terminal redraw does (tqdm and other
  progress bars): only the line's last state is sent, not each redraw. A line
  redrawn for longer than ``PROGRESS_EVERY`` seconds also sends the state it
  had then, about twice a minute, so a long bar shows on the run page before
  it ends (lines are never replaced on the server: each snapshot is a line);
  ``\\r\\n`` is an ordinary line end;
* a line longer than ``MAX_LINE_CHARS`` is sent as several lines;
* lines are numbered 0, 1, 2, ... across both streams (a resumed run goes on
  from the server's count); colour codes are kept as written.

The writer does no I/O of its own: each line is one ``("c", ...)`` record on
the run's sender queue (batched, retried, spooled as kind ``"console"`` and
uploaded by ``sync`` like points). Only when that queue is full are lines
written to the spool from the writing thread, as ``run.log()`` does.

What is not captured: anything that bypasses the Python streams, i.e. output
written to file descriptors 1 and 2 directly (C/C++ extensions, subprocesses,
``os.write``, ``sys.stdout.buffer.write``, faulthandler dumps). It still
reaches the terminal. Capturing it would mean ``dup2`` of a pipe over the
descriptors and a reader thread: output would reach the terminal late, and
whatever sat in the pipe when the process was killed would be lost.

A forked child stops capturing (its lines would collide with the parent's
numbers); the streams are restored at ``finish()``, unless something else
replaced them since, in which case the tee stays and just passes text on.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from threading import get_ident
from typing import Any, TextIO

MAX_LINE_CHARS = 10_000  # the server's ConsoleLine.text max_length
MAX_LINES_PER_REQUEST = 5_000  # tracking.console.MAX_LINES_PER_REQUEST
MAX_REQUEST_CHARS = 1_000_000  # text per request; JSON escapes at most 6x (16 MiB body limit)
PROGRESS_EVERY = 30.0  # seconds a redrawn line waits before its current state is sent
SPILL_LINES = 1_000  # lines gathered before a full queue is spilled to the spool
STREAMS = ("stdout", "stderr")

# One queued line: ("c", number, stream, text, unix timestamp).
Put = Callable[[tuple[Any, ...]], bool]
Spill = Callable[[list[dict[str, Any]]], None]


def line_dict(number: int, stream: str, text: str, stamp: float) -> dict[str, Any]:
    """A line as the API takes it: no NUL, no lone surrogates (the server refuses both)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return {"number": number, "stream": stream, "text": text, "timestamp": stamp}


def batches(lines: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    """Lines in request-sized groups (count and characters)."""
    group: list[dict[str, Any]] = []
    size = 0
    for line in lines:
        cost = len(line["text"]) + 1
        if group and (len(group) >= MAX_LINES_PER_REQUEST or size + cost > MAX_REQUEST_CHARS):
            yield group
            group, size = [], 0
        group.append(line)
        size += cost
    if group:
        yield group


def keep_refused(path: Path, lines: list[dict[str, Any]], why: str) -> None:
    """Set aside lines the server will never take (a 400) in ``path``, so later records go."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"error": why, "kind": "console", "lines": lines}) + "\n")


class _Line:
    """The line being written on one stream."""

    __slots__ = ("carriage", "parts", "size", "started", "stream")

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.parts: list[str] = []
        self.size = 0
        self.carriage = False  # a \r was written: the next text starts the line over
        self.started: float | None = None  # monotonic time the line got its first text


class Console:
    """Splits what a run's process writes into numbered lines and queues them."""

    def __init__(
        self, *, put: Put, spill: Spill, first_number: int = 0, skip_thread: int | None = None
    ) -> None:
        self._put = put
        self.skip_thread = skip_thread  # the sender's: its warnings about lines make no lines
        self._spill = spill
        self._next = first_number
        self._lock = threading.RLock()  # re-entrant: a signal handler may print mid-write
        self._lines = {name: _Line(name) for name in STREAMS}
        self._overflow: list[dict[str, Any]] = []
        self._tees: list[Tee] = []
        self._handlers: list[tuple[logging.StreamHandler[Any], TextIO]] = []
        self.active = False

    @property
    def next_number(self) -> int:
        return self._next

    # --- the streams -----------------------------------------------------------------

    def start(self) -> None:
        """Tee sys.stdout and sys.stderr (and logging handlers that write to them)."""
        self.active = True
        for name in STREAMS:
            original = getattr(sys, name)
            if original is None:  # pythonw, some daemons
                continue
            tee = Tee(original, self, self._lines[name])
            self._tees.append(tee)
            setattr(sys, name, tee)
            self._retarget_handlers(original, tee)

    def _retarget_handlers(self, original: TextIO, tee: Tee) -> None:
        """``logging.basicConfig()`` before ``init()`` holds the original stream: tee it too."""
        loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for logger in loggers:
            for handler in getattr(logger, "handlers", ()):
                if type(handler) is logging.StreamHandler and handler.stream is original:
                    handler.stream = tee
                    self._handlers.append((handler, original))

    def stop(self) -> None:
        """Send the partial lines, stop capturing, put the original streams back."""
        self.flush()
        self.active = False
        for tee in self._tees:
            name = tee.line.stream
            if getattr(sys, name) is tee:  # else someone replaced it: the tee passes text on
                setattr(sys, name, tee.original)
        for handler, original in self._handlers:
            if handler.stream in self._tees:
                handler.stream = original
        self._tees, self._handlers = [], []

    def forked(self) -> None:
        """In a forked child: capture nothing (the parent numbers the lines) and put the
        original streams back; the lock may have been held by a thread that is gone."""
        self._lock = threading.RLock()
        self.active = False
        self._overflow = []
        for line in self._lines.values():
            line.parts, line.size, line.carriage, line.started = [], 0, False, None
        for tee in self._tees:
            if getattr(sys, tee.line.stream) is tee:
                setattr(sys, tee.line.stream, tee.original)

    # --- lines ---------------------------------------------------------------------------

    def add_unprinted(self, stream: str, text: str) -> None:
        """Lines the terminal gets later (a traceback printed after the run finished)."""
        if self.active:
            line = self._lines[stream]
            if line.parts:
                with self._lock:
                    self._end(line)
            self.feed(line, text)

    def feed(self, line: _Line, text: str) -> None:
        """Split ``text`` written to ``line``'s stream into lines (the writer's thread)."""
        with self._lock:
            if "\n" not in text and "\r" not in text:
                self._add(line, text)
            else:
                pieces = text.split("\n")
                for piece in pieces[:-1]:
                    self._add_redrawn(line, piece)
                    self._end(line)
                self._add_redrawn(line, pieces[-1])
            spill = self._take_overflow(SPILL_LINES) if self._overflow else None
        if spill:
            self._spill(spill)

    def _add_redrawn(self, line: _Line, piece: str) -> None:
        if "\r" not in piece:
            self._add(line, piece)
            return
        chunks = piece.split("\r")
        self._add(line, chunks[0])
        for chunk in chunks[1:]:
            line.carriage = True
            self._add(line, chunk)

    def _add(self, line: _Line, text: str) -> None:
        if not text:
            return
        if line.carriage:
            line.carriage = False
            self._redraw(line)
        if line.started is None:
            line.started = time.monotonic()
        line.parts.append(text)
        line.size += len(text)
        if line.size > MAX_LINE_CHARS:
            whole = "".join(line.parts)
            cut = (len(whole) - 1) // MAX_LINE_CHARS * MAX_LINE_CHARS  # keep 1..MAX waiting
            for start in range(0, cut, MAX_LINE_CHARS):
                self._emit(line.stream, whole[start : start + MAX_LINE_CHARS])
            rest = whole[cut:]
            line.parts, line.size = [rest] if rest else [], len(rest)

    def _redraw(self, line: _Line) -> None:
        """A \\r then text: the line starts over; its state is kept now and then."""
        if line.parts and line.started is not None:
            now = time.monotonic()
            if now - line.started >= PROGRESS_EVERY:
                self._emit(line.stream, "".join(line.parts))
                line.started = now
        line.parts, line.size = [], 0

    def _end(self, line: _Line) -> None:
        self._emit(line.stream, "".join(line.parts))
        line.parts, line.size, line.carriage, line.started = [], 0, False, None

    def _emit(self, stream: str, text: str) -> None:
        number = self._next
        self._next += 1
        stamp = time.time()
        if not self._put(("c", number, stream, text, stamp)):
            self._overflow.append(line_dict(number, stream, text, stamp))

    def _take_overflow(self, at_least: int) -> list[dict[str, Any]]:
        if len(self._overflow) < max(at_least, 1):
            return []
        taken, self._overflow = self._overflow, []
        return taken

    def flush(self) -> None:
        """Send the partial lines and whatever waits for a full queue to drain."""
        with self._lock:
            if self.active:
                for line in self._lines.values():
                    if line.parts:
                        self._end(line)
            spill = self._take_overflow(1)
        if spill:
            self._spill(spill)


class Tee:
    """Stands in for sys.stdout / sys.stderr: the original stream gets every write first."""

    def __init__(self, original: TextIO, console: Console, line: _Line) -> None:
        self.original = original
        self.console = console
        self.line = line

    def write(self, text: str) -> int:
        written = self.original.write(text)
        console = self.console
        if console.active and text and get_ident() != console.skip_thread:
            try:  # noqa: SIM105 - contextlib.suppress costs a third of a microsecond a write
                console.feed(self.line, text)
            except Exception:  # noqa: S110 - the training code must never hear of us
                pass
        return written

    def writelines(self, lines: Iterable[str]) -> None:
        for text in lines:
            self.write(text)

    def flush(self) -> None:
        self.original.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, buffer, ...
        return getattr(self.original, name)
