"""Upload spooled runs: ``python -m tracking.sdk sync [DIR]``.

Each folder is uploaded in order, record by record, remembering progress in
the folder; points keep their ``batch_id`` and console lines their numbers, so
an interrupted or repeated sync stores nothing twice (media the server
recognises by content). A folder is deleted once everything is uploaded; media
items and console lines the server refuses (a 400) are kept in its
``refused.jsonl`` instead, and the rest goes on.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracking.sdk import console, media, spool
from tracking.sdk.transport import Transport, TransportError

Progress = Callable[[int], None]
REFUSED_FILE = "refused.jsonl"  # media items the server will not take, one a line


def _ensure_run(folder: Path, transport: Transport, budget: float) -> int:
    """The server's id for the spooled run, creating the run once if it was offline."""
    header = spool.read_header(folder)
    if header.get("run_id") is None:
        created = transport.request_retrying(
            "POST", "/api/v1/runs", header["create"], budget=budget
        )
        header["run_id"] = created["id"]
        spool.write_header(folder, header)
    return int(header["run_id"])


def _send(
    record: dict[str, Any], run_id: int, transport: Transport, budget: float, folder: Path
) -> None:
    kind = record.get("kind")
    if kind == "points":
        body = {"batch_id": record["batch_id"], "points": record["points"]}
        transport.request_retrying("POST", f"/api/v1/runs/{run_id}/metrics", body, budget=budget)
    elif kind == "patch":
        transport.request_retrying("PATCH", f"/api/v1/runs/{run_id}", record["data"], budget=budget)
    elif kind == "alert":
        transport.request_retrying(
            "POST", f"/api/v1/runs/{run_id}/alerts", record["data"], budget=budget
        )
    elif kind == "media":
        try:
            refused = media.upload(transport, run_id, record["items"], budget=budget)
        except media.NotSent as problem:
            raise problem.error from None
        _keep_refused(folder, refused)
    elif kind == "console":
        _send_console(record["lines"], run_id, transport, budget, folder)


def _send_console(
    lines: list[dict[str, Any]], run_id: int, transport: Transport, budget: float, folder: Path
) -> None:
    """Console lines (numbered: sending them twice stores them once); a 400 sets them aside."""
    path = f"/api/v1/runs/{run_id}/console"
    try:
        transport.request_retrying("POST", path, {"lines": lines}, budget=budget)
    except TransportError as error:
        if error.status != 400:
            raise
        console.keep_refused(folder / REFUSED_FILE, lines, str(error))
        print(
            f"labbook: {folder}: the server refused {len(lines)} console lines ({error});"
            f" kept in {folder / REFUSED_FILE}",
            file=sys.stderr,
        )


def _keep_refused(folder: Path, refused: list[media.Refused]) -> None:
    """Set aside what the server will never take, so the items after it are uploaded."""
    if not refused:
        return
    with open(folder / REFUSED_FILE, "a", encoding="utf-8") as handle:
        for item, why in refused:
            handle.write(json.dumps({"error": why, "item": item}) + "\n")
    print(
        f"labbook: {folder}: the server refused {len(refused)} media item(s)"
        f" ({refused[0][1]}); kept in {folder / REFUSED_FILE}",
        file=sys.stderr,
    )


def sync_folder(
    folder: Path, transport: Transport, *, budget: float = 30, progress: Progress | None = None
) -> int:
    """Upload one run's spool; returns its run id. Raises ``TransportError`` when it cannot."""
    run_id = _ensure_run(folder, transport, budget)
    records, torn = spool.read_records(folder)
    if torn:
        print(
            f"labbook: {folder}: skipped {torn} torn line(s) (a crash mid-write)", file=sys.stderr
        )
    done = spool.read_progress(folder)
    for index in range(done, len(records)):
        _send(records[index], run_id, transport, budget, folder)
        spool.write_progress(folder, index + 1)
        if progress is not None:
            progress(len(records[index].get("points", ())))
    if (folder / REFUSED_FILE).exists():  # keep those and the run's header, drop what was sent
        (folder / spool.RECORDS_FILE).unlink()
        (folder / spool.PROGRESS_FILE).unlink(missing_ok=True)
    else:
        shutil.rmtree(folder)
    return run_id


def pending_points(folder: Path) -> int:
    records, _ = spool.read_records(folder)
    return sum(len(r.get("points", ())) for r in records[spool.read_progress(folder) :])


class ProgressBar:
    """``[#####.....]  45%  4,500/10,000 points`` on stderr, redrawn at most 10 times a second."""

    def __init__(self, total: int, label: str, *, width: int = 30) -> None:
        self.total, self.label, self.width = max(total, 1), label, width
        self.done = 0
        self._drawn = 0.0
        self._tty = sys.stderr.isatty()

    def __call__(self, points: int) -> None:
        self.done += points
        if self._tty and time.monotonic() - self._drawn > 0.1:
            self._draw("\r")

    def close(self) -> None:
        self._draw("\r" if self._tty else "")
        print(file=sys.stderr)

    def _draw(self, start: str) -> None:
        self._drawn = time.monotonic()
        share = min(self.done / self.total, 1.0)
        filled = int(share * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"{self.label} [{bar}] {share:4.0%}  {self.done:,}/{self.total:,} points"
        print(start + line, end="", file=sys.stderr, flush=True)


def sync_all(spool_dir: Path, *, url: str | None, token: str, budget: float = 60) -> int:
    """Upload every spooled run under ``spool_dir``; the number of runs left behind."""
    folders = spool.spooled_runs(spool_dir)
    if not folders:
        print(f"labbook: nothing to upload in {spool_dir}", file=sys.stderr)
        return 0
    failed = 0
    for folder in folders:
        server = url or spool.read_header(folder)["url"]
        transport = Transport(server, token)
        bar = ProgressBar(pending_points(folder), f"{folder.name} → {server}")
        try:
            run_id = sync_folder(folder, transport, budget=budget, progress=bar)
        except Exception as problem:
            bar.close()
            print(f"labbook: {folder.name}: not uploaded: {problem}", file=sys.stderr)
            failed += 1
            continue
        finally:
            transport.close()
        bar.close()
        print(f"labbook: {folder.name}: uploaded to run {run_id}", file=sys.stderr)
    return failed
