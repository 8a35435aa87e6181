"""A run's console output: the lines its process wrote to stdout and stderr.

The SDK tees both streams and sends them in batches of numbered lines
(``POST /api/v1/runs/<id>/console``)::

    {"lines": [{"number": 0, "stream": "stdout", "text": "epoch 1", "timestamp": 1700000000.5}]}

Lines are numbered by the client, 0, 1, 2, … across the run's life (a resumed
run goes on from the count the server holds), so a retried batch stores
nothing twice and a line is never replaced. Text is kept as the program
wrote it, ANSI colour codes included: the run page draws them, and every
place that is not a terminal (the text download, alert messages, report
blocks) strips them with :func:`strip_ansi`, the one rule for that.

A run keeps at most ``CONSOLE_MAX_BYTES`` (20 MiB) of lines; past it, lines
are counted in ``dropped`` and not kept, and the request still succeeds: a
chatty job must not fail or retry because of its log.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from kernel.errors import invalid
from kernel.limits import max_length
from tracking import events
from tracking.models import ConsoleLine, ConsoleStream, Run, RunConsole
from tracking.validation import clean_text

MAX_LINES_PER_REQUEST = 5_000
MAX_NUMBER = 2**31 - 1
MAX_READ = 5_000  # lines in one read
DEFAULT_READ = 1_000
MAX_SEARCH = 200  # characters of a search
TAIL_LINES = 20  # the last lines an alert about a failed run carries
# CSI sequences (colours, cursor moves) and OSC sequences (titles, links): linear-time patterns.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """The line as plain text, as a terminal would leave it: colour and other escape codes
    removed, and of a line redrawn with carriage returns (a progress bar) its last state."""
    text = _ANSI.sub("", text)
    if "\r" in text:
        text = next((part for part in reversed(text.split("\r")) if part), "")
    return text


def max_bytes() -> int:
    return settings.LABBOOK["CONSOLE_MAX_BYTES"]


@dataclass(frozen=True)
class Line:
    number: int
    stream: str
    text: str
    timestamp: float


@dataclass(frozen=True)
class ConsoleResult:
    accepted: int
    duplicates: int
    dropped: int


# --- Checking --------------------------------------------------------------------------------


def parse_lines(raw: Any, *, field: str = "lines") -> list[Line]:
    if not isinstance(raw, list):
        raise invalid(field, "Must be a list of lines.")
    if len(raw) > MAX_LINES_PER_REQUEST:
        raise invalid(field, f"At most {MAX_LINES_PER_REQUEST:,} lines per request.")
    now = time.time()
    return [_line(item, f"{field}[{index}]", now) for index, item in enumerate(raw)]


def _line(raw: Any, where: str, now: float) -> Line:
    if not isinstance(raw, dict):
        raise invalid(where, "Must be an object.")
    unknown = sorted(set(raw) - {"number", "stream", "text", "timestamp"})
    if unknown:
        raise invalid(f"{where}.{unknown[0]}", "Unknown field.")
    number = raw.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_NUMBER:
        raise invalid(f"{where}.number", f"An integer from 0 to {MAX_NUMBER}.")
    stream = raw.get("stream", ConsoleStream.STDOUT)
    if stream not in ConsoleStream.values:
        raise invalid(f"{where}.stream", "stdout or stderr.")
    if raw.get("text") is None:
        raise invalid(f"{where}.text", "The line's text, a string.")
    limit = max_length(ConsoleLine, "text")
    text = clean_text(raw["text"], field=f"{where}.text", max_length=limit, strip=False)
    stamp = raw.get("timestamp", now)
    if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp):
        raise invalid(f"{where}.timestamp", "Unix seconds, a finite number.")
    return Line(int(number), str(stream), text, float(stamp))


# --- Storing ---------------------------------------------------------------------------------


def console_append(*, run: Run, lines: list[Line]) -> ConsoleResult:
    """Store the lines not stored yet, within the run's cap; publish them to open pages."""
    unique = sorted({line.number: line for line in lines}.values(), key=lambda line: line.number)
    with transaction.atomic():
        RunConsole.objects.get_or_create(run=run)
        totals = RunConsole.objects.select_for_update().get(run=run)  # one batch at a time
        known = _stored_numbers(run, unique)
        new, dropped, size = [], 0, totals.bytes
        for line in unique:
            if line.number in known:
                continue
            cost = len(line.text.encode()) + 1
            if size + cost > max_bytes():
                dropped += 1
                continue
            size += cost
            new.append(line)
        ConsoleLine.objects.bulk_create(
            [ConsoleLine(run=run, **asdict(line)) for line in new], batch_size=1000
        )
        RunConsole.objects.filter(run=run).update(
            lines=totals.lines + len(new), bytes=size, dropped=totals.dropped + dropped
        )
        Run.objects.filter(pk=run.pk).update(last_seen_at=timezone.now())
        if new:
            events.publish(events.ConsoleAppended(run.pk, run.project_id, tuple(new)))
    return ConsoleResult(len(new), len(lines) - len(new) - dropped, dropped)


def _stored_numbers(run: Run, lines: list[Line]) -> set[int]:
    """Which of the (sorted) lines' numbers are stored: one range read, as clients send runs
    of consecutive lines."""
    if not lines:
        return set()
    rows = ConsoleLine.objects.filter(
        run=run, number__gte=lines[0].number, number__lte=lines[-1].number
    )
    return set(rows.values_list("number", flat=True))


# --- Reading ---------------------------------------------------------------------------------


def totals(run: Run) -> dict[str, int]:
    row = RunConsole.objects.filter(run=run).first()
    if row is None:
        return {"total": 0, "bytes": 0, "dropped": 0}
    return {"total": row.lines, "bytes": row.bytes, "dropped": row.dropped}


def read(
    run: Run,
    *,
    start: int | None = None,
    tail: int | None = None,
    search: str = "",
    limit: int = DEFAULT_READ,
) -> list[ConsoleLine]:
    """Lines in order: from line ``start``, or the last ``tail``; those containing
    ``search`` (any case, colour codes and all) when it is given."""
    rows: QuerySet[ConsoleLine] = ConsoleLine.objects.filter(run=run)
    if search:
        rows = rows.filter(text__icontains=search)
    if tail is not None:
        last = list(rows.order_by("-number")[: min(tail, limit)])
        return last[::-1]
    if start is not None:
        rows = rows.filter(number__gte=start)
    return list(rows.order_by("number")[:limit])


def last_lines(run_id: int, count: int = TAIL_LINES) -> list[str]:
    """The run's last ``count`` lines without colour codes: what an alert shows."""
    rows = ConsoleLine.objects.filter(run_id=run_id).order_by("-number")[:count]
    return [strip_ansi(text) for text in reversed(rows.values_list("text", flat=True))]


def plain_text(run: Run) -> Iterator[str]:
    """The whole console as text without colour codes, in blocks: the download."""
    rows = ConsoleLine.objects.filter(run=run).order_by("number").values_list("text", flat=True)
    block: list[str] = []
    for text in rows.iterator(chunk_size=2000):
        block.append(strip_ansi(text) + "\n")
        if len(block) >= 2000:
            yield "".join(block)
            block = []
    if block:
        yield "".join(block)


def line_dict(line: ConsoleLine) -> dict[str, Any]:
    return {
        "number": line.number,
        "stream": line.stream,
        "text": line.text,
        "timestamp": line.timestamp,
    }
