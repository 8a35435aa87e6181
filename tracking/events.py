"""Domain events: how ``tracking`` tells the rest of Labbook what happened to runs.

``tracking`` never imports ``alerts`` or the reports feature. They subscribe
here in their ``AppConfig.ready()``; services publish after the transaction
commits, so a subscriber never sees data that was rolled back. A failing
subscriber is logged and never breaks the request that published.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PointsIngested:
    run_id: int
    project_id: int
    # The points actually stored, as (series id, Point) sorted by series and step;
    # ``keys`` names the series. Kept as ingest built them: a 10,000-point batch
    # is not copied for an event nobody may need in full.
    rows: Sequence[tuple[int, Any]] = field(repr=False)
    keys: dict[int, str] = field(repr=False)
    # The series summaries after the batch, keyed by metric key.
    series: dict[str, dict[str, Any]] = field(repr=False)

    def points(self) -> Iterator[tuple[str, int, float | None, float]]:
        """(key, step, value, timestamp) of every stored point; value None is NaN."""
        keys = self.keys
        for series_id, point in self.rows:
            yield keys[series_id], point.step, point.value, point.timestamp


@dataclass(frozen=True)
class RunStatusChanged:
    run_id: int
    project_id: int
    old: str
    new: str


@dataclass(frozen=True)
class RunCreated:
    run_id: int
    project_id: int


@dataclass(frozen=True)
class SdkAlertRaised:
    run_id: int
    project_id: int
    alert_id: int


Event = PointsIngested | RunStatusChanged | RunCreated | SdkAlertRaised
Handler = Callable[[Any], None]

_handlers: dict[type, list[Handler]] = defaultdict(list)


def subscribe(event_type: type, handler: Handler) -> None:
    if handler not in _handlers[event_type]:
        _handlers[event_type].append(handler)


def unsubscribe(event_type: type, handler: Handler) -> None:
    if handler in _handlers[event_type]:
        _handlers[event_type].remove(handler)


def has_subscribers(event_type: type) -> bool:
    """Lets a hot path skip building an event nobody listens to."""
    return bool(_handlers[event_type]) and not _quiet.get()


_quiet: ContextVar[bool] = ContextVar("quiet_events", default=False)


@contextmanager
def quiet() -> Iterator[None]:
    """Publish nothing inside the block: copying history (an import) is not news.

    An imported failed run must not page anyone, and nobody watches a run live
    while it is being copied.
    """
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def publish_on_commit(event: Event) -> None:
    """Deliver ``event`` to its subscribers once the current transaction commits."""
    if _quiet.get():
        return
    transaction.on_commit(lambda: dispatch(event))


def dispatch(event: Event) -> None:
    for handler in list(_handlers[type(event)]):
        try:
            handler(event)
        except Exception:
            logger.exception("event handler %r failed on %r", handler, event)
