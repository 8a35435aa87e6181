"""Append-only spool files: where points go when the server cannot take them.

One folder per run under the spool directory::

    run.json        server URL, run id (or the body to create it), project
    records.jsonl   one JSON record a line: points batches, run changes, alerts
    progress        how many lines ``sync`` has uploaded already

Lines are only ever appended, and a batch keeps its ``batch_id``, so
uploading twice stores nothing twice. The token is never written here.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
RECORDS_FILE = "records.jsonl"
PROGRESS_FILE = "progress"


@dataclass
class SpoolRun:
    """A run's spool folder, created on first write."""

    folder: Path
    header: dict[str, Any]

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.points_written = 0

    @classmethod
    def for_run(cls, spool_dir: Path, header: dict[str, Any]) -> SpoolRun:
        label = f"run-{header['run_id']}" if header.get("run_id") else "offline"
        return cls(spool_dir / f"{label}-{uuid.uuid4().hex[:8]}", header)

    @property
    def exists(self) -> bool:
        return (self.folder / RECORDS_FILE).exists()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, allow_nan=False) + "\n"
        with self._lock:
            if not self.exists:
                self.folder.mkdir(parents=True, exist_ok=True)
                write_header(self.folder, self.header)
            with open(self.folder / RECORDS_FILE, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self.points_written += len(record.get("points", ()))


def write_header(folder: Path, header: dict[str, Any]) -> None:
    """Replace run.json atomically (a crash leaves the old or the new one, never half)."""
    temporary = folder / (RUN_FILE + ".tmp")
    temporary.write_text(json.dumps(header, indent=2), encoding="utf-8")
    os.replace(temporary, folder / RUN_FILE)


def read_header(folder: Path) -> dict[str, Any]:
    header: dict[str, Any] = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    return header


def read_records(folder: Path) -> tuple[list[dict[str, Any]], int]:
    """The records, and how many trailing lines were torn (a crash mid-write)."""
    records: list[dict[str, Any]] = []
    torn = 0
    with open(folder / RECORDS_FILE, encoding="utf-8") as handle:
        for line in handle:
            try:
                records.append(json.loads(line))
            except ValueError:
                torn += 1
    return records, torn


def read_progress(folder: Path) -> int:
    try:
        return int((folder / PROGRESS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return 0


def write_progress(folder: Path, done: int) -> None:
    temporary = folder / (PROGRESS_FILE + ".tmp")
    temporary.write_text(str(done))
    os.replace(temporary, folder / PROGRESS_FILE)


def spooled_runs(spool_dir: Path) -> list[Path]:
    if not spool_dir.is_dir():
        return []
    return sorted(p for p in spool_dir.iterdir() if (p / RECORDS_FILE).is_file())
