"""At most ``RENDER_CONCURRENCY`` renders run at once in a web process.

Rendering (Markdown, sanitizing, report figures) is CPU work in Python. Threads
that render at the same time share one interpreter lock, and every other
request of the process waits its turn behind all of them: four clients sending
the worst reports allowed held ``/healthz`` at a p99 of one second. Rendering
one or two at a time does not slow renders down (the lock ran them one at a
time anyway); the renders beyond the limit wait for a slot without holding
the lock, so whatever else the process serves keeps its pace.

A slot is held per thread and re-entered freely: a report render converts its
Markdown inside the slot it already holds.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from django.conf import settings

P = ParamSpec("P")
R = TypeVar("R")

_slots: threading.BoundedSemaphore | None = None
_create = threading.Lock()
_held = threading.local()


def _semaphore() -> threading.BoundedSemaphore:
    global _slots
    with _create:
        if _slots is None:
            _slots = threading.BoundedSemaphore(settings.RENDER_CONCURRENCY)
        return _slots


@contextmanager
def render_slot() -> Iterator[None]:
    """Hold one of the process's render slots (waiting for one if all are taken)."""
    depth = getattr(_held, "depth", 0)
    if depth:
        _held.depth = depth + 1
        try:
            yield
        finally:
            _held.depth = depth
        return
    slots = _semaphore()
    with slots:
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0


def in_render_slot(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` inside a render slot."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with render_slot():
            return function(*args, **kwargs)

    return wrapper
