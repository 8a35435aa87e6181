"""Diagnostic tasks that prove a worker consumes its queue.

Tasks ignore their results (there is no result backend), so a round trip is
proven by a side effect the caller can see: a file appearing. Workers load
this module only when asked (``celery worker -I labbook.diagnostics``).
"""

from __future__ import annotations

from pathlib import Path

from celery import shared_task


@shared_task(name="labbook.touch_file")
def touch_file(path: str) -> None:
    """Write ``path`` atomically, so a watcher never sees a half-written file."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text("consumed\n")
    partial.replace(target)
