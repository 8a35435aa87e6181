"""The export file: JSON Lines, UTF-8, optionally gzipped.

Line 1 is the header ``{"kind": "labbook-export", "version": 1, "project":
"team/slug", "exported_at": "<ISO 8601>"}``. Every other line is one object
with a ``type`` (``project``, ``run``, ``points``, ``report``, ...), and the
last is ``{"type": "end", "counts": {...}}``: a file cut short exactly at a
line boundary still parses line by line, and only the missing trailer (or
its counts) tells the reader that something is missing.

Times are ISO 8601 with their offset. Metric values JSON cannot spell are the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, as everywhere in
Labbook's API; JSON objects (config, summary, ...) follow the same rule. Ids
in the file are the exporting database's and only link lines to each other.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal, overload

from kernel.errors import invalid
from tracking.validation import clean_text, float_to_json, json_loads, json_safe

KIND = "labbook-export"
VERSION = 1
POINTS_PER_LINE = 10_000  # one ingest batch: memory stays bounded on both ends
GZIP_MAGIC = b"\x1f\x8b"

Line = dict[str, Any]
# Where text goes: a file, or a command's self.stdout (Django's OutputWrapper, a TextIOBase).
TextOut = IO[str] | io.TextIOBase


class PortabilityError(Exception):
    """A problem with the file or the request, said plainly (the commands show it as is)."""


# --- Values ----------------------------------------------------------------------------


def dumps(line: Line) -> str:
    """One line of the file (strict JSON: a stray NaN in a JSON field becomes "NaN")."""
    try:
        text = json.dumps(line, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(json_safe(line), ensure_ascii=False, separators=(",", ":"))
    return text + "\n"


def records(line: Line) -> int:
    """How many records a line holds: the points of a ``points`` line, the console lines of a
    ``console`` line, else one."""
    kind = line.get("type")
    if kind == "points":
        return len(line["steps"])
    if kind == "console":
        return len(line["lines"]) if isinstance(line.get("lines"), list) else 1
    return 1


def encode_values(values: list[float | None]) -> list[float | str]:
    # ``v - v`` is 0 for every finite float and NaN for NaN and the infinities.
    return [v if v is not None and v - v == 0 else float_to_json(v) for v in values]


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@overload
def when(line: Line, name: str, *, required: Literal[True]) -> datetime: ...
@overload
def when(line: Line, name: str, *, required: bool = False) -> datetime | None: ...
def when(line: Line, name: str, *, required: bool = False) -> datetime | None:
    """The time in ``line[name]``, which must carry its offset."""
    value = line.get(name)
    if value is None and not required:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise invalid(name, "Must be an ISO 8601 time with its offset, e.g. 2025-01-31T12:00Z.")
    return moment


def text(line: Line, name: str, *, max_length: int, required: bool = False) -> str:
    return clean_text(line.get(name), field=name, max_length=max_length, required=required)


@overload
def whole(
    line: Line, name: str, *, low: int, high: int, nullable: Literal[False] = False
) -> int: ...
@overload
def whole(line: Line, name: str, *, low: int, high: int, nullable: bool) -> int | None: ...
def whole(line: Line, name: str, *, low: int, high: int, nullable: bool = False) -> int | None:
    value = line.get(name)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(name, f"Must be a whole number from {low} to {high}.")
    return value


def ref(line: Line, name: str, ids: dict[int, int], what: str) -> int:
    """The new id of the ``what`` whose file id is ``line[name]`` (an earlier line)."""
    value = line.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value not in ids:
        raise invalid(name, f"No {what} with id {value!r} earlier in the file.")
    return ids[value]


# --- Files -----------------------------------------------------------------------------


@contextmanager
def open_output(path: str, stdout: TextOut) -> Iterator[TextOut]:
    """A text stream to ``path`` (``-``: stdout; ``*.gz``: gzipped).

    The file appears only when complete: it is written under a temporary name
    and renamed at the end, so a failed export never leaves a file that looks whole.
    """
    if path == "-":
        yield stdout
        return
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with _open_write(partial, gzipped=path.endswith(".gz")) as stream:
            yield stream
        partial.replace(target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise PortabilityError(f"Cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _open_write(path: Path, *, gzipped: bool) -> IO[str]:
    if gzipped:
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=6)
    return path.open("w", encoding="utf-8")


@dataclass
class Input:
    """The file's text, and how far into it (in bytes on disk) reading has come."""

    stream: IO[str]
    position: Callable[[], int]
    size: int | None


@contextmanager
def open_input(path: str, stdin: IO[str]) -> Iterator[Input]:
    """Read ``path`` (``-``: stdin); gzip is recognised by its first bytes, not the name."""
    if path == "-":
        yield Input(stdin, lambda: 0, None)
        return
    try:
        raw = Path(path).open("rb")  # noqa: SIM115 - closed below, after the caller is done
    except OSError as error:
        raise PortabilityError(f"Cannot read {path}: {error.strerror or error}") from None
    with raw:
        binary = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == GZIP_MAGIC else raw
        stream = io.TextIOWrapper(binary, encoding="utf-8", newline="\n")
        yield Input(stream, raw.tell, os.fstat(raw.fileno()).st_size)


def read_lines(stream: IO[str]) -> Iterator[tuple[int, Line]]:
    """(line number, object) for every line; a line that is no JSON object raises."""
    number = 0
    lines = iter(stream)
    while True:
        number += 1
        try:
            raw = next(lines)
        except StopIteration:
            return
        except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
            raise PortabilityError(f"line {number}: cannot be read ({error}).") from None
        yield number, _parse(number, raw)


def _parse(number: int, raw: str) -> Line:
    try:
        line = json_loads(raw)
    except (ValueError, RecursionError):
        cut = "" if raw.endswith("\n") else " (the file ends in the middle of it)"
        raise PortabilityError(f"line {number}: not valid JSON{cut}.") from None
    if not isinstance(line, dict):
        raise PortabilityError(f"line {number}: must be a JSON object.")
    return line


def check_header(line: Line) -> str:
    """The exported project's full name, after checking the file is one Labbook reads."""
    if line.get("kind") != KIND:
        raise PortabilityError(f'line 1: not a Labbook export (expected "kind": "{KIND}").')
    if line.get("version") != VERSION:
        raise PortabilityError(
            f"line 1: export format version {line.get('version')!r} is not supported"
            f" (this Labbook reads version {VERSION})."
        )
    project = line.get("project")
    if not isinstance(project, str) or "/" not in project:
        raise PortabilityError('line 1: "project" must name the project as "team/project".')
    return project
